import pytest

from accounts.audit import audit_record
from accounts.models import AuditEvent

pytestmark = pytest.mark.django_db


def test_an_event_is_stored_with_its_actor_name_and_cannot_be_changed_or_deleted(alice):
    event = audit_record(action=AuditEvent.Action.SIGN_IN, actor=alice, ip="10.0.0.7")
    stored = AuditEvent.objects.get(pk=event.pk)
    assert (stored.actor_name, stored.action, stored.ip) == ("alice", "sign_in", "10.0.0.7")
    stored.target = "user:1"
    with pytest.raises(ValueError, match="append-only"):
        stored.save()
    with pytest.raises(ValueError, match="append-only"):
        stored.delete()
    assert AuditEvent.objects.get(pk=event.pk).target == ""


def test_the_admin_offers_no_way_to_change_the_log(client, world, alice):
    client.force_login(world["admin"])
    event = audit_record(action=AuditEvent.Action.SIGN_IN, actor=alice)
    assert client.get("/admin/accounts/auditevent/").status_code == 200
    page = client.get(f"/admin/accounts/auditevent/{event.pk}/change/")
    assert page.status_code == 200 and b"Save" not in page.content
    assert client.get(f"/admin/accounts/auditevent/{event.pk}/delete/").status_code == 403

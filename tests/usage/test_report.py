"""The ledger's rollup and the admin's "Usage & costs" page, CSV and budget fields."""

from __future__ import annotations

import csv
import datetime as dt
import io
from decimal import Decimal

import pytest
from django.utils import timezone

from usage.ledger import ledger_record, usage_rollup_rebuild
from usage.models import ApiCall, DailyUsage

pytestmark = [pytest.mark.django_db, pytest.mark.real_backends]

URL = "/admin/usage-report/"


def record(
    user, team, *, model="claude-sonnet-5-5", usd="0.010000", when=None, priced=True, **tokens
):
    call = ApiCall.objects.create(
        user=user,
        team=team,
        model=model,
        cost_usd=Decimal(usd),
        priced=priced,
        input_tokens=tokens.get("input", 100),
        output_tokens=tokens.get("output", 10),
        cache_read_tokens=tokens.get("read", 0),
        cache_savings_usd=Decimal(tokens.get("saved", "0")),
    )
    if when is not None:
        ApiCall.objects.filter(pk=call.pk).update(created_at=when)
        call.refresh_from_db()
    ledger_record(call=call)
    return call


@pytest.fixture
def spending(alice, bob, carol):
    """This month: alice $0.30 on Sonnet (3 calls), bob $0.05 on an unknown model,
    carol (Globex) $1.00 on Opus. Last month: alice $9 (outside the default range)."""
    acme, globex = alice.teams.get(), carol.teams.get()
    now = timezone.now()
    for _ in range(3):
        record(alice, acme, usd="0.100000", read=1000, saved="0.001800")
    record(bob, acme, model="claude-nova-9", usd="0.050000", priced=False)
    record(carol, globex, model="claude-opus-5-5", usd="1.000000")
    last_month = now.replace(day=1) - dt.timedelta(days=3)
    record(alice, acme, usd="9.000000", when=last_month)
    return {"acme": acme, "globex": globex}


def test_rollup_kept_as_calls_are_written_equals_a_rebuild(spending):
    """The incremental rollup and a rebuild from the ledger agree row for row."""
    fields = (
        "day",
        "user_id",
        "team_id",
        "model",
        "calls",
        "input_tokens",
        "cost_usd",
        "unpriced_calls",
    )
    before = sorted(DailyUsage.objects.values_list(*fields))
    assert usage_rollup_rebuild() == len(before)
    assert sorted(DailyUsage.objects.values_list(*fields)) == before


def test_deleting_a_user_or_conversation_changes_no_cost(spending, alice, make_conversation):
    """The ledger rows and the report's totals survive deleting a person."""
    costs = sorted(ApiCall.objects.values_list("cost_usd", "price_key"))
    rollup = sorted(DailyUsage.objects.values_list("user_id", "cost_usd"))
    alice_id = alice.pk
    alice.delete()
    assert sorted(ApiCall.objects.values_list("cost_usd", "price_key")) == costs
    assert sorted(DailyUsage.objects.values_list("user_id", "cost_usd")) == rollup
    assert DailyUsage.objects.filter(user_id=alice_id).exists()


def test_report_is_staff_only(client, bob):
    """A signed-in non-staff person is sent to the admin login, not shown costs."""
    client.force_login(bob)
    response = client.get(URL)
    assert response.status_code == 302 and "/admin/login/" in response["Location"]


def test_report_totals_per_user_team_and_model_for_this_month(client, world, spending):
    """The default range is this month; totals, unpriced calls and savings are shown."""
    client.force_login(world["admin"])
    response = client.get(URL)
    assert response.status_code == 200
    report = response.context["report"]
    by_user = {row.name: (row.calls, row.cost_usd) for row in report.by_user}
    assert by_user == {
        "Alice Archer": (3, Decimal("0.300000")),
        "Bob Baker": (1, Decimal("0.050000")),
        "Carol Chen": (1, Decimal("1.000000")),
    }
    assert {row.name: row.cost_usd for row in report.by_team} == {
        "Acme": Decimal("0.350000"),
        "Globex": Decimal("1.000000"),
    }
    assert report.total.cost_usd == Decimal("1.350000")
    assert report.total.cache_savings_usd == Decimal("0.005400")
    assert [row.name for row in report.by_model if row.unpriced_calls] == ["claude-nova-9"]
    body = response.content.decode()
    assert "1 unpriced" in body and "<svg" in body


def test_report_filters_and_sorts(client, world, spending):
    """Filtering by team leaves only its people; sorting by name ascending orders them."""
    client.force_login(world["admin"])
    response = client.get(URL, {"team": spending["acme"].pk, "sort": "name"})
    report = response.context["report"]
    assert [row.name for row in report.by_user] == ["Alice Archer", "Bob Baker"]
    response = client.get(URL, {"model": "claude-opus-5-5"})
    assert [row.name for row in response.context["report"].by_user] == ["Carol Chen"]


def test_report_range_reaches_last_month(client, world, spending):
    """A range covering last month includes its spend."""
    client.force_login(world["admin"])
    start = (timezone.now().replace(day=1) - dt.timedelta(days=20)).date()
    response = client.get(URL, {"start": start.isoformat()})
    assert response.context["report"].total.cost_usd == Decimal("10.350000")


def micro(value):
    return value.quantize(Decimal("0.000001")) if isinstance(value, Decimal) else value


def test_csv_has_exactly_the_rows_the_page_shows(client, world, spending):
    """The CSV export lists every table row of the page, in order, and the total,
    with money to the micro-dollar."""
    client.force_login(world["admin"])
    page = client.get(URL, {"sort": "name"}).context["report"]
    response = client.get(URL, {"sort": "name", "format": "csv"})
    assert response["Content-Type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(response.content.decode())))
    assert rows[0][:2] == ["table", "Name"]
    expected = [
        [table, row.name, str(row.calls), *(str(micro(v)) for v in row.cells()[2:])]
        for table, rows_ in (
            ("user", page.by_user),
            ("team", page.by_team),
            ("model", page.by_model),
            ("endpoint", page.by_endpoint),
        )
        for row in rows_
    ]
    assert rows[1:-1] == expected
    assert rows[-1][:3] == ["total", "Total", "5"]


def test_user_and_team_admin_pages_show_this_months_spend_and_budget(
    client, world, spending, set_budget
):
    """Each user's and team's admin page shows spend, budget and what remains."""
    set_budget(team=spending["acme"], usd="2")
    client.force_login(world["admin"])
    body = client.get(f"/admin/accounts/team/{spending['acme'].pk}/change/").content.decode()
    assert "$0.35" in body and "$2.00" in body and "$1.65 (17% used)" in body
    body = client.get(f"/admin/accounts/user/{world['carol'].pk}/change/").content.decode()
    assert "$1.00" in body and "no limit" in body


def test_admin_index_links_the_report(client, world):
    client.force_login(world["admin"])
    assert URL in client.get("/admin/").content.decode()

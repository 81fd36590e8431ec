"""A socket's handshake owes the same second factor as a page (accounts.mfa)."""

import pytest
from asgiref.sync import sync_to_async

from accounts.mfa import SESSION_KEY as MFA_PASSED
from accounts.services import team_mfa_requirement_set

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.real_backends]


async def test_an_owner_who_owes_two_factor_opens_no_socket(alice, make_conversation, signed_in):
    conversation = await sync_to_async(make_conversation)()
    acme = await sync_to_async(alice.teams.get)(slug="acme")
    session = await signed_in(alice)
    socket, connected = await session.socket(conversation.id)
    assert connected  # no rule yet
    await sync_to_async(team_mfa_requirement_set)(team=acme, required=True, actor=alice)
    refused, connected = await session.socket(conversation.id)
    assert not connected

    def pass_second_factor():
        store = session.client.session
        store[MFA_PASSED] = alice.pk
        store.save()

    await sync_to_async(pass_second_factor)()
    _, connected = await session.socket(conversation.id)
    assert connected

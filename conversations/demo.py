"""Demo data a newcomer sees at once after `make run`: a team preset and a
conversation shared with the team (written as stored rows: no call to Claude)."""

from __future__ import annotations

from django.db import transaction

from accounts.models import Team, User
from conversations.models import Conversation, ConversationShare, Message, Preset
from conversations.rendering import markdown_to_html

DEMO_PRESET = "Support replies"
DEMO_SHARED_TITLE = "Onboarding checklist for new teammates"

_DEMO_TURNS = [
    (
        "Draft a short onboarding checklist for someone joining our support team.",
        "Here is a checklist for the first week:\n\n"
        "1. **Accounts**: sign in to Team chat, the help desk and the status page.\n"
        "2. **Read**: the tone guide and the ten most common tickets.\n"
        "3. **Shadow**: answer five tickets with a teammate reviewing.\n"
        "4. **Own**: take the morning queue on day five.\n\n"
        "Want me to turn this into a message you can post in the team channel?",
    ),
]


@transaction.atomic
def demo_sharing_seed(*, people: dict[str, User]) -> dict[str, object]:
    """In Acme: the preset "Support replies", and alice's conversation shared with
    the whole team (bob finds it under "Shared with me"). Safe to run again."""
    acme = Team.objects.get(slug="acme")
    alice = people["alice"]
    preset, _ = Preset.objects.update_or_create(
        team=acme,
        name=DEMO_PRESET,
        defaults={
            "model": "claude-sonnet-5-5",
            "system_prompt": "You help Acme's support team answer customers: friendly, "
            "concise, British English, and never promise a date.",
            "thinking_effort": "",
            "created_by": alice,
        },
    )
    conversation = Conversation.objects.filter(
        owner=alice, team=acme, title=DEMO_SHARED_TITLE
    ).first()
    if conversation is None:
        conversation = Conversation.objects.create(
            owner=alice,
            team=acme,
            title=DEMO_SHARED_TITLE,
            model=preset.model,
            system_prompt=preset.system_prompt,
            preset=preset,
            preset_name=preset.name,
        )
        position = 0
        for question, answer in _DEMO_TURNS:
            Message.objects.create(
                conversation=conversation,
                position=position,
                role=Message.Role.USER,
                content=[{"type": "text", "text": question}],
                text=question,
            )
            Message.objects.create(
                conversation=conversation,
                position=position + 1,
                role=Message.Role.ASSISTANT,
                content=[{"type": "text", "text": answer}],
                text=answer,
                html=markdown_to_html(answer),
                model=preset.model,
                stop_reason="end_turn",
            )
            position += 2
    ConversationShare.objects.get_or_create(
        conversation=conversation,
        kind=ConversationShare.Kind.TEAM,
        defaults={"created_by": alice},
    )
    return {"preset": preset, "shared_conversation": conversation}

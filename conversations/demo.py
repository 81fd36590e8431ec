"""Demo data: what a newcomer sees at once after `make run` (a team preset and a
conversation shared with the team), and `seed_demo --conversations N`'s demo
conversations for demos, tests and the batch benchmark. Written as stored rows:
no call to Claude."""

from __future__ import annotations

import datetime as dt

from django.db import transaction
from django.utils import timezone

from accounts.models import Membership, Team, User
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


_TOPICS = (
    ("Release plan for the billing page", "the billing page release"),
    ("Flaky login test", "the flaky login test in CI"),
    ("Onboarding checklist", "the onboarding checklist for new engineers"),
    ("Database migration for invoices", "the invoices table migration"),
    ("Customer call notes: Initech", "yesterday's call with Initech"),
    ("Q3 roadmap priorities", "the Q3 roadmap"),
    ("Incident review: cache outage", "last week's cache outage"),
    ("Hiring loop for the platform role", "the platform engineer hiring loop"),
)

_TURNS = (
    ("user", "Can you help me think through {topic}? We need a decision by Friday."),
    (
        "assistant",
        "Sure. For {topic}, the main options are to ship it as planned, to split it into "
        "two smaller steps, or to wait a week for the review. Splitting keeps the risk low.",
    ),
    ("user", "Let's split it. Dana owns the first step; what is still open?"),
    (
        "assistant",
        "Agreed: split it, with Dana on the first step. Still open: who reviews the second "
        "step, and whether support needs a heads-up before {topic} goes out.",
    ),
)

CHUNK = 1000


def demo_conversations_seed(
    *, count: int, team_slug: str = "acme", model: str = "claude-sonnet-5-5"
) -> int:
    """Add `count` conversations of four turns to the team (its members in turn own
    them), spread over the last two weeks. Returns how many were added."""
    team = Team.objects.get(slug=team_slug)
    owners = list(
        Membership.objects.filter(team=team)
        .order_by("joined_at", "id")
        .values_list("user_id", flat=True)
    )
    if not owners:
        raise ValueError(f"Team {team_slug!r} has no members to own conversations.")
    now = timezone.now()
    html_cache: dict[str, str] = {}
    added = 0
    while added < count:
        n = min(CHUNK, count - added)
        with transaction.atomic():
            conversations = []
            for i in range(added, added + n):
                title, topic = _TOPICS[i % len(_TOPICS)]
                conversations.append(
                    Conversation(
                        owner_id=owners[i % len(owners)],
                        team=team,
                        title=f"{title} #{i + 1}",
                        model=model,
                    )
                )
            Conversation.objects.bulk_create(conversations)
            messages = []
            for offset, conversation in enumerate(conversations):
                topic = _TOPICS[(added + offset) % len(_TOPICS)][1]
                for position, (role, template) in enumerate(_TURNS):
                    text = template.format(topic=topic)
                    html = ""
                    if role == "assistant":
                        html = html_cache.get(text) or html_cache.setdefault(
                            text, markdown_to_html(text)
                        )
                    messages.append(
                        Message(
                            conversation=conversation,
                            position=position,
                            role=role,
                            content=[{"type": "text", "text": text}],
                            text=text,
                            html=html,
                            model=model if role == "assistant" else "",
                        )
                    )
            Message.objects.bulk_create(messages, batch_size=2000)
            # Spread over two weeks, so a date range picks some of them.
            for offset, conversation in enumerate(conversations):
                moment = now - dt.timedelta(minutes=((added + offset) * 37) % (14 * 24 * 60))
                Conversation.objects.filter(pk=conversation.pk).update(updated_at=moment)
        added += n
    return added

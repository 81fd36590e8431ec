from __future__ import annotations

import uuid

import pytest


@pytest.fixture
def upload(alice, make_conversation):
    """Store bytes as the upload request does (a random name in the attachments
    storage, a row in checking), without enqueueing the check."""
    from django.core.files.base import ContentFile

    from conversations.attachments.pipeline import attachment_storage
    from conversations.models import Attachment

    def make(name: str, data: bytes, *, conversation=None, user=None) -> Attachment:
        conversation = conversation or make_conversation()
        stored = attachment_storage().save(f"{uuid.uuid4().hex}.upload", ContentFile(data))
        return Attachment.objects.create(
            conversation=conversation,
            uploaded_by=user or alice,
            name=name,
            size=len(data),
            original_path=stored,
        )

    return make


def stored_names() -> set[str]:
    from conversations.attachments.pipeline import attachment_storage

    storage = attachment_storage()
    try:
        return set(storage.listdir("")[1])
    except FileNotFoundError:
        return set()

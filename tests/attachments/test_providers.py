"""Files in chat on Bedrock and Vertex AI: every kind goes inline (base64 images and
PDFs, text documents), even a file uploaded through the Files API while the site
used the Anthropic API; the fake refuses `file` and `url` sources on both, so a
completed reply that names what it read shows the files went inline."""

from __future__ import annotations

import pytest
from asgiref.sync import sync_to_async

from tests.attachments.test_send import error_or_completed, make_attachment, send_frame
from tests.conftest import receive_frames

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.real_backends]


@pytest.mark.parametrize("provider", ["bedrock", "vertex"])
async def test_files_go_inline_on_the_cloud_providers(
    alice, make_conversation, socket_for, claude_on, settings, provider
):
    claude_on(provider)
    # As if CLAUDE_FILES_API had been on with the Anthropic API when they were checked.
    settings.CLAUDE_FILES_API = True
    conversation = await sync_to_async(make_conversation)()
    files = [
        await sync_to_async(make_attachment)(
            conversation, alice, "image/jpeg", claude_file_id="file_011CNha8iCJcU1wXNR6q4V8w"
        ),
        await sync_to_async(make_attachment)(
            conversation, alice, "application/pdf", claude_file_id="file_011CNha8iCJcU1wXNR6q4V9x"
        ),
        await sync_to_async(make_attachment)(conversation, alice, "text/plain"),
    ]
    socket, _ = await socket_for(alice, conversation.id)
    await socket.send_json_to(send_frame("What is in these?", files))
    frames = await receive_frames(socket, until=error_or_completed)
    final = frames[-1]
    assert final["type"] == "message.completed" and final["status"] == "complete", final
    assert "I read the attachments" in final["text"]
    assert "an image of 64×48 px" in final["text"] and '"parts.csv"' in final["text"]
    await socket.disconnect()

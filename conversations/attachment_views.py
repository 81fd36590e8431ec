"""The attachment endpoints (docs/uploads.md). Thin: authorise through
selectors, act through `conversations.attachments.uploads`.

Anyone who may not see the conversation gets 404 from every one of them, the
same answer as for an id that does not exist; signed out, they are sent to
sign in, like every other page.
"""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.core.files.uploadedfile import UploadedFile
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.utils.cache import patch_cache_control
from django.utils.translation import gettext
from django.views.decorators.csrf import csrf_exempt, csrf_protect
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from conversations import selectors
from conversations.attachments import uploads
from conversations.models import Conversation
from conversations.streaming.frames import attachment_payload


def _refused(exc: uploads.AttachmentRefused) -> JsonResponse:
    return JsonResponse(exc.as_json(), status=exc.http_status)


def _not_found(what: str = "file") -> JsonResponse:
    error = gettext("No such conversation.") if what == "conversation" else gettext("No such file.")
    return JsonResponse({"error": error, "code": "not_found"}, status=404)


# Exempt here only because Django's CSRF check reads the body, and the upload
# handlers that bound it must be in place first; `_upload_store` runs the check.
@csrf_exempt
@login_required
@require_POST
def attachment_upload(request: HttpRequest, conversation_id: str) -> HttpResponse:
    """POST /c/<id>/attachments/: 202 at once; the check runs on a worker."""
    conversation = selectors.conversation_for_user(
        user=request.user, conversation_id=conversation_id, to_write=True
    )
    if conversation is None:
        return _not_found("conversation")
    try:
        uploaded_file = uploads.attachment_upload_read(request)
    except uploads.AttachmentRefused as exc:
        return _refused(exc)
    return _upload_store(request, conversation=conversation, uploaded_file=uploaded_file)


@csrf_protect
def _upload_store(
    request: HttpRequest, *, conversation: Conversation, uploaded_file: UploadedFile
) -> HttpResponse:
    try:
        attachment = uploads.attachment_upload(
            conversation=conversation, user=request.user, uploaded_file=uploaded_file
        )
    except uploads.AttachmentRefused as exc:
        return _refused(exc)
    return JsonResponse(
        {
            "id": str(attachment.id),
            "name": attachment.name,
            "size": attachment.size,
            "status": attachment.status,
        },
        status=202,
    )


@login_required
@require_http_methods(["GET", "DELETE"])
def attachment_detail(request: HttpRequest, attachment_id: str) -> HttpResponse:
    """GET /attachments/<id>/: its state. DELETE: remove it from the composer."""
    attachment = selectors.attachment_for_user(user=request.user, attachment_id=attachment_id)
    if attachment is None:
        return _not_found()
    if request.method == "DELETE":
        try:
            uploads.attachment_discard(attachment=attachment, user=request.user)
        except uploads.AttachmentRefused as exc:
            return _refused(exc)
        return JsonResponse({"id": str(attachment_id), "deleted": True})
    response = JsonResponse(attachment_payload(attachment))
    # Its state changes while the page is open: always ask again.
    patch_cache_control(response, private=True, no_cache=True)
    return response


def _served(request: HttpRequest, attachment_id: str, respond, what: str) -> HttpResponse:
    attachment = selectors.attachment_for_user(user=request.user, attachment_id=attachment_id)
    response = respond(attachment=attachment) if attachment else None
    if response is None:
        raise Http404(f"No such {what}.")
    return response


@login_required
@require_GET
def attachment_file(request: HttpRequest, attachment_id: str) -> HttpResponse:
    """GET /attachments/<id>/file: the prepared file, once it is ready."""
    return _served(request, attachment_id, uploads.attachment_file_response, "file")


@login_required
@require_GET
def attachment_thumbnail(request: HttpRequest, attachment_id: str) -> HttpResponse:
    """GET /attachments/<id>/thumbnail: the small picture of a ready file that has one."""
    return _served(request, attachment_id, uploads.attachment_thumbnail_response, "thumbnail")

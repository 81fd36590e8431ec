"""Server-rendered pages. Thin: authorise through selectors, write through services."""

from __future__ import annotations

from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings
from django.contrib import messages as flash
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_POST

from accounts.audit import request_ip
from accounts.teams import request_team_state, team_members
from claude.catalog import model_info
from claude.client import token_counting_available, token_counting_unavailable_message
from claude.providers import default_model, model_choices
from claude.stream import ClaudeError
from claude.tokens import input_tokens_count
from conversations import context, exports, presets, search, selectors, services, sharing
from conversations.forms import (
    ConversationCreateForm,
    ConversationRenameForm,
    ConversationSettingsForm,
    ConversationShareForm,
    EstimateForm,
    ImportForm,
)
from conversations.models import Conversation, Message
from conversations.rendering import markdown_to_html
from conversations.streaming.frames import condensed_text, error_text, model_label, stop_note
from usage.ledger import estimate_priced, estimate_record


def _page_context(request: HttpRequest, *, new_chat: bool = False, current_id=None) -> dict:
    team = request_team_state(request).current
    return {
        "current_team": team,
        "model_labels": dict(model_choices()),
        "conversations": selectors.conversation_list_for_user(
            user=request.user, team=team, current_id=current_id
        ),
        "shared_conversations": selectors.conversation_list_shared_with(
            user=request.user, team=team
        ),
        # Picked on the new-chat form only.
        "presets": presets.preset_list(team=team) if new_chat else [],
        # The picker offers what this provider serves.
        "model_choices": model_choices(),
        "default_model": default_model(),
        "effort_choices": Conversation.ThinkingEffort.choices,
        "max_message_chars": settings.CHAT_MAX_MESSAGE_CHARS,
    }


@login_required
def home(request: HttpRequest) -> HttpResponse:
    """The empty state: pick a model, optionally a system prompt and thinking, and start."""
    return render(
        request,
        "conversations/chat.html",
        {
            **_page_context(request, new_chat=True),
            **_budget_context(request),
            "conversation": None,
        },
    )


def _budget_context(request: HttpRequest) -> dict:
    """The empty state's budget note: the warning (from 80%) or the refusal (at
    100%), one or the other, before anything is typed."""
    status = services.new_conversation_budget(
        user=request.user, team=request_team_state(request).current
    )
    if status.level not in ("warning", "exceeded"):
        return {}
    return {"budget_level": status.level, "budget_message": status.as_frame()["message"]}


def _form_errors(errors: dict) -> dict:
    """The new-chat form's errors keyed by what the page calls each field (its
    label, in the reader's language), "__all__" for the form's own."""
    fields = ConversationCreateForm.base_fields
    return {
        (str(fields[name].label) if name in fields else name): field_errors
        for name, field_errors in errors.items()
    }


@login_required
@require_POST
def conversation_create(request: HttpRequest) -> HttpResponse:
    """The empty state's form. Asked for JSON (`Accept: application/json`), as the
    page does when a file is attached before the first message, it answers with
    the new conversation instead of a redirect, so the files have somewhere to go."""
    wants_json = request.headers.get("Accept", "").startswith("application/json")
    form = ConversationCreateForm(request.POST)
    if not form.is_valid():
        if wants_json:
            errors = [error for field_errors in form.errors.values() for error in field_errors]
            return JsonResponse({"error": errors[0]}, status=400)
        return render(
            request,
            "conversations/chat.html",
            {
                **_page_context(request, new_chat=True),
                **_budget_context(request),
                "conversation": None,
                "form_errors": _form_errors(form.errors),
            },
            status=400,
        )
    team = request_team_state(request).current
    fields = dict(form.cleaned_data)
    preset_id = fields.pop("preset", None)
    preset = None
    if preset_id:
        preset = presets.preset_for_team(team=team, preset_id=preset_id) if team else None
        if preset is None:
            message = _("That preset is not one of your team's.")
            if wants_json:
                return JsonResponse({"error": message}, status=400)
            return render(
                request,
                "conversations/chat.html",
                {
                    **_page_context(request, new_chat=True),
                    **_budget_context(request),
                    "conversation": None,
                    "form_errors": _form_errors({"preset": [message]}),
                },
                status=400,
            )
    try:
        conversation = services.conversation_start(
            owner=request.user, team=team, preset=preset, **fields
        )
    except services.ChatInputError as exc:
        if wants_json:
            return JsonResponse({"error": exc.message, "code": exc.code}, status=400)
        if exc.code == "budget_exceeded":
            # The note says it already (one red box, not two).
            errors = {}
        else:
            errors = _form_errors({"model": [exc.message]})
        return render(
            request,
            "conversations/chat.html",
            {
                **_page_context(request, new_chat=True),
                **_budget_context(request),
                "conversation": None,
                "form_errors": errors,
            },
            status=400,
        )
    if wants_json:
        return JsonResponse(
            {
                "id": str(conversation.id),
                "url": reverse("conversation_detail", args=[conversation.id]),
            },
            status=201,
        )
    return redirect("conversation_detail", conversation_id=conversation.id)


@login_required
def conversation_detail(request: HttpRequest, conversation_id: str) -> HttpResponse:
    conversation = selectors.conversation_for_user(
        user=request.user, conversation_id=conversation_id
    )
    if conversation is None:
        raise Http404("No such conversation.")
    messages = selectors.message_list_for_page(conversation=conversation)
    streaming = None
    for message in messages:
        message.model_label = model_label(message.model)
        message.stop_note = stop_note(message)
        message.condensed = condensed_text(message)
        if message.role == Message.Role.ASSISTANT and not message.html and message.text:
            # Checkpointed or interrupted text has no cached HTML yet.
            message.html = markdown_to_html(message.text)
        if message.is_active:
            streaming = {
                "message_id": str(message.id),
                "seq": message.seq,
                "text": message.text,
                "thinking": message.thinking,
            }
    read_only = conversation.access != selectors.ACCESS_OWNER
    return render(
        request,
        "conversations/chat.html",
        {
            **_page_context(request, current_id=conversation.id),
            "conversation": conversation,
            "read_only": read_only,
            "messages_list": messages,
            "streaming_state": streaming,
            "ws_path": f"/ws/c/{conversation.id}/",
            "model_label": model_label(conversation.model),
            "context_meter": _context_meter(conversation, messages),
        },
    )


def _context_meter(conversation, messages) -> dict:
    """How full the model's context window was at the last answer of the branch on show."""
    for message in reversed(messages):
        calls = [c for c in getattr(message, "calls", ()) if c.input_tokens or c.output_tokens]
        if message.role == Message.Role.ASSISTANT and calls:
            last = calls[-1]
            return context.context_used(
                input_tokens=last.input_tokens
                + last.cache_read_tokens
                + last.cache_write_5m_tokens
                + last.cache_write_1h_tokens,
                output_tokens=last.output_tokens,
                info=model_info(conversation.model),
            )
    return context.context_used(
        input_tokens=0, output_tokens=0, info=model_info(conversation.model)
    )


def _visible(request: HttpRequest, conversation_id, *, to_write: bool = False) -> Any:
    conversation = selectors.conversation_for_user(
        user=request.user, conversation_id=conversation_id, to_write=to_write
    )
    if conversation is None:
        raise Http404("No such conversation.")
    return conversation


@login_required
@require_POST
def conversation_settings(request: HttpRequest, conversation_id: str) -> HttpResponse:
    """Change the model, system prompt or thinking for the answers from now on (the
    owner only)."""
    conversation = _visible(request, conversation_id, to_write=True)
    form = ConversationSettingsForm(request.POST)
    if not form.is_valid():
        errors = [error for field_errors in form.errors.values() for error in field_errors]
        return JsonResponse({"error": errors[0]}, status=400)
    try:
        services.conversation_settings_update(conversation=conversation, **form.cleaned_data)
    except services.ChatInputError as exc:
        return JsonResponse({"error": exc.message}, status=400)
    if request.headers.get("Accept", "").startswith("application/json"):
        return JsonResponse(
            {
                "model": conversation.model,
                "model_label": model_label(conversation.model),
                "system_prompt": conversation.system_prompt,
                "thinking_effort": conversation.thinking_effort,
                "context_window": model_info(conversation.model).context_window,
            }
        )
    return redirect("conversation_detail", conversation_id=conversation.id)


def _download_name(conversation, extension: str) -> str:
    stem = "".join(c if c.isalnum() or c in "-_ " else "" for c in conversation.title)[:60].strip()
    return f"{stem or 'conversation'}.{extension}"


@login_required
@require_GET
def conversation_export_json(request: HttpRequest, conversation_id: str) -> HttpResponse:
    """The conversation in the API's own shapes (conversations/exports.py)."""
    conversation = _visible(request, conversation_id)
    document = exports.conversation_export_json(
        conversation=conversation, actor=request.user, ip=request_ip(request)
    )
    response = JsonResponse(document, json_dumps_params={"ensure_ascii": False, "indent": 1})
    response["Content-Disposition"] = (
        f'attachment; filename="{_download_name(conversation, "json")}"'
    )
    return response


@login_required
@require_GET
def conversation_export_markdown(request: HttpRequest, conversation_id: str) -> HttpResponse:
    """The branch on show as Markdown."""
    conversation = _visible(request, conversation_id)
    text = exports.conversation_export_markdown(
        conversation=conversation, actor=request.user, ip=request_ip(request)
    )
    response = HttpResponse(text, content_type="text/markdown; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{_download_name(conversation, "md")}"'
    return response


@login_required
@require_POST
def conversation_import(request: HttpRequest) -> HttpResponse:
    """A `.json` export back as a new conversation (multipart field `file`): a
    redirect to it, or 201 `{"conversation_id": ...}` when asked for JSON. Over
    IMPORT_MAX_BYTES: 413 (the upload gate refuses a larger request before its
    body is read); a file that is no export: 400 with the reason."""
    wants_json = request.headers.get("Accept", "").startswith("application/json")
    form = ImportForm(request.POST, request.FILES)
    try:
        if not form.is_valid():
            raise exports.ImportRefused(
                _("Choose a .json conversation export to import (field 'file').")
            )
        upload = form.cleaned_data["file"]
        if upload.size > settings.IMPORT_MAX_BYTES:
            raise exports.ImportRefused(exports.import_too_large(upload.size).message, 413)
        conversation = exports.conversation_import(
            owner=request.user, raw=upload.read(), team=request_team_state(request).current
        )
    except exports.ImportRefused as exc:
        if wants_json:
            return JsonResponse({"error": exc.message}, status=exc.http_status)
        return render(
            request,
            "conversations/chat.html",
            {**_page_context(request), "conversation": None, "import_error": exc.message},
            status=exc.http_status,
        )
    if wants_json:
        return JsonResponse({"conversation_id": str(conversation.id)}, status=201)
    return redirect("conversation_detail", conversation_id=conversation.id)


@login_required
@require_POST
def conversation_rename(request: HttpRequest, conversation_id: str) -> HttpResponse:
    conversation = selectors.conversation_for_user(
        user=request.user, conversation_id=conversation_id, to_write=True
    )
    if conversation is None:
        raise Http404("No such conversation.")
    form = ConversationRenameForm(request.POST)
    if not form.is_valid():
        return JsonResponse({"error": _("A title cannot be empty.")}, status=400)
    try:
        services.conversation_rename(conversation=conversation, title=form.cleaned_data["title"])
    except services.ChatInputError as exc:
        return JsonResponse({"error": exc.message}, status=400)
    if request.headers.get("Accept", "").startswith("application/json"):
        return JsonResponse({"id": str(conversation.id), "title": conversation.title})
    return redirect("conversation_detail", conversation_id=conversation.id)


@login_required
@require_POST
def conversation_pin(request: HttpRequest, conversation_id: str) -> HttpResponse:
    """Pin (`pinned=true`) or unpin (`pinned=false`) a conversation in the sidebar:
    its owner's (a pin is on the conversation; one shared with you is not yours to
    pin: 404)."""
    conversation = selectors.conversation_for_user(
        user=request.user, conversation_id=conversation_id, to_write=True
    )
    if conversation is None:
        raise Http404("No such conversation.")
    pinned = request.POST.get("pinned", "true")
    if pinned not in ("true", "false"):
        return JsonResponse({"error": _("pinned is true or false.")}, status=400)
    services.conversation_pin(conversation=conversation, pinned=pinned == "true")
    if request.headers.get("Accept", "").startswith("application/json"):
        return JsonResponse({"id": str(conversation.id), "pinned": pinned == "true"})
    return redirect("conversation_detail", conversation_id=conversation.id)


@login_required
@require_POST
def conversation_delete(request: HttpRequest, conversation_id: str) -> HttpResponse:
    conversation = selectors.conversation_for_user(
        user=request.user, conversation_id=conversation_id, to_write=True
    )
    if conversation is None:
        raise Http404("No such conversation.")
    services.conversation_delete(conversation=conversation)
    if request.headers.get("Accept", "").startswith("application/json"):
        return JsonResponse({"deleted": True})
    return redirect("home")


@require_POST
async def conversation_estimate(request: HttpRequest, conversation_id: str) -> HttpResponse:
    """What the next message would cost, from the API's free token count: the
    draft's text and its ready files (`attachments`), with the whole history.

    Owner only (404 otherwise). The count itself is logged as a $0 ledger row.
    """
    user = await request.auser()
    conversation = await sync_to_async(selectors.conversation_for_user)(
        user=user, conversation_id=conversation_id, to_write=True
    )
    if conversation is None:
        raise Http404("No such conversation.")
    form = EstimateForm(request.POST)
    if not form.is_valid() or len(form.cleaned_data["text"]) > settings.CHAT_MAX_MESSAGE_CHARS:
        return JsonResponse({"error": _("Nothing to estimate.")}, status=400)
    chat_request = await sync_to_async(services.chat_request_for_draft)(
        conversation=conversation,
        text=form.cleaned_data["text"],
        attachment_ids=form.cleaned_data["attachments"],
    )
    if not token_counting_available():
        # Bedrock counts no tokens: a local estimate, said as such, and no ledger
        # row (no call was made).
        tokens = await sync_to_async(services.draft_tokens_local_estimate)(
            conversation=conversation,
            text=form.cleaned_data["text"],
            attachment_ids=form.cleaned_data["attachments"],
        )
        estimate = await sync_to_async(estimate_priced)(
            model=conversation.model,
            input_tokens=tokens,
            max_output_tokens=chat_request.max_output_tokens,
        )
        return JsonResponse(
            {
                "input_tokens": estimate.input_tokens,
                "estimated_cost_usd": f"{estimate.estimated_cost_usd:.6f}",
                "max_cost_usd": f"{estimate.max_cost_usd:.6f}",
                "method": "local",
                "note": token_counting_unavailable_message(),
            }
        )
    try:
        tokens = await input_tokens_count(chat_request)
    except ClaudeError as exc:
        return JsonResponse({"error": error_text(exc.human_message)}, status=502)
    estimate = await sync_to_async(estimate_record)(
        user_id=user.pk,
        team_id=conversation.team_id,
        conversation_id=conversation.id,
        model=conversation.model,
        input_tokens=tokens,
        # The worst case prices the answer at the request's own max_tokens
        # (thinking budget included).
        max_output_tokens=chat_request.max_output_tokens,
    )
    return JsonResponse(
        {
            "input_tokens": estimate.input_tokens,
            "estimated_cost_usd": f"{estimate.estimated_cost_usd:.6f}",
            "max_cost_usd": f"{estimate.max_cost_usd:.6f}",
            "method": "count_tokens",
        }
    )


@login_required
def conversation_share(request: HttpRequest, conversation_id: str) -> HttpResponse:
    """The owner's share page: with the whole team, chosen teammates, or (when the
    team allows it) any member with the link; read-only. Anyone else: 404."""
    conversation = selectors.conversation_for_user(
        user=request.user, conversation_id=conversation_id, to_write=True
    )
    if conversation is None:
        raise Http404("No such conversation.")
    team = conversation.team
    teammates = [m for m in team_members(team=team) if m.user_id != request.user.pk] if team else []
    error = ""
    if request.method == "POST":
        form = ConversationShareForm(request.POST)
        if form.is_valid():
            data = form.cleaned_data
            stop = "stop" in request.POST
            try:
                sharing.conversation_share_set(
                    conversation=conversation,
                    actor=request.user,
                    team=data["team"] and not stop,
                    user_ids=[] if stop else data["users"],
                    link=data["link"] and not stop,
                    ip=request_ip(request),
                )
            except sharing.ShareRefused as exc:
                error = exc.message
            else:
                flash.success(request, _("Stopped sharing.") if stop else _("Sharing saved."))
                return redirect("conversation_share", conversation_id=conversation.id)
        else:
            error = _("Pick teammates from the list.")
    state = sharing.share_state(conversation=conversation)
    return render(
        request,
        "conversations/share.html",
        {
            **_page_context(request),
            "conversation": conversation,
            "team": team,
            "teammates": teammates,
            "state": state,
            "error": error,
            "link_url": request.build_absolute_uri(
                reverse("conversation_detail", args=[conversation.id])
            ),
        },
        status=400 if error else 200,
    )


@login_required
@require_POST
def conversation_continue(request: HttpRequest, conversation_id: str) -> HttpResponse:
    """ "Continue in my own chat": copy a conversation one may see into one's own
    (same team), then open it."""
    conversation = selectors.conversation_for_user(
        user=request.user, conversation_id=conversation_id
    )
    if conversation is None:
        raise Http404("No such conversation.")
    copy = sharing.conversation_continue(conversation=conversation, user=request.user)
    return redirect("conversation_detail", conversation_id=copy.id)


def _result_url(result: search.SearchResult) -> str:
    url = reverse("conversation_detail", args=[result.conversation_id])
    return f"{url}#message-{result.message_id}" if result.message_id else url


@login_required
def conversation_search(request: HttpRequest) -> HttpResponse:
    """`/search/?q=`: the conversations the person may see whose title or messages
    have every word, with highlighted snippets. As JSON (`Accept:
    application/json` or `?format=json`) for the palette (Ctrl+K)."""
    query = request.GET.get("q", "")[:200]
    results = search.conversation_search(user=request.user, query=query)
    too_short = bool(query.strip()) and not search.search_terms(query)
    if request.GET.get("format") == "json" or request.headers.get("Accept", "").startswith(
        "application/json"
    ):
        return JsonResponse(
            {
                "query": query,
                "results": [{**r.as_json(), "url": _result_url(r)} for r in results],
                "too_short": too_short,
            }
        )
    return render(
        request,
        "conversations/search.html",
        {
            **_page_context(request),
            "conversation": None,
            "query": query,
            "results": results,
            "too_short": too_short,
        },
    )

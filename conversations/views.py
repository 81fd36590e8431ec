"""Server-rendered pages. Thin: authorise through selectors, write through services."""

from __future__ import annotations

from asgiref.sync import sync_to_async
from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from claude.catalog import model_choices
from claude.stream import ClaudeError
from claude.tokens import input_tokens_count
from conversations import search, selectors, services
from conversations.forms import ConversationCreateForm, ConversationRenameForm, EstimateForm
from conversations.models import Conversation, Message
from conversations.rendering import markdown_to_html
from usage.ledger import estimate_record


def _page_context(request: HttpRequest, current_id=None) -> dict:
    return {
        "model_labels": dict(model_choices()),
        "conversations": selectors.conversation_list_for_user(
            user=request.user, current_id=current_id
        ),
        "model_choices": model_choices(),
        "default_model": settings.CLAUDE_DEFAULT_MODEL,
        "effort_choices": Conversation.ThinkingEffort.choices,
        "max_message_chars": settings.CHAT_MAX_MESSAGE_CHARS,
    }


@login_required
def home(request: HttpRequest) -> HttpResponse:
    """The empty state: pick a model, optionally a system prompt and thinking, and start."""
    return render(
        request,
        "conversations/chat.html",
        {**_page_context(request), "conversation": None, **_budget_context(request)},
    )


def _budget_context(request: HttpRequest) -> dict:
    """The empty state's budget note: the warning (from 80%) or the refusal (at
    100%), one or the other, before anything is typed."""
    status = services.new_conversation_budget(user=request.user)
    if status.level not in ("warning", "exceeded"):
        return {}
    return {"budget_level": status.level, "budget_message": status.as_frame()["message"]}


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
                **_page_context(request),
                **_budget_context(request),
                "conversation": None,
                "form_errors": form.errors,
            },
            status=400,
        )
    try:
        conversation = services.conversation_start(owner=request.user, **form.cleaned_data)
    except services.ChatInputError as exc:
        if wants_json:
            return JsonResponse({"error": exc.message, "code": exc.code}, status=400)
        if exc.code == "budget_exceeded":
            # The note says it already (one red box, not two).
            errors = {}
        else:
            errors = {"model": [exc.message]}
        return render(
            request,
            "conversations/chat.html",
            {
                **_page_context(request),
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
    return render(
        request,
        "conversations/chat.html",
        {
            **_page_context(request, current_id=conversation.id),
            "conversation": conversation,
            "messages_list": messages,
            "streaming_state": streaming,
            "ws_path": f"/ws/c/{conversation.id}/",
        },
    )


@login_required
@require_POST
def conversation_rename(request: HttpRequest, conversation_id: str) -> HttpResponse:
    conversation = selectors.conversation_for_user(
        user=request.user, conversation_id=conversation_id
    )
    if conversation is None:
        raise Http404("No such conversation.")
    form = ConversationRenameForm(request.POST)
    if not form.is_valid():
        return JsonResponse({"error": "A title cannot be empty."}, status=400)
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
    """Pin (`pinned=true`) or unpin (`pinned=false`) a conversation in the sidebar."""
    conversation = selectors.conversation_for_user(
        user=request.user, conversation_id=conversation_id
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
        user=request.user, conversation_id=conversation_id
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
        user=user, conversation_id=conversation_id
    )
    if conversation is None:
        raise Http404("No such conversation.")
    form = EstimateForm(request.POST)
    if not form.is_valid() or len(form.cleaned_data["text"]) > settings.CHAT_MAX_MESSAGE_CHARS:
        return JsonResponse({"error": "Nothing to estimate."}, status=400)
    chat_request = await sync_to_async(services.chat_request_for_draft)(
        conversation=conversation,
        text=form.cleaned_data["text"],
        attachment_ids=form.cleaned_data["attachments"],
    )
    try:
        tokens = await input_tokens_count(chat_request)
    except ClaudeError as exc:
        return JsonResponse({"error": exc.human_message}, status=502)
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
        }
    )


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

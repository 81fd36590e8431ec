"""The admin: jobs and summaries (read-only), and an action on selected
conversations that previews, then starts, a summary job per team."""

from __future__ import annotations

from collections import defaultdict

from django.contrib import admin, messages
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.html import format_html, format_html_join
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from accounts.audit import request_ip
from accounts.models import Team
from conversations.admin import ConversationAdmin
from conversations.models import Conversation
from summaries import services
from summaries.models import Summary, SummaryBatch, SummaryDigest, SummaryJob, SummaryRequest


class _ReadOnly(admin.ModelAdmin):
    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


class SummaryBatchInline(admin.TabularInline):
    model = SummaryBatch
    extra = 0
    can_delete = False
    fields = ["index", "status", "anthropic_batch_id", "request_count", "byte_size", "poll_count"]
    readonly_fields = fields

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(SummaryJob)
class SummaryJobAdmin(_ReadOnly):
    list_display = [
        "id",
        "team",
        "created_by",
        "source",
        "status",
        "conversations_count",
        "cost_usd",
        "created_at",
        "page",
    ]
    list_filter = ["status", "source", "team"]
    inlines = [SummaryBatchInline]

    @admin.display(description=_("Job page"))
    def page(self, obj):
        return format_html(
            '<a href="{}">{}</a>', reverse("summary_job", args=[obj.pk]), gettext("open")
        )


@admin.register(SummaryRequest)
class SummaryRequestAdmin(_ReadOnly):
    list_display = ["custom_id", "job", "status", "error_type", "cost_usd", "ended_at"]
    list_filter = ["status"]
    exclude = ["params"]
    raw_id_fields = ["job", "batch", "conversation", "api_call"]


@admin.register(Summary)
class SummaryAdmin(_ReadOnly):
    list_display = ["id", "conversation", "job", "model", "cost_usd", "created_at"]
    raw_id_fields = ["request", "job", "conversation"]
    exclude = ["html"]


@admin.register(SummaryDigest)
class SummaryDigestAdmin(admin.ModelAdmin):
    list_display = ["team", "enabled", "enabled_by", "model", "updated_at"]
    raw_id_fields = ["enabled_by"]


@admin.action(description=_("Summarise the selected conversations (Message Batches, half price)"))
def summarise_selected(modeladmin, request, queryset):
    """Staff: preview a job per team of the selected conversations, then start them."""
    by_team: dict[int, list] = defaultdict(list)
    skipped = 0
    for conversation_id, team_id in queryset.values_list("id", "team_id"):
        if team_id is None:
            skipped += 1
        else:
            by_team[team_id].append(conversation_id)
    teams = Team.objects.in_bulk(list(by_team))
    if request.POST.get("confirm") == "yes":
        started = []
        for team_id, ids in by_team.items():
            try:
                job = services.summary_job_create(
                    team=teams[team_id],
                    actor=request.user,
                    source=SummaryJob.Source.ADMIN,
                    conversation_ids=ids,
                    ip=request_ip(request),
                )
            except services.SummaryInputError as exc:
                modeladmin.message_user(request, f"{teams[team_id]}: {exc.message}", messages.ERROR)
                continue
            started.append(
                format_html(
                    '<a href="{}">{}</a> ({})',
                    reverse("summary_job", args=[job.pk]),
                    gettext("job %(id)s") % {"id": job.pk},
                    teams[team_id],
                )
            )
        if started:
            modeladmin.message_user(
                request,
                format_html(
                    gettext("Started {jobs}."),
                    jobs=format_html_join(", ", "{}", ((s,) for s in started)),
                ),
                messages.SUCCESS,
            )
        return None
    previews = []
    for team_id, ids in by_team.items():
        try:
            estimate = services.summary_preview(team=teams[team_id], conversation_ids=ids)
        except services.SummaryInputError as exc:
            modeladmin.message_user(request, exc.message, messages.ERROR)
            return None
        previews.append((teams[team_id], estimate))
    return TemplateResponse(
        request,
        "admin/summaries/confirm.html",
        {
            **modeladmin.admin_site.each_context(request),
            "title": gettext("Summarise conversations"),
            "previews": previews,
            "skipped": skipped,
            "selected": queryset.values_list("pk", flat=True),
            "action": "summarise_selected",
            "opts": modeladmin.model._meta,
        },
    )


class ConversationSummariesAdmin(ConversationAdmin):
    actions = [*(ConversationAdmin.actions or []), summarise_selected]


# The conversations' admin, with the action added here: conversations never
# imports this app (it sits above).
admin.site.unregister(Conversation)
admin.site.register(Conversation, ConversationSummariesAdmin)

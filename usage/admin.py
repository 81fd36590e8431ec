"""The admin's "Usage & costs" page, the ledger, and budgets in the admin.

The page is a plain view added to the admin site's URLs (behind
`admin_view`, so staff only); it reads `usage_report` and renders three
tables, a daily SVG chart, and the same rows as CSV.

The user and team pages show this month's spend and budget: usage registers
subclasses of the accounts admin (accounts sits below usage and knows nothing
of budgets).
"""

from __future__ import annotations

import csv
import datetime as dt
from decimal import Decimal

from django.contrib import admin
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import path
from django.utils import timezone, translation
from django.utils.formats import date_format
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from accounts import admin as accounts_admin
from accounts.audit import request_ip
from accounts.models import Team, User
from usage.budgets import budget_change_audit, budget_for_team, budget_for_user
from usage.charts import daily_chart_svg
from usage.forms import ReportFilterForm
from usage.models import ApiCall, Budget, BudgetReservation, DailyUsage
from usage.money import MICRO_DOLLAR, usd_display
from usage.periods import month_start
from usage.report import REPORT_COLUMNS, endpoint_name, usage_report


def _report_params(request: HttpRequest) -> dict:
    form = ReportFilterForm(request.GET)
    data = form.cleaned_data if form.is_valid() else {}
    today = timezone.now().date()
    start = data.get("start") or month_start()
    end = data.get("end") or today
    if end < start:
        start, end = end, start
    # A chart of more than a year of days is unreadable and the range unbounded.
    start = max(start, end - dt.timedelta(days=366))
    return {
        "start": start,
        "end": end,
        "team_id": data.get("team"),
        "user_id": data.get("user"),
        "model": data.get("model") or "",
        "sort": data.get("sort") or "-cost_usd",
        "chart_by": data.get("chart") or "team",
    }


def usage_report_view(request: HttpRequest) -> HttpResponse:
    """Usage & costs: totals per user, team and model, a daily chart, CSV export."""
    params = _report_params(request)
    report = usage_report(**params)
    if request.GET.get("format") == "csv":
        return _csv(report)
    chart = daily_chart_svg(
        days=report.days,
        series=report.series,
        title=(
            gettext("Daily cost per team, %(start)s to %(end)s")
            if report.chart_by == "team"
            else gettext("Daily cost per user, %(start)s to %(end)s")
        )
        % {"start": date_format(report.start), "end": date_format(report.end)},
    )
    query = request.GET.copy()
    query.pop("sort", None)
    query.pop("format", None)
    csv_query = request.GET.copy()
    csv_query["format"] = "csv"
    context = {
        **admin.site.each_context(request),
        "title": gettext("Usage & costs"),
        "report": report,
        "chart": chart,
        "params": params,
        "columns": REPORT_COLUMNS,
        "tables": [
            (gettext("Per user"), report.by_user),
            (gettext("Per team"), report.by_team),
            (gettext("Per model"), report.by_model),
            (gettext("Per provider and endpoint"), report.by_endpoint),
        ],
        "teams": Team.objects.order_by("name"),
        "users": User.objects.order_by("username").only("id", "username", "display_name"),
        "models": DailyUsage.objects.order_by("model").values_list("model", flat=True).distinct(),
        "sort_query": query.urlencode(),
        "csv_query": csv_query.urlencode(),
    }
    return TemplateResponse(request, "admin/usage/report.html", context)


def _csv(report) -> HttpResponse:
    """Exactly the rows the page shows, each table in turn, then the total."""
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = (
        f'attachment; filename="usage-{report.start:%Y%m%d}-{report.end:%Y%m%d}.csv"'
    )
    writer = csv.writer(response)
    # The header is the same whatever the admin's language: scripts read it.
    with translation.override("en"):
        writer.writerow(["table", *(str(label) for _key, label in REPORT_COLUMNS)])
    for table, rows in (
        ("user", report.by_user),
        ("team", report.by_team),
        ("model", report.by_model),
        ("endpoint", report.by_endpoint),
    ):
        for row in rows:
            writer.writerow([table, *_csv_cells(row)])
    writer.writerow(["total", *_csv_cells(report.total)])
    return response


def _csv_cells(row) -> list:
    """Money to the micro-dollar, as the ledger stores it."""
    return [
        cell.quantize(MICRO_DOLLAR) if isinstance(cell, Decimal) else cell for cell in row.cells()
    ]


_admin_get_urls = admin.site.get_urls


def _get_urls():
    return [
        path("usage-report/", admin.site.admin_view(usage_report_view), name="usage_report"),
        *_admin_get_urls(),
    ]


admin.site.get_urls = _get_urls
admin.site.index_template = "admin/usage/index.html"


def _limit_of(*, team=None, user=None):
    scope = {"team": team} if team is not None else {"user": user}
    return Budget.objects.filter(**scope).values_list("monthly_limit_usd", flat=True).first()


@admin.register(Budget)
class BudgetAdmin(admin.ModelAdmin):
    """Every change is in the audit log, as one made on a team's budget page."""

    list_display = ["__str__", "team", "user", "monthly_limit_usd", "updated_at"]
    list_select_related = ["team", "user"]
    autocomplete_fields = ["team", "user"]

    def save_model(self, request, obj, form, change):
        before = (
            Budget.objects.filter(pk=obj.pk).values_list("monthly_limit_usd", flat=True).first()
            if change
            else None
        )
        super().save_model(request, obj, form, change)
        budget_change_audit(
            team=obj.team,
            user=obj.user,
            before=before,
            after=obj.monthly_limit_usd,
            actor=request.user,
            ip=request_ip(request),
        )

    def delete_model(self, request, obj):
        before = obj.monthly_limit_usd
        super().delete_model(request, obj)
        budget_change_audit(
            team=obj.team,
            user=obj.user,
            before=before,
            after=None,
            actor=request.user,
            ip=request_ip(request),
        )


class ReadOnlyAdmin(admin.ModelAdmin):
    """Rows only the app writes: the ledger is append-only, reservations move with it."""

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(BudgetReservation)
class BudgetReservationAdmin(ReadOnlyAdmin):
    list_display = ["created_at", "user_scope", "team_scope", "amount_usd", "actual_usd", "status"]
    list_filter = ["status"]
    date_hierarchy = "created_at"


@admin.register(ApiCall)
class ApiCallAdmin(ReadOnlyAdmin):
    list_display = [
        "created_at",
        "user",
        "team",
        "model",
        "purpose",
        "where",
        "input_tokens",
        "output_tokens",
        "cache_read_tokens",
        "cost_usd",
        "price_key",
        "pricing",
        "premium",
        "stop_reason",
        "error_type",
    ]
    list_filter = [
        "provider",
        "endpoint",
        "region",
        "model",
        "purpose",
        "priced",
        "batch",
        "regional",
        "team",
    ]
    search_fields = ["request_id", "user__username"]
    list_select_related = ["user", "team"]
    date_hierarchy = "created_at"

    @admin.display(description=_("Provider, endpoint"), ordering="provider")
    def where(self, obj: ApiCall) -> str:
        return endpoint_name(obj.provider, obj.region, obj.endpoint)

    @admin.display(description=_("Regional premium"), ordering="regional_premium_usd")
    def premium(self, obj: ApiCall) -> str:
        if not obj.regional:
            return "—"
        return f"+10% (${obj.regional_premium_usd:.6f})"

    @admin.display(description=_("Priced"), boolean=False, ordering="priced")
    def pricing(self, obj: ApiCall) -> str:
        # An unknown model is billed at the fallback row; say so plainly.
        return gettext("yes") if obj.priced else gettext("UNPRICED (fallback rate)")


# --- Budgets on the user and team pages -----------------------------------------------


class UserBudgetInline(admin.StackedInline):
    model = Budget
    fk_name = "user"
    fields = ["monthly_limit_usd"]
    extra = 0
    max_num = 1
    verbose_name = _("personal monthly budget")


class TeamBudgetInline(UserBudgetInline):
    fk_name = "team"
    verbose_name = _("team monthly budget")


def _money(value) -> str:
    return gettext("no limit") if value is None else usd_display(value)


_MONTH_FIELDS = ("month_spent", "month_budget", "month_remaining")


class MonthSpendMixin:
    """Read-only "this month" figures on a user's or team's admin page, and its
    budget inline's changes in the audit log.

    The admin using it defines `_month(obj) -> ScopeBudget | None`: whose figures.
    """

    def save_formset(self, request, form, formset, change):
        if formset.model is not Budget:
            return super().save_formset(request, form, formset, change)
        scope = (
            {"team": form.instance} if isinstance(form.instance, Team) else {"user": form.instance}
        )
        before = _limit_of(**scope)
        super().save_formset(request, form, formset, change)
        budget_change_audit(
            **scope,
            before=before,
            after=_limit_of(**scope),
            actor=request.user,
            ip=request_ip(request),
        )

    @admin.display(description=_("Spent this month"))
    def month_spent(self, obj) -> str:
        month = self._month(obj)
        return "—" if month is None else _money(month.spent_usd)

    @admin.display(description=_("Budget"))
    def month_budget(self, obj) -> str:
        month = self._month(obj)
        return "—" if month is None else _money(month.limit_usd)

    @admin.display(description=_("Remaining this month"))
    def month_remaining(self, obj) -> str:
        month = self._month(obj)
        if month is None or month.limit_usd is None:
            return "—"
        return gettext("%(remaining)s (%(percent)s%% used)") % {
            "remaining": _money(month.remaining_usd),
            "percent": month.percent,
        }


class UserAdmin(MonthSpendMixin, accounts_admin.UserAdmin):
    fieldsets = accounts_admin.UserAdmin.fieldsets + (("Usage", {"fields": _MONTH_FIELDS}),)
    readonly_fields = [*accounts_admin.UserAdmin.readonly_fields, *_MONTH_FIELDS]
    inlines = [*accounts_admin.UserAdmin.inlines, UserBudgetInline]

    def _month(self, obj):
        return budget_for_user(user=obj) if obj and obj.pk else None


class TeamAdmin(MonthSpendMixin, accounts_admin.TeamAdmin):
    fields = [*accounts_admin.TeamAdmin.fields, *_MONTH_FIELDS]
    readonly_fields = [*accounts_admin.TeamAdmin.readonly_fields, *_MONTH_FIELDS]
    inlines = [*accounts_admin.TeamAdmin.inlines, TeamBudgetInline]

    def _month(self, obj):
        return budget_for_team(team=obj) if obj and obj.pk else None


# `accounts_admin` is imported above, so its registrations come first, whatever
# the order in which the admin discovers the apps.
for model, model_admin in ((User, UserAdmin), (Team, TeamAdmin)):
    admin.site.unregister(model)
    admin.site.register(model, model_admin)

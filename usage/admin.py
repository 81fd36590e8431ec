"""The admin's "Usage & costs" page, and budgets in the admin.

The page is a plain view added to the admin site's URLs (behind
`admin_view`, so staff only); it reads `usage_report` and renders three
tables, a daily SVG chart, and the same rows as CSV.
"""

from __future__ import annotations

import csv
import datetime as dt
from decimal import Decimal

from django.contrib import admin
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import path
from django.utils import timezone

from accounts.models import Team, User
from usage.charts import daily_chart_svg
from usage.forms import ReportFilterForm
from usage.models import Budget, BudgetReservation, DailyUsage
from usage.money import MICRO_DOLLAR
from usage.selectors import REPORT_COLUMNS, usage_report
from usage.services import month_start


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
        title=f"Daily cost per {report.chart_by}, {report.start} to {report.end}",
    )
    query = request.GET.copy()
    query.pop("sort", None)
    query.pop("format", None)
    csv_query = request.GET.copy()
    csv_query["format"] = "csv"
    context = {
        **admin.site.each_context(request),
        "title": "Usage & costs",
        "report": report,
        "chart": chart,
        "params": params,
        "columns": REPORT_COLUMNS,
        "tables": [
            ("Per user", report.by_user),
            ("Per team", report.by_team),
            ("Per model", report.by_model),
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
    writer.writerow(["table", *(label for _, label in REPORT_COLUMNS)])
    for table, rows in (
        ("user", report.by_user),
        ("team", report.by_team),
        ("model", report.by_model),
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


@admin.register(Budget)
class BudgetAdmin(admin.ModelAdmin):
    list_display = ["__str__", "team", "user", "monthly_limit_usd", "updated_at"]
    list_select_related = ["team", "user"]
    autocomplete_fields = ["team", "user"]


@admin.register(BudgetReservation)
class BudgetReservationAdmin(admin.ModelAdmin):
    list_display = ["created_at", "user_scope", "team_scope", "amount_usd", "actual_usd", "status"]
    list_filter = ["status"]
    date_hierarchy = "created_at"

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

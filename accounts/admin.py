from django.contrib import admin
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin

from accounts.models import Membership, Team, User
from usage.models import Budget
from usage.money import usd_display
from usage.selectors import budget_for_team, budget_for_user


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    autocomplete_fields = ["user", "team"]


class UserBudgetInline(admin.StackedInline):
    model = Budget
    fk_name = "user"
    fields = ["monthly_limit_usd"]
    extra = 0
    max_num = 1
    verbose_name = "personal monthly budget"


class TeamBudgetInline(UserBudgetInline):
    fk_name = "team"
    verbose_name = "team monthly budget"


def _money(value) -> str:
    return "no limit" if value is None else usd_display(value)


class MonthSpendMixin:
    """Read-only "this month" figures on a user's or team's admin page.

    The admin using it defines `_month(obj) -> ScopeBudget | None`: whose figures.
    """

    @admin.display(description="Spent this month")
    def month_spent(self, obj) -> str:
        month = self._month(obj)
        return "—" if month is None else _money(month.spent_usd)

    @admin.display(description="Budget")
    def month_budget(self, obj) -> str:
        month = self._month(obj)
        return "—" if month is None else _money(month.limit_usd)

    @admin.display(description="Remaining this month")
    def month_remaining(self, obj) -> str:
        month = self._month(obj)
        if month is None or month.limit_usd is None:
            return "—"
        return f"{_money(month.remaining_usd)} ({month.percent}% used)"


@admin.register(User)
class UserAdmin(MonthSpendMixin, DjangoUserAdmin):
    fieldsets = DjangoUserAdmin.fieldsets + (
        ("Profile", {"fields": ("display_name",)}),
        ("Usage", {"fields": ("month_spent", "month_budget", "month_remaining")}),
    )
    readonly_fields = ["month_spent", "month_budget", "month_remaining"]
    inlines = [MembershipInline, UserBudgetInline]

    def _month(self, obj):
        return budget_for_user(user=obj) if obj and obj.pk else None


@admin.register(Team)
class TeamAdmin(MonthSpendMixin, admin.ModelAdmin):
    list_display = ["name", "slug", "created_at"]
    search_fields = ["name", "slug"]
    prepopulated_fields = {"slug": ("name",)}
    fields = ["name", "slug", "month_spent", "month_budget", "month_remaining"]
    readonly_fields = ["month_spent", "month_budget", "month_remaining"]
    inlines = [MembershipInline, TeamBudgetInline]

    def _month(self, obj):
        return budget_for_team(team=obj) if obj and obj.pk else None

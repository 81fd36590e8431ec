from django.contrib import admin
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.utils.translation import gettext_lazy as _

from accounts.forms import ThrottledAdminAuthenticationForm
from accounts.models import AuditEvent, Invite, Membership, Team, User

# The budget fields and inlines of these pages are added by `usage/admin.py`,
# which registers subclasses of these two: accounts sits below usage.


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    autocomplete_fields = ["user", "team"]


@admin.register(User)
class UserAdmin(DjangoUserAdmin):
    fieldsets = DjangoUserAdmin.fieldsets + ((_("Profile"), {"fields": ("display_name",)}),)
    inlines = [MembershipInline]


@admin.register(Team)
class TeamAdmin(admin.ModelAdmin):
    list_display = ["name", "slug", "created_at"]
    search_fields = ["name", "slug"]
    prepopulated_fields = {"slug": ("name",)}
    fields = ["name", "slug", "mfa_required", "share_links_enabled"]
    # Changed by an owner at /accounts/security/, where it is audited.
    readonly_fields = ["mfa_required"]
    inlines = [MembershipInline]


@admin.register(Invite)
class InviteAdmin(admin.ModelAdmin):
    """Invitations are made on the team page (which mails the link); here they are read."""

    list_display = [
        "email",
        "team",
        "role",
        "invited_by",
        "created_at",
        "expires_at",
        "accepted_at",
        "revoked_at",
    ]
    list_filter = ["team", "role"]
    search_fields = ["email"]
    readonly_fields = [
        "team",
        "email",
        "role",
        "invited_by",
        "created_at",
        "expires_at",
        "accepted_at",
        "accepted_by",
        "revoked_at",
    ]
    exclude = ["nonce"]

    def has_add_permission(self, request):
        return False


@admin.register(AuditEvent)
class AuditEventAdmin(admin.ModelAdmin):
    """Read-only: the log is append-only."""

    list_display = ["created_at", "actor_name", "action", "team", "target", "ip"]
    list_filter = ["action", "team"]
    search_fields = ["actor_name", "target", "ip"]
    date_hierarchy = "created_at"

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


# The admin's sign-in goes through the same failed-attempt throttle as the site's.
admin.site.login_form = ThrottledAdminAuthenticationForm

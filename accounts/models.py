from __future__ import annotations

from django.contrib.auth.models import AbstractUser
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy


class User(AbstractUser):
    """A person who signs in. Custom from the first migration so fields can grow."""

    display_name = models.CharField(max_length=150, blank=True)

    def __str__(self) -> str:
        return self.display_name or self.username


class Team(models.Model):
    name = models.CharField(max_length=150)
    slug = models.SlugField(max_length=80, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)
    # The team's owners and admins must sign in with a second factor (TOTP);
    # set by an owner through `accounts.services.team_mfa_requirement_set`.
    mfa_required = models.BooleanField(default=False)
    # A team owner's choice: a conversation's owner may let every signed-in member
    # of the team open it by its address (read-only, unlisted). There are no
    # public links.
    share_links_enabled = models.BooleanField(default=False)
    members = models.ManyToManyField(User, through="Membership", related_name="teams")

    class Meta:
        verbose_name = _("team")
        verbose_name_plural = _("teams")
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Membership(models.Model):
    class Role(models.TextChoices):
        OWNER = "owner", pgettext_lazy("team role", "Owner")
        ADMIN = "admin", pgettext_lazy("team role", "Admin")
        MEMBER = "member", pgettext_lazy("team role", "Member")

    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="memberships")
    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.MEMBER)
    joined_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = _("membership")
        verbose_name_plural = _("memberships")
        constraints = [
            models.UniqueConstraint(fields=["user", "team"], name="membership_unique_user_team"),
        ]

    def __str__(self) -> str:
        return f"{self.user} in {self.team} ({self.role})"


class Invite(models.Model):
    """An invitation by e-mail to join a team: single-use, until `expires_at`.

    The link carries `accounts.invites.invite_token(invite)`, signed with the
    site's secret key, so the row alone does not make a working link."""

    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="invites")
    email = models.EmailField()
    role = models.CharField(
        max_length=16, choices=Membership.Role.choices, default=Membership.Role.MEMBER
    )
    invited_by = models.ForeignKey(
        User, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # Random, part of the signed token: a new invitation never reuses an old link.
    nonce = models.CharField(max_length=64)
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField()
    accepted_at = models.DateTimeField(null=True, blank=True)
    accepted_by = models.ForeignKey(
        User, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = _("invitation")
        verbose_name_plural = _("invitations")
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["team", "accepted_at"], name="invite_team_pending")]

    def __str__(self) -> str:
        return f"{self.email} to {self.team}"

    @property
    def is_pending(self) -> bool:
        return (
            self.accepted_at is None
            and self.revoked_at is None
            and self.expires_at > timezone.now()
        )


class AuditEvent(models.Model):
    """One thing someone did that a team owner or staff may need to answer for.

    Append-only: a saved event is never changed or deleted through the ORM
    (`save` on an existing row and `delete` raise); write through
    `accounts.audit.audit_record`."""

    class Action(models.TextChoices):
        SIGN_IN = "sign_in", pgettext_lazy("audit action", "Signed in")
        SIGN_IN_FAILED = "sign_in_failed", pgettext_lazy("audit action", "Sign-in failed")
        SIGN_OUT = "sign_out", pgettext_lazy("audit action", "Signed out")
        INVITED = "invited", pgettext_lazy("audit action", "Invited")
        JOINED = "joined", pgettext_lazy("audit action", "Joined")
        REMOVED = "removed", pgettext_lazy("audit action", "Removed a member")
        ROLE_CHANGED = "role_changed", pgettext_lazy("audit action", "Changed a role")
        SHARED = "shared", pgettext_lazy("audit action", "Shared a conversation")
        UNSHARED = "unshared", pgettext_lazy("audit action", "Stopped sharing")
        BUDGET_CHANGED = "budget_changed", pgettext_lazy("audit action", "Changed a budget")
        PRESET_CHANGED = "preset_changed", pgettext_lazy("audit action", "Changed a preset")
        EXPORTED = "exported", pgettext_lazy("audit action", "Exported")
        SUMMARY_STARTED = "summary_started", pgettext_lazy("audit action", "Started a summary job")
        SETTINGS_CHANGED = (
            "settings_changed",
            pgettext_lazy("audit action", "Changed team settings"),
        )
        INVITE_REVOKED = "invite_revoked", pgettext_lazy("audit action", "Withdrew an invitation")

    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    # Who did it; null for a failed sign-in by an unknown name, and kept (SET_NULL)
    # when the account is deleted, with the name in `actor_name`.
    actor = models.ForeignKey(
        User, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    actor_name = models.CharField(max_length=150, blank=True)
    # The team it concerns; null for what concerns no team (a sign-in).
    team = models.ForeignKey(
        Team, null=True, blank=True, on_delete=models.SET_NULL, related_name="audit_events"
    )
    action = models.CharField(max_length=32, choices=Action.choices)
    # What it was done to, as "kind:id" (for example "user:12", "conversation:<uuid>").
    target = models.CharField(max_length=200, blank=True)
    ip = models.GenericIPAddressField(null=True, blank=True)
    details = models.JSONField(default=dict, blank=True)

    class Meta:
        verbose_name = _("audit event")
        verbose_name_plural = _("audit events")
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["team", "-created_at"], name="audit_team_created")]

    def __str__(self) -> str:
        return f"{self.created_at:%Y-%m-%d %H:%M} {self.actor_name} {self.action}"

    def save(self, *args, **kwargs):
        if self.pk is not None and not self._state.adding:
            raise ValueError("Audit events are append-only.")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise ValueError("Audit events are append-only.")

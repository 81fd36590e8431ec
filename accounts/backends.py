"""The authentication backend: allauth's (username or e-mail address), loading the
signed-in person together with what the two-factor gate asks of every request
(`accounts.mfa`), in the same query."""

from __future__ import annotations

from allauth.account.auth_backends import AuthenticationBackend as AllauthBackend
from allauth.mfa.models import Authenticator
from django.db.models import Exists, OuterRef

from accounts.models import Membership, User


def user_with_mfa_facts(queryset):
    """Annotate `mfa_totp_enrolled` and `mfa_team_required` (see accounts.mfa)."""
    return queryset.annotate(
        mfa_totp_enrolled=Exists(
            Authenticator.objects.filter(user=OuterRef("pk"), type=Authenticator.Type.TOTP)
        ),
        mfa_team_required=Exists(
            Membership.objects.filter(
                user=OuterRef("pk"),
                role__in=[Membership.Role.OWNER, Membership.Role.ADMIN],
                team__mfa_required=True,
            )
        ),
    )


class AuthenticationBackend(AllauthBackend):
    def get_user(self, user_id):
        try:
            user = user_with_mfa_facts(User._default_manager).get(pk=user_id)
        except User.DoesNotExist:
            return None
        return user if self.user_can_authenticate(user) else None

"""Account changes that must reach open sockets (see `accounts.sessions`)."""

from __future__ import annotations

from django.contrib.auth.signals import user_logged_out
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from accounts.models import Membership, User
from accounts.sessions import access_check_after_commit


@receiver(user_logged_out)
def _sockets_check_on_logout(sender, request, user, **kwargs) -> None:
    if user is not None:
        access_check_after_commit(user.pk, ended_session=request.session.session_key)


@receiver(post_save, sender=User)
def _sockets_check_on_account_change(sender, instance: User, update_fields=None, **kwargs) -> None:
    # Signing in saves `last_login` only: nothing a socket depends on.
    if update_fields is not None and set(update_fields) <= {"last_login"}:
        return
    access_check_after_commit(instance.pk)


@receiver(post_delete, sender=User)
def _sockets_check_on_account_delete(sender, instance: User, **kwargs) -> None:
    access_check_after_commit(instance.pk)


@receiver(post_delete, sender=Membership)
def _sockets_check_on_membership_end(sender, instance: Membership, **kwargs) -> None:
    # Out of a team (removed, left, or deleted in the admin): every socket of the
    # person asks again, and those on the team's conversations close.
    access_check_after_commit(instance.user_id)

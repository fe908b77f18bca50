"""Account changes that take rights away from open sockets: each asks for a re-check."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import User
from django.contrib.auth.signals import user_logged_out
from django.db.models.signals import post_save
from django.dispatch import receiver
from django.http import HttpRequest

from collab.services import access_recheck_user


@receiver(post_save, sender=User)
def _user_saved(sender: Any, instance: User, update_fields: Any = None, **kwargs: Any) -> None:
    """Deactivated, or a new password: the user's sockets check their rights again."""
    if kwargs.get("created") or (
        update_fields is not None and set(update_fields) <= {"last_login"}
    ):
        return  # a new account has no sockets; a login takes nothing away
    access_recheck_user(user_id=instance.pk)


@receiver(user_logged_out)
def _logged_out(sender: Any, request: HttpRequest, user: User | None, **kwargs: Any) -> None:
    """The sockets of the browser session that logged out close."""
    if user is not None and request.session.session_key is not None:
        access_recheck_user(user_id=user.pk, ended_session=request.session.session_key)

"""`manage.py issue_token USERNAME [--create]`: print a new API token for a user."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser

from collab.services import token_issue
from collab.text import printable_text


class Command(BaseCommand):
    """Print a new API token on stdout."""

    help = "Print a new API token for USERNAME (--create makes the user if missing)."

    def add_arguments(self, parser: CommandParser) -> None:
        """USERNAME and --create."""
        parser.add_argument("username")
        parser.add_argument("--create", action="store_true", help="create the user if missing")

    def handle(self, *args: Any, username: str, create: bool, **options: Any) -> None:
        """Issue the token."""
        model = get_user_model()
        try:
            printable_text(username, what="a username")
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        user = model.objects.filter(username=username).first()
        if user is None:
            if not create:
                raise CommandError(f"no user named {username!r} (use --create to make one)")
            user = model.objects.create_user(username=username)
        if not user.is_active:
            raise CommandError(f"user {username!r} is inactive")
        self.stdout.write(token_issue(user=user))

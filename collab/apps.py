"""App config for collaboration."""

from django.apps import AppConfig


class CollabConfig(AppConfig):
    """Documents, members, tokens and the realtime endpoint."""

    name = "collab"
    default_auto_field = "django.db.models.BigAutoField"

"""App config for collaboration."""

from django.apps import AppConfig


class CollabConfig(AppConfig):
    """Documents, members, tokens and the realtime endpoint."""

    name = "collab"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        """Load the Celery app, so `shared_task`s bind to it in every Django process.

        Not from `collab/__init__.py` as Celery's guide has it: that would make the pure
        core in `collab/sync/` import Celery and Django with its package.
        """
        from collab import celery, signals  # noqa: F401

"""App config for background work."""

from django.apps import AppConfig


class TasksConfig(AppConfig):
    """Celery tasks: compaction, the export chain, purges; exports and dead letters."""

    name = "tasks"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        """Connect the task failure handler."""
        from tasks import signals  # noqa: F401

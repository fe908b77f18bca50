"""App config for background work."""

from django.apps import AppConfig


class TasksConfig(AppConfig):
    """Celery tasks (compaction, exports, purges) arrive with the background-work issue."""

    name = "tasks"

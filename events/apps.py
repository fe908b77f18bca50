"""App config for the event store."""

from django.apps import AppConfig


class EventsConfig(AppConfig):
    """The append-only event log and its snapshots."""

    name = "events"
    default_auto_field = "django.db.models.BigAutoField"

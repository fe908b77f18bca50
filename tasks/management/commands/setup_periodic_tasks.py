"""Create or update every beat entry; the one owner of the schedule, safe to run again."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand
from django.db import transaction
from django_celery_beat.models import IntervalSchedule, PeriodicTask

# name → task; how often each runs is a setting (PALIMPSEST_BEAT_SECONDS). Entries whose name
# starts with PREFIX belong to this command: ones no longer listed here are removed.
PREFIX = "palimpsest: "
TASKS = {
    "purge stale presence": "tasks.tasks.purge_stale_sessions",
    "expire exports": "tasks.tasks.expire_exports",
    "dispatch exports": "tasks.tasks.dispatch_exports",
    "compaction sweep": "tasks.tasks.compaction_sweep",
}


class Command(BaseCommand):
    """`python manage.py setup_periodic_tasks`."""

    help = "Create or update the periodic tasks beat runs (idempotent)."

    @transaction.atomic
    def handle(self, *args: Any, **options: Any) -> None:
        """Make the database schedule match TASKS and their intervals."""
        names = []
        for short, task in TASKS.items():
            name, seconds = f"{PREFIX}{short}", settings.PALIMPSEST_BEAT_SECONDS[short]
            names.append(name)
            every, _ = IntervalSchedule.objects.get_or_create(
                every=seconds, period=IntervalSchedule.SECONDS
            )
            _, created = PeriodicTask.objects.update_or_create(
                name=name,
                defaults={"task": task, "interval": every, "crontab": None, "enabled": True},
            )
            self.stdout.write(f"{'created' if created else 'kept'} {name}: {task} every {seconds}s")
        stale = PeriodicTask.objects.filter(name__startswith=PREFIX).exclude(name__in=names)
        for entry in stale:
            self.stdout.write(f"removed {entry.name}")
        stale.delete()

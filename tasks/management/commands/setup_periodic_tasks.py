"""Create or update every beat entry; the one owner of the schedule, safe to run again."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand
from django.db import transaction
from django_celery_beat.models import IntervalSchedule, PeriodicTask

# name → (task, every N seconds). Entries whose name starts with PREFIX belong to this command:
# ones no longer listed here are removed.
PREFIX = "palimpsest: "
ENTRIES = {
    f"{PREFIX}purge stale presence": ("tasks.tasks.purge_stale_sessions", 60),
    f"{PREFIX}expire exports": ("tasks.tasks.expire_exports", 600),
    f"{PREFIX}dispatch exports": ("tasks.tasks.dispatch_exports", 30),
    f"{PREFIX}compaction sweep": ("tasks.tasks.compaction_sweep", 300),
}


class Command(BaseCommand):
    """`python manage.py setup_periodic_tasks`."""

    help = "Create or update the periodic tasks beat runs (idempotent)."

    @transaction.atomic
    def handle(self, *args: Any, **options: Any) -> None:
        """Make the database schedule match ENTRIES."""
        for name, (task, seconds) in ENTRIES.items():
            every, _ = IntervalSchedule.objects.get_or_create(
                every=seconds, period=IntervalSchedule.SECONDS
            )
            _, created = PeriodicTask.objects.update_or_create(
                name=name,
                defaults={"task": task, "interval": every, "crontab": None, "enabled": True},
            )
            self.stdout.write(f"{'created' if created else 'kept'} {name}: {task} every {seconds}s")
        stale = PeriodicTask.objects.filter(name__startswith=PREFIX).exclude(name__in=ENTRIES)
        for entry in stale:
            self.stdout.write(f"removed {entry.name}")
        stale.delete()

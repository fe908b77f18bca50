"""Reads about exports."""

from __future__ import annotations

from django.db.models import Count

from tasks.models import Export, ExportStatus


def exports_by_status() -> dict[str, int]:
    """How many exports are in each status (every status listed, zero included)."""
    counts = dict.fromkeys(ExportStatus.values, 0)
    for row in Export.objects.values("status").annotate(n=Count("id")).order_by():
        counts[row["status"]] = row["n"]
    return counts

"""`/metrics`: Prometheus's scrape of this web process, for holders of the operators' token."""

from __future__ import annotations

import hmac

from asgiref.sync import sync_to_async
from django.conf import settings
from django.http import Http404, HttpRequest, HttpResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from collab.metrics import EXPORTS, REGISTRY
from collab.realtime.hub import running_hub
from tasks.selectors import exports_by_status


def _authorized(request: HttpRequest) -> bool:
    """Whether the request carries the configured bearer token (none configured: nobody)."""
    token = settings.PALIMPSEST_METRICS_TOKEN
    given = request.headers.get("Authorization", "")
    scheme, _, value = given.partition(" ")
    return (
        bool(token)
        and scheme.lower() == "bearer"
        and hmac.compare_digest(value.strip().encode(), token.encode())
    )


async def metrics(request: HttpRequest) -> HttpResponse:
    """The process's figures in Prometheus's text format; 404 without the token, so the
    endpoint does not announce itself."""
    if not _authorized(request):
        raise Http404
    # On the event loop, where the rooms live; the exports come from the database.
    hub = running_hub()
    if hub is not None:
        hub.observe()
    for status, count in (await sync_to_async(exports_by_status)()).items():
        EXPORTS.labels(status).set(count)
    return HttpResponse(generate_latest(REGISTRY), content_type=CONTENT_TYPE_LATEST)

"""URLs: the API (its routers mounted here), the admin, log in/out and the browser pages."""

from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.contrib.auth.models import User
from django.db import connection
from django.http import HttpRequest, JsonResponse
from django.urls import include, path
from ninja import NinjaAPI
from ninja.security import HttpBearer, SessionAuth

from collab import selectors, views
from collab.api import router as documents_router
from collab.http import install_error_handlers
from collab.realtime import drain
from events.api import router as history_router
from tasks.api import router as exports_router


class BearerToken(HttpBearer):
    """`Authorization: Bearer TOKEN` for scripts and non-browser clients."""

    def authenticate(self, request: HttpRequest, token: str) -> User | None:
        """The token's user, or None."""
        user = selectors.user_for_token(token=token)
        if user is not None:
            request.user = user
        return user


# The HTTP API under /api/ (django-ninja, OpenAPI at /api/openapi.json): each app's router.
api = NinjaAPI(
    title="Palimpsest API",
    version="1",
    auth=[BearerToken(), SessionAuth(csrf=True)],
    urls_namespace="api",
    # ninja's docs page would shadow /api/docs and loads its assets from a CDN, so it is off.
    docs_url=None,
)
install_error_handlers(api)
api.add_router("/", documents_router)
api.add_router("/", exports_router)
api.add_router("/", history_router)


def healthz(request: HttpRequest) -> JsonResponse:
    """Readiness for load balancers: the app answers and reaches its database; 503 while the
    process drains, so no one new is routed to it."""
    if drain.draining():
        return JsonResponse({"ok": False, "draining": True}, status=503)
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    return JsonResponse({"ok": True})


urlpatterns = [
    path("healthz", healthz),
    path("metrics", views.metrics),
    path("api/", api.urls),
    path("admin/", admin.site.urls),
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("", include("frontend.urls")),
]

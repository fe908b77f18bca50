"""App config for the browser app."""

from django.apps import AppConfig


class FrontendConfig(AppConfig):
    """Templates, pages and static files for browsers."""

    name = "frontend"

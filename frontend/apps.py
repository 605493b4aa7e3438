from django.apps import AppConfig


class FrontendConfig(AppConfig):
    """The web console: server-rendered pages calling the same services as the API."""

    name = "frontend"
    verbose_name = "Console"

"""WSGI entry point (gunicorn ``config.wsgi``)."""

import gc
import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
application = get_wsgi_application()


def _freeze_start_up() -> None:
    """Loads the URLs (and with them every view module) now, then moves everything start-up
    made out of the collector's sight: those objects live as long as the process, and a full
    collection walking them all was most of a slow answer's time (60–150 ms on a page that
    otherwise takes 20; docs/performance.md)."""
    from django.urls import get_resolver

    get_resolver().url_patterns  # noqa: B018 (imports the views)
    gc.collect()
    gc.freeze()


_freeze_start_up()

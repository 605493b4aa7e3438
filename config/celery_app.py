"""The Celery application. Configuration comes from Django settings (``CELERY_*``)."""

import os

from celery import Celery
from celery.signals import task_postrun, task_prerun
from kombu.transport import TRANSPORT_ALIASES

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
# filesystem:// (the embedded default) with atomic message files: config/broker.py.
TRANSPORT_ALIASES["filesystem"] = "config.broker:Transport"

app = Celery("gantry")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@task_prerun.connect
@task_postrun.connect
def _old_connections(**kwargs) -> None:
    """Before and after each task, as Django does around a request: a connection past
    CONN_MAX_AGE or left unusable by an error is closed, and the next query checks the
    connection's health first (CELERY_DB_REUSE_MAX keeps Celery from closing every one)."""
    from django.db import close_old_connections

    close_old_connections()

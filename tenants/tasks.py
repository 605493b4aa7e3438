"""Periodic housekeeping for tenants and access."""

import logging

from celery import shared_task
from django.conf import settings

from tenants import services

log = logging.getLogger(__name__)


@shared_task(name="tenants.prune_audit_events", ignore_result=True, time_limit=600)
def prune_audit_events() -> int:
    """Deletes audit events older than GANTRY_AUDIT_RETENTION_DAYS (idempotent)."""
    deleted = services.prune_audit_events(settings.GANTRY_AUDIT_RETENTION_DAYS)
    log.info(
        "pruned %d audit events older than %d days", deleted, settings.GANTRY_AUDIT_RETENTION_DAYS
    )
    return deleted

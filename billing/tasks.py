"""Periodic usage work: rollups and the raw samples' retention (both idempotent)."""

import logging
from datetime import timedelta

from celery import shared_task
from django.conf import settings
from django.utils import timezone

from billing import rollups
from provisioning.models import ReplicaIncarnation, UsageSample

log = logging.getLogger(__name__)


@shared_task(name="billing.rollup_usage", ignore_result=True, time_limit=600)
def rollup_usage() -> int:
    """Recomputes the hours recent samples and replica runs can still change."""
    usage, replicas = rollups.rollup_recent()
    log.info("usage rolled up: %d traffic rows, %d replica rows", usage, replicas)
    return usage + replicas


@shared_task(name="billing.prune_usage_samples", ignore_result=True, time_limit=600)
def prune_usage_samples() -> int:
    """Deletes raw samples (and finished replica runs) older than the retention; their hours
    stay in the rollups."""
    cutoff = timezone.now() - timedelta(days=settings.GANTRY_USAGE_SAMPLE_RETENTION_DAYS)
    deleted, _ = UsageSample.objects.filter(taken_at__lt=cutoff).delete()
    runs, _ = ReplicaIncarnation.objects.filter(stopped_at__lt=cutoff).delete()
    log.info("pruned %d usage samples and %d replica runs older than %s", deleted, runs, cutoff)
    return deleted

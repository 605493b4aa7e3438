"""Periodic billing work: rollups (then budget checks), the raw samples' retention, and closing
the previous month's invoices. All idempotent."""

import logging
from datetime import timedelta

from celery import shared_task
from django.conf import settings
from django.utils import timezone

from billing import analytics, budgets, invoices, rollups
from provisioning.models import ReplicaIncarnation, UsageSample

log = logging.getLogger(__name__)


@shared_task(name="billing.rollup_usage", ignore_result=True, time_limit=600)
def rollup_usage() -> int:
    """Recomputes the hours recent samples and replica runs can still change."""
    usage, replicas = rollups.rollup_recent()
    log.info("usage rolled up: %d traffic rows, %d replica rows", usage, replicas)
    alerts = budgets.check_budgets()  # the running month's totals just changed
    if alerts:
        log.info("%d budget alerts recorded", alerts)
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


@shared_task(name="billing.close_periods", ignore_result=True, time_limit=3600)
def close_periods() -> int:
    """Closes the previous month for every tenant, once it has been over for
    ``GANTRY_BILLING_CLOSE_DELAY_MINUTES`` (late samples arrive first). The number of invoices
    written now (a closed month is found, not written again)."""
    now = timezone.now()
    month = invoices.previous_month(now)
    _, end = invoices.month_bounds(month)
    if now < end + timedelta(minutes=settings.GANTRY_BILLING_CLOSE_DELAY_MINUTES):
        return 0
    if not invoices.needs_closing(month):
        return 0
    written = 0
    for tenant, _invoice, new, problem in invoices.close_all(month, now=now):
        if problem:
            log.error("billing period %s of %s not closed: %s", f"{month:%Y-%m}", tenant, problem)
        written += int(new)
    log.info("closed billing period %s: %d invoices written", f"{month:%Y-%m}", written)
    return written


@shared_task(name="billing.rollup_analytics", ignore_result=True, time_limit=600)
def rollup_analytics() -> int:
    """Recomputes the recent minutes (and their hours) of per-route and per-consumer traffic
    from the access log entries, and the minutes of entries that arrived late."""
    minutes, hours = analytics.rollup_recent()
    log.info("analytics rolled up: %d minute rows, %d hour rows", minutes, hours)
    return minutes + hours


@shared_task(name="billing.prune_analytics", ignore_result=True, time_limit=600)
def prune_analytics() -> int:
    """Deletes analytics minutes older than a day (and a margin) and hours older than the
    usage retention."""
    minutes, hours = analytics.prune()
    log.info("pruned %d analytics minute rows and %d hour rows", minutes, hours)
    return minutes + hours

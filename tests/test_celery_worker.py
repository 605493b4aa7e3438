"""A real Celery worker, over the real Redis broker, runs the periodic tasks against the real
database, and a real beat sends them: no eager mode, so serialisation, task options and
transaction visibility are exercised."""

import json
import os
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection, models
from django.utils import timezone

from tenants.models import AuditEvent

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_worker_prunes_old_audit_events(org):
    AuditEvent.objects.filter(tenant=org.tenant).update(
        created_at=timezone.now() - timedelta(days=settings.GANTRY_AUDIT_RETENTION_DAYS + 1)
    )
    keep = AuditEvent.objects.create(actor_name="x", action="create", object_type="t",
                                     object_name="recent")  # fmt: skip
    db = settings.DATABASES["default"]
    queue = f"gantry-test-{os.urandom(4).hex()}"
    env = {
        **os.environ,
        "DATABASE_URL": (
            f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{connection.settings_dict['NAME']}"
        ),
        "CELERY_BROKER_URL": settings.REDIS_URL,
    }
    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "config", "worker", "--pool", "solo", "-Q", queue,
         "--without-mingle", "--without-gossip", "--without-heartbeat", "--loglevel", "INFO"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        from tenants.tasks import prune_audit_events

        prune_audit_events.apply_async(queue=queue)
        deadline = time.monotonic() + 30
        while AuditEvent.objects.exclude(pk=keep.pk).exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not AuditEvent.objects.exclude(pk=keep.pk).exists()
        assert AuditEvent.objects.filter(pk=keep.pk).exists()
    finally:
        worker.terminate()
        output, _ = worker.communicate(timeout=20)
    assert "pruned" in output


def start(command: list[str], env: dict, log) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "config", *command, "--loglevel", "INFO"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_beat_heals_a_gateway_whose_reconcile_message_was_lost(org, tmp_path, monkeypatch):
    """The desired state is written but no message sent (as when a broker loses it): a real
    beat, with a one-second heal, sends reconcile_all; a real worker turns it into a revision."""
    from gateways import services
    from provisioning import tasks
    from provisioning.models import ConfigRevision, GatewayOperation
    from tests.delivery.helpers import ACTOR

    monkeypatch.setattr(tasks, "send_reconcile", lambda *args, **kwargs: None)  # lost
    gateway = services.create_gateway(ACTOR, org.tenant, "edge", {})
    assert not ConfigRevision.objects.filter(gateway=gateway).exists()
    db = settings.DATABASES["default"]
    env = {
        **os.environ,
        "DATABASE_URL": (
            f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{connection.settings_dict['NAME']}"
        ),
        "CELERY_BROKER_URL": settings.REDIS_URL,
        "GANTRY_CELERY_QUEUE": f"gantry-test-{os.urandom(4).hex()}",
        "GANTRY_DATA_DIR": str(tmp_path),  # beat's schedule file
        "GANTRY_RECONCILE_ALL_SECONDS": "1",
        "PYTHONUNBUFFERED": "1",
    }
    logs = {name: tmp_path / f"{name}.log" for name in ("worker", "beat")}
    with logs["worker"].open("wb") as worker_log, logs["beat"].open("wb") as beat_log:
        worker = start(["worker", "--pool", "solo", "--without-mingle", "--without-gossip",
                        "--without-heartbeat"], env, worker_log)  # fmt: skip
        beat = start(["beat", "--schedule", str(tmp_path / "schedule")], env, beat_log)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if ConfigRevision.objects.filter(gateway=gateway, current=True).exists():
                break
            assert beat.poll() is None and worker.poll() is None, "beat or the worker died"
            time.sleep(0.2)
        revision = ConfigRevision.objects.filter(gateway=gateway, current=True).first()
        output = "\n".join(f"--- {name}\n{log.read_text()[-4000:]}" for name, log in logs.items())
        assert revision is not None, f"no revision from the heal:\n{output}"
        assert revision.state == "valid" and revision.created_by == "system:reconcile"
        assert GatewayOperation.objects.filter(gateway=gateway, revision=revision).exists()
    finally:
        for process in (beat, worker):
            process.terminate()
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(10)
    beat_output = logs["beat"].read_text()
    assert "Sending due task reconcile-all (provisioning.reconcile_all)" in beat_output
    assert "Traceback" not in beat_output and "ValueError" not in beat_output, beat_output
    assert "Task provisioning.reconcile_all[" in logs["worker"].read_text()


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_beat_rolls_access_log_entries_up_into_analytics_minutes(org, tmp_path):
    """Entries stored by the runtime agent become per-route, per-consumer minute rows through
    a real beat (a one-second schedule) and a real worker."""
    import uuid

    from billing.models import AnalyticsHour, AnalyticsMinute
    from provisioning.models import AccessLogEntry

    now = timezone.now()
    AccessLogEntry.objects.bulk_create(
        AccessLogEntry(
            tenant=org.tenant,
            gateway_name="edge",
            replica=0,
            incarnation=uuid.uuid4(),
            segment=0,
            offset=n,
            timestamp=now - timedelta(seconds=n),
            status=status,
            route="api",
            consumer=consumer,
            duration_ms=3,
        )  # fmt: skip
        for n, (status, consumer) in enumerate([(200, "alice"), (500, "alice"), (200, "bob")])
    )
    db = settings.DATABASES["default"]
    env = {
        **os.environ,
        "DATABASE_URL": (
            f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{connection.settings_dict['NAME']}"
        ),
        "CELERY_BROKER_URL": settings.REDIS_URL,
        "GANTRY_CELERY_QUEUE": f"gantry-test-{os.urandom(4).hex()}",
        "GANTRY_DATA_DIR": str(tmp_path),
        "GANTRY_ANALYTICS_ROLLUP_SECONDS": "1",
        "PYTHONUNBUFFERED": "1",
    }

    def counted() -> dict:
        return {
            consumer: total
            for consumer, total in AnalyticsMinute.objects.filter(tenant=org.tenant)
            .values_list("consumer")
            .annotate(total=models.Sum("requests"))
        }

    logs = {name: tmp_path / f"{name}.log" for name in ("worker", "beat")}
    with logs["worker"].open("wb") as worker_log, logs["beat"].open("wb") as beat_log:
        worker = start(["worker", "--pool", "solo", "--without-mingle", "--without-gossip",
                        "--without-heartbeat"], env, worker_log)  # fmt: skip
        beat = start(["beat", "--schedule", str(tmp_path / "schedule")], env, beat_log)
    try:
        deadline = time.monotonic() + 60
        while counted() != {"alice": 2, "bob": 1} and time.monotonic() < deadline:
            assert beat.poll() is None and worker.poll() is None, "beat or the worker died"
            time.sleep(0.2)
        output = "\n".join(f"--- {name}\n{log.read_text()[-4000:]}" for name, log in logs.items())
        assert counted() == {"alice": 2, "bob": 1}, output
        alice = AnalyticsHour.objects.get(tenant=org.tenant, consumer="alice")
        assert (alice.requests, alice.responses_5xx) == (2, 1)
    finally:
        for process in (beat, worker):
            process.terminate()
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(10)
    assert (
        "Sending due task rollup-analytics (billing.rollup_analytics)" in logs["beat"].read_text()
    )
    assert "analytics rolled up" in logs["worker"].read_text()


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_beat_collects_the_access_logs_of_kubernetes_pods(tmp_path, plan):
    """A real beat, every second, sends the pod log collection; a real worker reads a pod's
    log from the API server double and stores its access log line."""
    import json

    from provisioning.models import AccessLogEntry, KubernetesCluster
    from provisioning.translate.access_log import FIELDS
    from tests.conftest import make_org
    from tests.kubernetes.apiserver_double import ApiServerDouble
    from tests.provisioning.harness import free_port
    from tests.security.test_kubernetes_xds_credentials import Gateway, kubeconfig

    double = ApiServerDouble().start()
    try:
        cluster = KubernetesCluster.objects.create(
            name="double", kubeconfig=kubeconfig(double), xds_address="127.0.0.1", xds_port=1
        )
        acme = make_org("acme").tenant
        cluster.plans.add(acme.plan)
        gateway = Gateway(double, acme, "edge", free_port())
        pod = gateway.pod("envoy-edge-6f7c9-aaaaa")
        record = dict.fromkeys(FIELDS)
        record.update(start="2026-12-04T10:00:00.000Z", status=204, path="/from-beat")
        double.write_log(gateway.namespace, pod, json.dumps(record))
        db = settings.DATABASES["default"]
        env = {
            **os.environ,
            "DATABASE_URL": (
                f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/"
                f"{connection.settings_dict['NAME']}"
            ),
            "CELERY_BROKER_URL": settings.REDIS_URL,
            "GANTRY_CELERY_QUEUE": f"gantry-test-{os.urandom(4).hex()}",
            "GANTRY_DATA_DIR": str(tmp_path),
            "GANTRY_POD_ACCESS_LOG_SECONDS": "1",
            "PYTHONUNBUFFERED": "1",
        }
        logs = {name: tmp_path / f"{name}.log" for name in ("worker", "beat")}
        with logs["worker"].open("wb") as worker_log, logs["beat"].open("wb") as beat_log:
            worker = start(["worker", "--pool", "solo", "--without-mingle", "--without-gossip",
                            "--without-heartbeat"], env, worker_log)  # fmt: skip
            beat = start(["beat", "--schedule", str(tmp_path / "schedule")], env, beat_log)
        try:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                if AccessLogEntry.objects.filter(path="/from-beat").exists():
                    break
                assert beat.poll() is None and worker.poll() is None, "beat or the worker died"
                time.sleep(0.2)
            output = "\n".join(f"--- {n}\n{log.read_text()[-4000:]}" for n, log in logs.items())
            entry = AccessLogEntry.objects.filter(path="/from-beat").first()
            assert entry is not None, f"nothing collected:\n{output}"
            assert (entry.tenant_id, entry.gateway_name, entry.status) == (acme.pk, "edge", 204)
        finally:
            for process in (beat, worker):
                process.terminate()
                try:
                    process.wait(20)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait(10)
    finally:
        double.stop()
    beat_output = logs["beat"].read_text()
    assert (
        "Sending due task collect-pod-access-logs (provisioning.collect_pod_access_logs)"
        in beat_output
    )
    assert AccessLogEntry.objects.filter(path="/from-beat").count() == 1, "stored once"


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_beat_follows_a_backend_name_to_its_new_address(org, tmp_path):
    """A local gateway's backend is a host name answered by the tests' DNS server with a
    one-second TTL: once the answer changes, a real beat sends the refresh, a real worker
    finds the change and reconciles, and the new current revision has the new address (the
    hourly heal plays no part)."""
    from django.test import override_settings

    from gateways import services
    from provisioning.models import ConfigRevision
    from provisioning.reconcile import reconcile
    from provisioning.revisions import resources_of
    from tests.delivery.helpers import ACTOR
    from tests.provisioning.dns_server import DNSServer

    dns = DNSServer(ttl=1)
    dns.records["api.beat.test"] = ["127.0.0.2"]
    services.create_gateway(ACTOR, org.tenant, "edge", {})
    backend = {"endpoints": [{"fqdn": {"hostname": "api.beat.test", "port": 8080}}], "dns": {}}
    services.create_backend(ACTOR, org.tenant, "api", backend)
    gateway = services.create_route(
        ACTOR, org.tenant.gateways.get(name="edge"), "all",
        {"rules": [{"backendRefs": [{"name": "api"}]}]},
    ).gateway  # fmt: skip
    with override_settings(
        GANTRY_GATEWAY_DNS_RESOLVERS=[dns.address], GANTRY_DNS_MIN_TTL_SECONDS=1
    ):
        reconcile(gateway.pk)

    def served() -> str:
        revision = ConfigRevision.objects.get(gateway=gateway, current=True)
        return json.dumps(resources_of(revision))

    assert '"127.0.0.2"' in served()
    dns.records["api.beat.test"] = ["127.0.0.3"]
    db = settings.DATABASES["default"]
    env = {
        **os.environ,
        "DATABASE_URL": (
            f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{connection.settings_dict['NAME']}"
        ),
        "CELERY_BROKER_URL": settings.REDIS_URL,
        "GANTRY_CELERY_QUEUE": f"gantry-test-{os.urandom(4).hex()}",
        "GANTRY_DATA_DIR": str(tmp_path),
        "GANTRY_RECONCILE_ALL_SECONDS": "3600",
        "GANTRY_DNS_REFRESH_SECONDS": "1",
        "GANTRY_DNS_MIN_TTL_SECONDS": "1",
        "GANTRY_GATEWAY_DNS_RESOLVERS": dns.address,
        "PYTHONUNBUFFERED": "1",
    }
    logs = {name: tmp_path / f"{name}.log" for name in ("worker", "beat")}
    with logs["worker"].open("wb") as worker_log, logs["beat"].open("wb") as beat_log:
        worker = start(["worker", "--pool", "solo", "--without-mingle", "--without-gossip",
                        "--without-heartbeat"], env, worker_log)  # fmt: skip
        beat = start(["beat", "--schedule", str(tmp_path / "schedule")], env, beat_log)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and '"127.0.0.3"' not in served():
            assert beat.poll() is None and worker.poll() is None, "beat or the worker died"
            time.sleep(0.2)
        output = "\n".join(f"--- {name}\n{log.read_text()[-4000:]}" for name, log in logs.items())
        assert '"127.0.0.3"' in served(), f"the new address was not served:\n{output}"
        assert '"127.0.0.2"' not in served()
    finally:
        dns.close()
        for process in (beat, worker):
            process.terminate()
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(10)
    beat_output = logs["beat"].read_text()
    assert "Sending due task refresh-backend-names (provisioning.refresh_backend_names)" in (
        beat_output
    )
    assert "Task provisioning.refresh_backend_names[" in logs["worker"].read_text()

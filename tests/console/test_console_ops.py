"""The operators' pages (``/ops/``) through Django's test client: staff only (a tenant's user
gets 404, anonymous visitors sign in), every form's happy path through the services (audited),
bad input shown at the field it names with nothing changed, no kubeconfig rendered, and a fixed
number of queries per page whatever the number of rows."""

import socket
import time

import pytest
import yaml
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from gateways import services as gateway_services
from provisioning import cluster_services
from provisioning.models import GatewayOperation, KubernetesCluster, KubernetesPlacement
from tenants import services
from tenants.audit import Actor
from tenants.models import AuditEvent, Membership, Plan, Tenant
from tenants.roles import Role
from tests.conftest import make_user
from tests.delivery.helpers import use_queue
from tests.kubernetes.apiserver_double import ApiServerDouble
from tests.kubernetes.conftest import KUBECONFIG

SYSTEM = Actor.system("tests")
SECRET = "kubeconfig-secret-token-1234"  # inside KUBECONFIG
PAGES = ["/ops/tenants/", "/ops/tenants/acme/", "/ops/tenants/new/", "/ops/tenants/acme/plan/",
         "/ops/tenants/acme/suspend/", "/ops/plans/", "/ops/plans/standard/", "/ops/plans/new/",
         "/ops/clusters/", "/ops/clusters/lab/", "/ops/clusters/new/", "/ops/clusters/lab/edit/",
         "/ops/clusters/lab/delete/", "/ops/health/"]  # fmt: skip


def signed_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def operator(db):
    return signed_in(make_user("root", is_staff=True))


@pytest.fixture
def lab(db):
    return cluster_services.register_cluster(
        SYSTEM, {"name": "lab", "kubeconfig": KUBECONFIG, "xds_address": "xds.example.com",
                 "plans": ["standard"]},
    )  # fmt: skip


def events(object_type: str, action: str):
    return AuditEvent.objects.filter(object_type=object_type, action=action)


def unused_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# access


def test_tenant_users_get_404_and_anonymous_visitors_sign_in(org, lab):
    owner = signed_in(org.users[Role.OWNER])
    anonymous = Client()
    for page in PAGES:
        assert owner.get(page).status_code == 404, page
        response = anonymous.get(page)
        assert response.status_code == 302 and response["Location"].startswith("/login/"), page
    # A forged POST is the same 404, and changes nothing.
    assert owner.post("/ops/tenants/acme/suspend/").status_code == 404
    assert owner.post("/ops/clusters/lab/delete/").status_code == 404
    assert not Tenant.objects.get(slug="acme").suspended
    assert KubernetesCluster.objects.filter(name="lab").exists()


def test_operators_see_every_page_and_a_link_to_them(org, lab, operator):
    for page in PAGES:
        assert operator.get(page).status_code == 200, page
    assert operator.get("/ops/").status_code == 302
    assert b'href="/ops/"' in operator.get("/ops/tenants/").content
    assert b'href="/ops/"' not in signed_in(org.users[Role.OWNER]).get("/t/acme/").content


# tenants


def test_the_tenant_list_filters_by_plan_and_state(org, other_org, operator):
    services.update_tenant(SYSTEM, other_org.tenant, {"suspended": True})
    page = operator.get("/ops/tenants/", {"suspended": "true"}).content.decode()
    assert "globex" in page and ">acme<" not in page
    page = operator.get("/ops/tenants/", {"plan": "standard"}).content.decode()
    assert "acme" in page


def test_an_operator_creates_a_tenant_with_its_owner(db, operator):
    make_user("carol")
    response = operator.post("/ops/tenants/new/", {"slug": "initech", "display_name": "Initech",
                             "plan": "developer", "owner": "carol"})  # fmt: skip
    assert response.status_code == 302 and response["Location"] == "/ops/tenants/initech/"
    tenant = Tenant.objects.get(slug="initech")
    assert tenant.plan.name == "developer" and tenant.display_name == "Initech"
    assert Membership.objects.get(tenant=tenant).user.username == "carol"
    assert events("tenant", "create").get().actor_name == "root"


@pytest.mark.parametrize(
    ("data", "field", "words"),
    [
        ({"slug": "Bad_Slug"}, "slug", "lowercase"),
        ({"owner": "nobody"}, "owner", "no active user named 'nobody'"),
        ({"slug": "acme"}, "slug", "already exists"),
    ],
)
def test_a_bad_tenant_is_refused_at_its_field(org, operator, data, field, words):
    make_user("carol")
    before = Tenant.objects.count()
    form = {"slug": "initech", "plan": "developer", "owner": "carol"} | data
    response = operator.post("/ops/tenants/new/", form)
    assert response.status_code == 400
    errors = response.context["form"].errors
    assert list(errors) == [field] and words in errors[field][0]
    assert (
        Tenant.objects.count() == before
        and not events("tenant", "create").exclude(actor_name="system:tests").exists()
    )


def test_the_plan_changes_and_a_plan_too_small_is_refused(org, operator):
    response = operator.post("/ops/tenants/acme/plan/", {"plan": "enterprise"})
    assert response.status_code == 302
    assert Tenant.objects.get(slug="acme").plan.name == "enterprise"
    event = events("tenant", "update").get()
    assert event.before["plan"] == "standard" and event.after["plan"] == "enterprise"
    Plan.objects.filter(name="developer").update(max_gateways=0)
    gateway_services.create_gateway(SYSTEM, Tenant.objects.get(slug="acme"), "edge", {})
    response = operator.post("/ops/tenants/acme/plan/", {"plan": "developer"})
    assert response.status_code == 400
    assert "allows 0 gateways" in response.context["form"].non_field_errors()[0]
    response = operator.post("/ops/tenants/acme/plan/", {"plan": "gold"})
    assert response.status_code == 400
    assert "no plan named 'gold'" in response.context["form"].errors["plan"][0]
    assert Tenant.objects.get(slug="acme").plan.name == "enterprise"


def test_suspend_and_resume_after_confirmation(org, operator):
    page = operator.get("/ops/tenants/acme/suspend/")
    assert b"Suspend tenant acme" in page.content
    assert not Tenant.objects.get(slug="acme").suspended  # a GET asks, it does not suspend
    assert operator.post("/ops/tenants/acme/suspend/").status_code == 302
    assert Tenant.objects.get(slug="acme").suspended
    # The suspended tenant's members read, and cannot write.
    editor = signed_in(org.users[Role.EDITOR])
    assert b"suspended" in editor.get("/t/acme/").content
    assert editor.post("/t/acme/backends/new/", {"name": "x"}).status_code == 403
    operator.post("/ops/tenants/acme/suspend/")  # again: nothing more happens
    assert events("tenant", "update").count() == 1
    assert operator.post("/ops/tenants/acme/resume/").status_code == 302
    assert not Tenant.objects.get(slug="acme").suspended
    assert events("tenant", "update").count() == 2


def test_another_tenant_is_a_404_only_when_it_does_not_exist(org, operator):
    assert operator.get("/ops/tenants/nope/").status_code == 404
    assert operator.post("/ops/tenants/nope/suspend/").status_code == 404


# plans


def plan_form(**overrides) -> dict:
    data = {"name": "gold", "display_name": "Gold", "description": "", "max_gateways": "20",
            "max_replicas_per_gateway": "10", "max_routes_per_gateway": "500",
            "max_backends": "200", "max_certificates": "100", "max_consumers": "1000",
            "max_tokens_per_user": "25", "allowed_sizes": ["small", "medium"],
            "access_log_retention_days": "14"}  # fmt: skip
    return data | overrides


def test_an_operator_creates_and_edits_a_plan(db, operator):
    response = operator.post("/ops/plans/new/", plan_form())
    assert response.status_code == 302, response.content[:2000]
    plan = Plan.objects.get(name="gold")
    assert plan.max_gateways == 20 and plan.allowed_sizes == ["small", "medium"]
    assert events("plan", "create").exists()
    form = plan_form(max_gateways="30", allowed_sizes=["large"],
                     resource_version=str(plan.resource_version))  # fmt: skip
    del form["name"]
    assert operator.post("/ops/plans/gold/", form).status_code == 302
    plan.refresh_from_db()
    assert plan.max_gateways == 30 and plan.allowed_sizes == ["large"]
    assert events("plan", "update").get().after["maxGateways"] == 30
    assert plan.access_log_retention_days == 14  # kept by the edit, as the form showed it
    form = plan_form(access_log_retention_days="30", resource_version=str(plan.resource_version))
    del form["name"]
    assert operator.post("/ops/plans/gold/", form).status_code == 302
    plan.refresh_from_db()
    assert plan.access_log_retention_days == 30


@pytest.mark.parametrize(
    ("data", "field", "words"),
    [
        ({"max_gateways": "-1"}, "max_gateways", "greater than or equal to 0"),
        ({"max_replicas_per_gateway": "many"}, "max_replicas_per_gateway", "valid integer"),
        ({"allowed_sizes": ["huge"]}, "allowed_sizes", ""),
        ({"access_log_retention_days": "0"}, "access_log_retention_days", "greater than or"),
        ({"name": "standard"}, "name", "already exists"),
    ],
)
def test_a_bad_plan_is_refused_at_its_field(db, operator, data, field, words):
    before = list(Plan.objects.order_by("name").values())
    response = operator.post("/ops/plans/new/", plan_form(**data))
    assert response.status_code == 400
    errors = response.context["form"].errors
    assert list(errors) == [field] and words in errors[field][0]
    assert list(Plan.objects.order_by("name").values()) == before


# clusters


def cluster_form(**overrides) -> dict:
    data = {"name": "prod", "kubeconfig": KUBECONFIG, "context": "", "exposure": "NodePort",
            "envoy_image": "envoyproxy/envoy:v1.40.0", "xds_address": "xds.example.com",
            "xds_port": "18000", "plans": ["standard", "enterprise"]}  # fmt: skip
    return data | overrides


def test_an_operator_registers_edits_and_deletes_a_cluster(db, operator):
    response = operator.post("/ops/clusters/new/", cluster_form())
    assert response.status_code == 302 and response["Location"] == "/ops/clusters/prod/"
    cluster = KubernetesCluster.objects.get(name="prod")
    assert cluster.kubeconfig == KUBECONFIG and cluster.exposure == "NodePort"
    assert sorted(cluster.plans.values_list("name", flat=True)) == ["enterprise", "standard"]
    for page in ("/ops/clusters/prod/", "/ops/clusters/prod/edit/", "/ops/clusters/"):
        assert SECRET not in operator.get(page).content.decode()
    form = cluster_form(kubeconfig="", xds_port="18001", plans=["developer"])
    del form["name"]
    assert operator.post("/ops/clusters/prod/edit/", form).status_code == 302
    cluster.refresh_from_db()
    assert cluster.kubeconfig == KUBECONFIG and cluster.xds_port == 18001
    assert list(cluster.plans.values_list("name", flat=True)) == ["developer"]
    assert operator.post("/ops/clusters/prod/delete/").status_code == 302
    assert not KubernetesCluster.objects.exists()
    assert [e.action for e in AuditEvent.objects.filter(object_type="kubernetes-cluster")
            .order_by("id")] == ["create", "update", "delete"]  # fmt: skip


@pytest.mark.parametrize(
    ("data", "field", "words"),
    [
        ({"kubeconfig": ""}, "kubeconfig", "required unless inCluster"),
        ({"kubeconfig": f"users: [{{token: {SECRET}"}, "kubeconfig", "not valid YAML"),
        ({"xds_port": "99999"}, "xds_port", "less than or equal to 65535"),
        ({"name": "Prod!"}, "name", ""),
        ({"xds_address": ""}, "xds_address", ""),
    ],
)
def test_a_bad_cluster_is_refused_at_its_field(db, operator, data, field, words):
    response = operator.post("/ops/clusters/new/", cluster_form(**data))
    assert response.status_code == 400
    errors = response.context["form"].errors
    assert list(errors) == [field] and words in errors[field][0]
    assert SECRET not in response.content.decode()
    assert not KubernetesCluster.objects.exists()
    assert not AuditEvent.objects.filter(object_type="kubernetes-cluster").exists()


def test_a_cluster_gateways_run_on_is_not_deleted(org, lab, operator):
    gateway = gateway_services.create_gateway(SYSTEM, org.tenant, "edge", {})
    KubernetesPlacement.objects.create(gateway=gateway, cluster=lab)
    response = operator.post("/ops/clusters/lab/delete/")
    assert response.status_code == 400
    assert "acme/edge" in response.context["form"].non_field_errors()[0]
    assert KubernetesCluster.objects.filter(name="lab").exists()


def test_a_connection_test_shows_its_result(db, operator):
    double = ApiServerDouble().start()
    try:
        config = yaml.safe_load(KUBECONFIG)
        config["clusters"][0]["cluster"]["server"] = double.host
        operator.post("/ops/clusters/new/", cluster_form(kubeconfig=yaml.safe_dump(config)))
        page = operator.post("/ops/clusters/prod/test/").content.decode()
        assert "Connected." in page and "v1.37.0" in page and SECRET not in page
    finally:
        double.stop()
    config["clusters"][0]["cluster"]["server"] = f"https://127.0.0.1:{unused_port()}"
    form = cluster_form(kubeconfig=yaml.safe_dump(config))
    del form["name"]
    operator.post("/ops/clusters/prod/edit/", form)
    page = operator.post("/ops/clusters/prod/test/").content.decode()
    assert "Failed." in page and "could not reach the API server" in page
    assert events("kubernetes-cluster", "test").count() == 2


# health


def test_health_shows_failed_operations_and_agents(org, operator):
    gateway = gateway_services.create_gateway(SYSTEM, org.tenant, "edge", {})
    GatewayOperation.objects.create(gateway=gateway, kind="reconcile", state="failed",
                                    message="envoy rejected the config")  # fmt: skip
    page = operator.get("/ops/health/").content.decode()
    assert "acme/edge" in page and "envoy rejected the config" in page
    assert 'id="broker-state"' in page


def test_health_renders_fast_when_the_broker_is_down(db, operator, settings):
    settings.CELERY_BROKER_URL = f"redis://127.0.0.1:{unused_port()}/0"
    started = time.monotonic()
    response = operator.get("/ops/health/")
    elapsed = time.monotonic() - started
    assert response.status_code == 200 and elapsed < 2.0
    page = response.content.decode()
    assert "unreachable" in page and "not asked: the broker is unreachable" in page


# queries


def _queries(client, url: str) -> int:
    with CaptureQueriesContext(connection) as captured:
        assert client.get(url).status_code == 200
    return len(captured)


def _tenants(count: int, start: int = 0) -> None:
    owner = make_user(f"owner-{start}")
    for index in range(start, start + count):
        tenant = services.create_tenant(SYSTEM, f"t{index}", owner.username)
        gateway_services.create_gateway(SYSTEM, tenant, "edge", {})


def _clusters(count: int, start: int = 0) -> None:
    for index in range(start, start + count):
        cluster_services.register_cluster(SYSTEM, {"name": f"c{index}", "in_cluster": True,
                                          "xds_address": "x", "plans": ["standard"]})  # fmt: skip


@pytest.mark.parametrize("url", ["/ops/tenants/", "/ops/plans/", "/ops/clusters/", "/ops/health/",
                                 "/ops/tenants/t0/", "/ops/clusters/c0/"])  # fmt: skip
def test_each_page_takes_the_same_queries_for_1_or_30_rows(db, operator, url):
    _tenants(1)
    _clusters(1)
    one = _queries(operator, url)
    _tenants(29, start=1)
    _clusters(29, start=1)
    for tenant in Tenant.objects.all()[:10]:
        gateway = tenant.gateways.get()
        GatewayOperation.objects.create(gateway=gateway, kind="reconcile", state="failed")
    assert _queries(operator, url) == one


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_health_shows_queue_depth_and_a_live_worker(settings):
    """A real worker on the real broker: messages waiting in its queue are counted, and once it
    runs it answers the page's ping by name."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    from config.celery_app import app

    queue = f"gantry-test-ops-{os.urandom(4).hex()}"
    use_queue(settings, queue)
    operator = signed_in(make_user("root", is_staff=True))
    for _ in range(3):  # no such task: the worker discards them once it runs
        app.send_task("gantry.tests.nothing", queue=queue)
    for _ in range(2):
        app.send_task("gantry.tests.nothing", queue=f"{queue}.heal")
    app.send_task("gantry.tests.nothing", queue=f"{queue}.fanout")
    page = operator.get("/ops/health/").content.decode()
    assert "3 messages waiting" in page and "reachable" in page
    assert "2 reconciles of the periodic heal waiting" in page
    assert "1 reconcile of writes to many gateways waiting" in page
    name = f"ops-{os.urandom(3).hex()}@health"
    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "config", "worker", "--pool", "solo", "-Q", queue,
         "-n", name, "--without-mingle", "--without-gossip", "--without-heartbeat"],
        cwd=Path(__file__).resolve().parents[2], stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        # A loaded machine starts a worker slowly: both must show before the deadline.
        deadline = time.monotonic() + 90
        while not (name in page and "0 messages waiting" in page) and (time.monotonic() < deadline):
            time.sleep(0.5)
            page = operator.get("/ops/health/").content.decode()
        assert name in page and "0 messages waiting" in page
        # A worker given -Q with the main queue alone never takes the heal's.
        assert "2 reconciles of the periodic heal waiting" in page
        assert "1 reconcile of writes to many gateways waiting" in page
    finally:
        worker.terminate()
        worker.wait(timeout=20)
        with app.connection_for_write() as broker:
            broker.default_channel.queue_purge(f"{queue}.heal")
            broker.default_channel.queue_purge(f"{queue}.fanout")

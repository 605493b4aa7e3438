"""Fixtures shared by every suite: a tenant with one user per role, an outsider, tokens.

The suite runs against real PostgreSQL and Redis (``make test`` provides them); every run has
its own database and its own Redis key prefix, and removes only what it wrote.
"""

import os
import warnings
from dataclasses import dataclass

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from rest_framework.test import APIClient

from tenants import services
from tenants.audit import Actor
from tenants.default_plans import DEFAULT_PLANS
from tenants.models import Plan, Tenant
from tenants.roles import Role

ROLES = [Role.OWNER, Role.ADMIN, Role.EDITOR, Role.VIEWER]


def pytest_configure(config):
    engine = settings.DATABASES["default"]["ENGINE"]
    if "postgresql" not in engine and not os.environ.get("GANTRY_ALLOW_SQLITE_TESTS"):
        raise pytest.UsageError(
            "the suite runs against PostgreSQL: use `make test` (it provides PostgreSQL and "
            "Redis), or set DATABASE_URL and REDIS_URL yourself"
        )
    # Real hashing costs ~0.3 s a user; tests create many users and prove nothing about PBKDF2.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def pytest_sessionfinish(session):
    """This run's Redis keys go once every test is done: in the controller of a parallel run,
    never in one of its workers (the others' tests may still be using their queues)."""
    if hasattr(session.config, "workerinput"):
        return
    if settings.REDIS_URL and os.environ.get("GANTRY_TEST_RUN_ID"):
        import redis

        client = redis.Redis.from_url(settings.REDIS_URL)
        for key in client.scan_iter(match=f"*gantry-test-{os.environ['GANTRY_TEST_RUN_ID']}*"):
            client.delete(key)


@pytest.fixture(scope="session")
def django_db_setup(django_db_setup, django_db_blocker):
    """pytest-django's test database, and before it is dropped at the end: any connection to
    it another thread or process left open (a worker, server or thread a test did not stop)
    is named in a warning, then ended, so the drop does not fail and leave the database
    behind on the server."""
    yield
    from django.db import connection

    if connection.vendor != "postgresql":  # GANTRY_ALLOW_SQLITE_TESTS: a file, no sessions
        return
    with django_db_blocker.unblock(), connection.cursor() as cursor:
        cursor.execute(
            "SELECT pid, backend_start, state, left(query, 120) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        left = cursor.fetchall()
        for pid, started, state, query in left:
            warnings.warn(
                pytest.PytestWarning(
                    f"a connection was left open to the test database (pid {pid}, since "
                    f"{started}, {state}; last query: {query}): ended before the drop"
                ),
                stacklevel=1,
            )
        if left:
            cursor.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
    connection.close()


@pytest.fixture(autouse=True)
def _close_reconcile_threads():
    """A reconcile's housekeeping thread keeps a database connection of its own: closed after
    each test, so the test database can be dropped at the end."""
    yield
    from provisioning import reconcile

    reconcile.close_threads()


@pytest.fixture(autouse=True)
def _default_plans(request):
    """The plans (and price books) data migrations create, back before every database test.

    A transactional test ends with a flush of every table, which removes them for whatever test
    runs next in the same process (serialized rollback would restore them, but collides with
    the content types other flushes re-create).
    """
    names = set(request.fixturenames)
    marker = request.node.get_closest_marker("django_db")
    transactional = marker and (marker.kwargs.get("transaction") or marker.args[:1] == (True,))
    if "transactional_db" in names or "live_server" in names or transactional:
        request.getfixturevalue("transactional_db")
    elif "db" in names or marker:
        request.getfixturevalue("db")
    else:
        return
    for fields in DEFAULT_PLANS:
        Plan.objects.get_or_create(name=fields["name"], defaults=fields)
    from billing.prices import ensure_default_price_books

    ensure_default_price_books()  # and their prices, which a data migration also creates


@pytest.fixture(autouse=True)
def _fresh_cache():
    """Throttle counters must not leak between tests: bump the cache prefix per test."""
    from django.core.cache import cache

    cache.key_prefix = f"{settings.CACHE_KEY_PREFIX}:{os.urandom(4).hex()}"
    yield


@dataclass
class Org:
    """A tenant with one user (and one API token) per role, plus an outsider."""

    tenant: Tenant
    users: dict
    tokens: dict

    def client(self, role: str) -> APIClient:
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {self.tokens[role]}")
        return client


def make_user(username: str, **extra):
    return get_user_model().objects.create_user(
        username=username, password="pw-" + username, **extra
    )


def make_org(slug: str, plan: str = "standard") -> Org:
    actor = Actor.system("tests")
    owner = make_user(f"{slug}-owner")
    tenant = services.create_tenant(actor, slug, owner.username, plan=plan)
    users = {Role.OWNER: owner}
    for role in ROLES[1:]:
        users[role] = make_user(f"{slug}-{role}")
        services.add_member(actor, Role.OWNER, tenant, users[role].username, role)
    tokens = {
        role: services.create_token(actor, tenant, f"{role} token", user=user)[1]
        for role, user in users.items()
    }
    return Org(tenant=tenant, users=users, tokens=tokens)


@pytest.fixture
def org(db) -> Org:
    return make_org("acme")


@pytest.fixture
def other_org(db) -> Org:
    return make_org("globex")


@pytest.fixture
def outsider(db):
    return make_user("mallory")


@pytest.fixture
def staff_client(db) -> APIClient:
    client = APIClient()
    client.force_authenticate(make_user("operator", is_staff=True))
    return client


@pytest.fixture
def plan(db) -> Plan:
    return Plan.objects.get(name="standard")


def pytest_addoption(parser):
    parser.addoption(
        "--update-golden",
        action="store_true",
        help="rewrite golden outputs (testdata/*.out.yaml) and delete outputs without inputs",
    )


@pytest.fixture(scope="session", autouse=True)
def _local_port_range():
    """A window of host ports of its own for each test process: local-runtime gateways of
    concurrent runs (other workers, other checkouts) never share one."""
    import random

    from django.conf import settings as django_settings

    # Outside the kernel's ephemeral ports (32768-60999), which test servers bound to port 0
    # get: the egress policy refuses backends on the runtime's ports.
    starts = [*range(20000, 32768 - 300), *range(61000, 65536 - 300)]
    low = random.SystemRandom().choice(starts)
    django_settings.GANTRY_LOCAL_PORT_RANGE = f"{low}-{low + 299}"
    yield


@pytest.fixture
def upstream():
    """An HTTP backend on loopback, ``app``, answering JSON about each request it gets."""
    from tests.provisioning.harness import Upstream

    server = Upstream("app")
    yield server
    server.close()


@pytest.fixture
def stack(tmp_path, monkeypatch):
    """The xDS server and the runtime agent as real processes (``tests.runtime.stack``), with
    reconciles run only where the test calls them."""
    from provisioning import tasks
    from tests.runtime.stack import Stack

    monkeypatch.setattr(tasks, "send_reconcile", lambda *args, **kwargs: None)
    running = Stack(tmp_path).start()
    yield running
    running.stop()

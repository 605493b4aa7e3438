"""Fuzzes every operation of the OpenAPI schema with Schemathesis, inside the suite.

Two callers, each with an API token for tenant ``acme``: its owner, and a platform operator (a
staff user, who acts as owner of every tenant). Path parameters (and ``If-Match``) mostly name
objects that exist (tenant ``acme``, gateway ``edge``, real members, tokens, audit events and
plans), so requests get past tenant resolution and reach the validation code; now and then
they name tenant ``globex`` (which exists, but not for the caller) or keep the generated value,
and a case that probes one of them always keeps it.

For every request, valid and invalid alike: no 5xx, the status code is documented, and the
response (errors included) matches the schema. Each example runs in a savepoint that is rolled
back, so one example's writes (a deleted gateway, a new member) never change the next one's.

Phases: explicit examples, coverage (boundary and invalid values, deterministic) and fuzzing
(``MAX_EXAMPLES`` per operation, derandomized: the same requests every run). Coverage cases are
sent where the caller's answers differ: not on operator-only writes for the owner (all 403),
and not on the resources inside a tenant for the operator (who acts there exactly as an owner).

Bounded: about a minute on two cores (``make test`` spreads the 64 items over its workers).
"""

import json
import re
import traceback
import zlib
from dataclasses import dataclass

import hypothesis
import pytest
import schemathesis
import yaml
from django.core.signals import got_request_exception, request_finished, request_started
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections, transaction
from drf_spectacular.generators import SchemaGenerator
from drf_spectacular.renderers import OpenApiJsonRenderer
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.core.media_types import YAML_MEDIA_TYPES

from gateways import services as gateway_services
from gateways.models import Credential
from provisioning import cluster_services
from tenants import services
from tenants.audit import Actor
from tenants.models import ApiToken, AuditEvent, Plan
from tests.api.people import colleague
from tests.conftest import Org, make_org, make_user
from tests.kubernetes.conftest import KUBECONFIG
from tests.provisioning.certs import self_signed

pytestmark = pytest.mark.slow

MAX_EXAMPLES = 30
GATEWAY_SPEC = {"listeners": [{"name": "http", "protocol": "HTTP", "port": 80}]}
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
# The owner gets 403 from operator-only writes: fuzzing shows that, coverage would repeat it.
# Clusters and the revenue report are the operators' alone, reads included.
OPERATOR_ONLY_WRITES = re.compile(
    r"^((POST|PUT|PATCH|DELETE) /api/v1/(plans/|tenants/$)|[A-Z]+ /api/v1/(clusters|revenue)/)"
)
# Inside a tenant the operator acts exactly as its owner, whose run covers it.
INSIDE_A_TENANT = re.compile(r"^[A-Z]+ /api/v1/tenants/\{tenant\}/[a-z-]+/")


@schemathesis.deserializer(*YAML_MEDIA_TYPES)  # replaces the single-document reader
def yaml_stream(ctx, response):
    """``…/export/`` answers a multi-document YAML stream (documented as a string): every
    document must parse, and the text is what the schema describes."""
    text = response.content.decode("utf-8")
    list(yaml.safe_load_all(text))
    return text


CONFIG = schemathesis.Config.from_dict(
    {
        "generation": {
            "mode": "all",  # valid and invalid requests
            "max-examples": MAX_EXAMPLES,
            "deterministic": True,
            "database": "none",
            # Every request carries the caller's token (below); generated credentials would
            # only reach the 401 path, which tests/api/test_access_matrix.py covers.
            "with-security-parameters": False,
        },
        "phases": {"stateful": {"enabled": False}},
        # Body values naming existing objects, so that writes can succeed too.
        "dictionaries": {
            "usernames": {"values": ["newcomer", "globex-owner", "acme-viewer", "acme-owner"]},
            "plans": {"values": ["developer", "standard", "enterprise"]},
            "versions": {"values": ["1"]},  # every object here is at version 1
        },
        "parameters": {
            "body.owner": {"dictionary": "usernames", "probability": 0.5},
            "body.user": {"dictionary": "usernames", "probability": 0.5},
            "body.plan": {"dictionary": "plans", "probability": 0.5},
            "body.resourceVersion": {"dictionary": "versions", "probability": 0.5},
        },
    }
)


def served_schema() -> dict:
    """The document ``GET /api/v1/schema/`` serves, built without a request."""
    document = SchemaGenerator().get_schema(request=None, public=True)
    return json.loads(OpenApiJsonRenderer().render(document))


schema = schemathesis.openapi.from_dict(served_schema(), config=CONFIG)


@dataclass
class Caller:
    label: str
    token: str
    known: dict[str, list]  # existing objects, per path parameter or header name
    no_coverage: re.Pattern  # operations whose coverage cases would only repeat another run


def known_values(org: Org) -> dict[str, list]:
    tenant = org.tenant
    return {
        "tenant": ["acme"],
        "gateway": ["edge"],
        "certificate": ["example-cert"],
        "backend": ["api"],
        "route": ["web"],
        "grpcroute": ["rpc"],
        "dubboroute": ["dubbo"],
        "policy": ["retries"],
        "consumer": ["alice"],
        "credential": sorted(
            Credential.objects.filter(consumer__tenant=tenant).values_list("key_id", flat=True)
        ),
        "username": sorted(m.user.username for m in tenant.memberships.select_related("user")),
        "prefix": sorted(ApiToken.objects.filter(tenant=tenant).values_list("prefix", flat=True)),
        "id": sorted(AuditEvent.objects.filter(tenant=tenant).values_list("pk", flat=True)),
        "name": sorted(Plan.objects.values_list("name", flat=True)) + ["lab"],  # plans, a cluster
        "If-Match": ['"1"', "1", "*"],  # gateway edge's resourceVersion, or any
    }


@pytest.fixture
def fuzz_app(db, settings):
    """The real WSGI application, inside the test's transaction.

    Django closes the connection after each request when autocommit is off (as it is inside
    the test's transaction); its test client stops that, and so must we.
    """
    settings.GANTRY_API_RATE = "100000/minute"  # a 429 must not hide what the fuzzer finds
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    try:
        yield get_wsgi_application()
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)


@pytest.fixture
def acme(db) -> Org:
    """Tenant ``acme`` (one user per role, gateway ``edge``) and ``globex``, beside it."""
    org = make_org("acme")
    make_org("globex")
    actor = Actor.system("tests")
    gateway = gateway_services.create_gateway(actor, org.tenant, "edge", GATEWAY_SPEC)
    chain, key = self_signed(["shop.example.com"])
    gateway_services.create_certificate(
        actor, org.tenant, "example-cert", {"certificatePem": chain, "privateKeyPem": key}
    )
    gateway_services.create_backend(
        actor, org.tenant, "api", {"endpoints": [{"ip": {"address": "10.0.0.1", "port": 80}}]}
    )
    gateway_services.create_route(
        actor, gateway, "web", {"rules": [{"backendRefs": [{"name": "api"}]}]}
    )
    gateway_services.create_grpc_route(
        actor, gateway, "rpc", {"rules": [{"backendRefs": [{"name": "api"}]}]}
    )
    gateway_services.create_dubbo_route(actor, gateway, "dubbo", {"rules": [
        {"matches": [{"service": "org.example.Greeter"}],
         "backendRefs": [{"name": "api"}]}]})  # fmt: skip
    gateway_services.create_policy(actor, gateway, "retries", "BackendTrafficPolicy", {
        "targetRefs": [{"kind": "Gateway", "name": "edge"}], "retry": {}})  # fmt: skip
    alice = gateway_services.create_consumer(actor, org.tenant, "alice", {})
    gateway_services.create_credential(actor, alice, {"type": "api-key"})
    colleague(org, "newcomer")  # shares a tenant with acme's owner: adding them can succeed
    # A cluster whose API server is not there (a connection test fails at once).
    cluster_services.register_cluster(actor, {"name": "lab", "kubeconfig": KUBECONFIG,
                                              "xds_address": "xds.example.com"})  # fmt: skip
    return org


@pytest.fixture(params=["owner", "operator"])
def caller(request, acme) -> Caller:
    """Acme's owner, or a platform operator (staff: owner of every tenant), by API token.

    Keep this a parametrized fixture: under pytest 9, Schemathesis 4.32.5 gives the items of an
    unparametrized test one shared node id (``test_x`` for every operation), and pytest-xdist
    then runs only one of them. (For the same reason ``schemathesis.pytest.from_fixture`` is
    not used: it sets ``node._nodeid``, which pytest 9 no longer has.)
    """
    if request.param == "owner":
        return Caller("owner", acme.tokens["owner"], known_values(acme), OPERATOR_ONLY_WRITES)
    staff = make_user("operator", is_staff=True)
    _, token = services.create_token(Actor.system("tests"), acme.tenant, "fuzz", user=staff)
    return Caller("operator", token, known_values(acme), INSIDE_A_TENANT)


@pytest.fixture
def server_errors():
    """Tracebacks of the exceptions views raised, to show beside a 500."""
    seen: list[str] = []

    def record(sender, request=None, **kwargs):
        seen.append(traceback.format_exc())

    got_request_exception.connect(record, weak=False)
    yield seen
    got_request_exception.disconnect(record)


def aim_at_existing_objects(case, known: dict[str, list]) -> None:
    """Points path parameters and ``If-Match`` at existing objects, unless the case probes them.

    Coverage cases vary bodies and query strings around fixed path values: those always name
    existing objects. Fuzzing cases keep their generated value one time in ten, and name tenant
    ``globex`` one time in twenty. The choice is a hash of the case: the same every run.
    """
    data = case.meta.phase.data if case.meta else None
    probed = (getattr(data, "parameter_location", None), getattr(data, "parameter", None))
    fuzzing = case.meta is not None and case.meta.phase.name == "fuzzing"
    for location, values in (("path", case.path_parameters), ("header", case.headers)):
        for name, generated in sorted((values or {}).items()):
            if (location, name) == probed or name not in known:
                continue
            roll = zlib.crc32(repr((name, generated, case.body, case.query)).encode()) % 20
            if fuzzing and roll < 2:
                continue
            if name == "tenant":
                values[name] = "globex" if fuzzing and roll == 2 else "acme"
            else:
                values[name] = known[name][roll % len(known[name])]


def repeats_another_run(case, caller: Caller) -> bool:
    coverage = case.meta is not None and case.meta.phase.name == "coverage"
    return coverage and bool(caller.no_coverage.match(case.operation.label))


@schema.parametrize()
@hypothesis.settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[
        hypothesis.HealthCheck.function_scoped_fixture,  # DB fixtures, rolled back per example
        hypothesis.HealthCheck.too_slow,
        hypothesis.HealthCheck.filter_too_much,
    ],
)
def test_no_server_errors_and_every_response_matches_the_schema(
    case, fuzz_app, caller, server_errors
):
    if repeats_another_run(case, caller):
        return
    aim_at_existing_objects(case, caller.known)
    server_errors.clear()
    with transaction.atomic():
        response = case.call(app=fuzz_app, headers={"Authorization": f"Bearer {caller.token}"})
        transaction.set_rollback(True)
    assert response.status_code < 500, (
        f"{caller.label}: {case.method} {case.formatted_path} answered {response.status_code}\n"
        + "\n".join(server_errors)
    )
    case.validate_response(response, checks=CHECKS)

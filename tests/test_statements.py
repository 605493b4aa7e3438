"""A statement answers exactly what its queryset answers, for every run's values, while its
SQL is compiled once."""

import pytest
from django.db import transaction

from config import statements
from config.statements import Arg, Statement
from gateways import services
from gateways.models import Backend, Gateway, Route
from tests.delivery.helpers import ACTOR, BACKEND_SPEC, gateway_with_route, route_spec


@pytest.fixture
def two_tenants(org, other_org):
    mine = gateway_with_route(org.tenant)
    services.create_route(ACTOR, mine, "second", route_spec("/second"))
    theirs = gateway_with_route(other_org.tenant)
    for name in ("b-1", "b-2", "it's"):
        services.create_backend(ACTOR, org.tenant, name, BACKEND_SPEC)
    return mine, theirs


def test_rows_are_the_querysets_rows_for_each_runs_values(two_tenants):
    routes = Statement(
        lambda: (
            Route.objects.filter(gateway_id=Arg("gateway"))
            .order_by("created_at", "name")
            .values_list("pk", "name", "spec")
        )
    )
    for gateway in two_tenants * 2:
        expected = list(
            Route.objects.filter(gateway=gateway)
            .order_by("created_at", "name")
            .values_list("pk", "name", "spec")
        )
        assert routes.rows(gateway=gateway.pk) == expected
    # The JSON column is decoded as Django decodes it.
    spec = routes.rows(gateway=two_tenants[0].pk)[1][2]
    assert spec["rules"][0]["matches"][0]["path"]["value"] == "/second"
    assert routes.rows(gateway=0) == []


def test_it_is_compiled_once_and_still_sees_every_write(two_tenants):
    mine, _ = two_tenants
    calls = []

    def build():
        calls.append(1)
        return Route.objects.filter(gateway_id=Arg("gateway")).order_by("name").values_list("name")

    names = Statement(build)
    assert names.rows(gateway=mine.pk) == [("api",), ("second",)]
    services.create_route(ACTOR, mine, "third", route_spec("/third"))
    assert names.rows(gateway=mine.pk) == [("api",), ("second",), ("third",)]
    assert len(calls) == 1


def test_objects_with_joined_rows_deferred_fields_and_a_lock(two_tenants):
    mine, theirs = two_tenants
    locking = Statement(
        lambda: (
            Gateway.objects.select_for_update(of=("self",))
            .select_related("tenant")
            .filter(pk=Arg("pk"))
        )
    )
    for gateway in (mine, theirs):
        with transaction.atomic():
            found = locking.first(pk=gateway.pk)
        assert (found.pk, found.name, found.spec, found.tenant.slug) == (
            gateway.pk,
            gateway.name,
            gateway.spec,
            gateway.tenant.slug,
        )
        assert found.created_at == gateway.created_at  # an aware datetime, as the ORM's
    slim = Statement(lambda: Gateway.objects.only("pk", "name").filter(pk=Arg("pk")))
    found = slim.first(pk=mine.pk)
    assert found.get_deferred_fields() >= {"spec", "status"}
    assert found.spec == mine.spec  # loaded on access, as Django does
    assert slim.first(pk=0) is None


def test_list_arguments_of_any_length_and_values_that_are_never_sql(two_tenants, org):
    backends = Statement(
        lambda names: Backend.objects.filter(tenant_id=Arg("tenant"), name__in=names).order_by(
            "name"
        )
    )

    def named(names):
        return [backend.name for backend in backends.objects(tenant=org.tenant.pk, names=names)]

    assert named([]) == []
    assert named(["b-2", "api"]) == ["api", "b-2"]
    assert named(["it's", "nope"]) == ["it's"]  # a value, not SQL
    long = ["b-1"] + [f"x-{index}" for index in range(statements.LIST_LENGTHS + 5)]
    assert named(long) == ["b-1"]
    assert named([f"x-{index}" for index in range(40)] + ["b-2"]) == ["b-2"]  # padded with it
    longest = [f"x-{index}" for index in range(statements.LONGEST_LIST + 1)]
    assert named([*longest, "api"]) == ["api"]
    assert backends.objects(tenant=0, names=["api"]) == []  # another tenant's rows: none


def test_longer_lists_are_compiled_once_per_power_of_two(two_tenants, org):
    calls = []

    def build(names):
        calls.append(len(names))
        return Backend.objects.filter(tenant_id=Arg("tenant"), name__in=names).values_list("name")

    backends = Statement(build)
    for count in (17, 20, 32, 33, 50, 64):
        names = [f"x-{index}" for index in range(count - 1)] + ["b-1"]
        assert backends.rows(tenant=org.tenant.pk, names=names) == [("b-1",)]
    assert calls == [32, 64]
    too_long = [f"x-{index}" for index in range(statements.LONGEST_LIST + 1)]
    for _ in range(2):
        backends.rows(tenant=org.tenant.pk, names=too_long)
    assert calls[2:] == [statements.LONGEST_LIST + 1] * 2  # compiled each time, as a queryset


def test_a_values_statement_makes_no_instances(two_tenants):
    names = Statement(lambda: Route.objects.filter(gateway_id=Arg("gateway")).values_list("name"))
    with pytest.raises(TypeError, match="rows"):
        names.objects(gateway=two_tenants[0].pk)


@pytest.mark.django_db(transaction=True)
def test_a_locking_statement_outside_a_transaction_fails_as_djangos_does(two_tenants):
    locking = Statement(
        lambda: Gateway.objects.select_for_update(of=("self",)).filter(pk=Arg("pk"))
    )
    with transaction.atomic():
        assert locking.first(pk=two_tenants[0].pk) is not None
    with pytest.raises(transaction.TransactionManagementError, match="outside of a transaction"):
        locking.first(pk=two_tenants[0].pk)

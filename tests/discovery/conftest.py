"""Fixtures of the discovery suites: registered clusters, the operator's grants."""

import pytest

from provisioning.discovery import grants
from provisioning.models import KubernetesCluster
from tenants.audit import Actor
from tenants.models import Plan
from tests.kubernetes.conftest import (  # noqa: F401 (fixtures used by these suites)
    KUBECONFIG,
    k8s_cluster,
    k8s_gateway,
)

ACTOR = Actor.system("tests")


def register(name: str, *plans: Plan, kubeconfig: str = KUBECONFIG) -> KubernetesCluster:
    cluster = KubernetesCluster.objects.create(
        name=name, kubeconfig=kubeconfig, xds_address="gantry-xds.gantry.svc", xds_port=18000
    )
    cluster.plans.add(*plans)
    return cluster


@pytest.fixture
def clusters(db, plan):
    """``prod`` and ``staging`` (the standard plan may use them) and ``private`` (no plan)."""
    return {
        "prod": register("prod", plan),
        "staging": register("staging", plan),
        "private": register("private"),
    }


@pytest.fixture
def granted(org, other_org, clusters):
    """acme may discover prod/shop and private/shop (whose cluster its plan may not use);
    globex may discover prod/billing."""
    grants.grant_namespace(ACTOR, clusters["prod"], org.tenant, "shop")
    grants.grant_namespace(ACTOR, clusters["private"], org.tenant, "shop")
    grants.grant_namespace(ACTOR, clusters["prod"], other_org.tenant, "billing")
    return clusters

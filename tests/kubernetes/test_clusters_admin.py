"""Registering clusters in the operators' admin: the kubeconfig is encrypted at rest and never
shown back."""

import pytest
from django.db import connection

from provisioning.models import KubernetesCluster
from tenants.models import Plan
from tests.conftest import make_user
from tests.kubernetes.conftest import KUBECONFIG


@pytest.fixture
def operator_client(client, db):
    client.force_login(make_user("root", is_staff=True, is_superuser=True))
    return client


def form(**overrides) -> dict:
    data = {
        "name": "prod-eu",
        "kubeconfig": KUBECONFIG,
        "context": "",
        "exposure": "LoadBalancer",
        "envoy_image": "envoyproxy/envoy:v1.40.0",
        "xds_address": "gantry-xds.gantry.svc",
        "xds_port": "18000",
        "plans": [Plan.objects.get(name="standard").pk],
    }
    return data | overrides


def test_a_cluster_is_registered_with_its_kubeconfig_encrypted(operator_client):
    response = operator_client.post("/admin/provisioning/kubernetescluster/add/", form())
    assert response.status_code == 302, response.content[:3000]
    cluster = KubernetesCluster.objects.get(name="prod-eu")
    assert cluster.kubeconfig == KUBECONFIG
    assert list(cluster.plans.values_list("name", flat=True)) == ["standard"]
    with connection.cursor() as cursor:
        cursor.execute("SELECT kubeconfig FROM provisioning_kubernetescluster")
        stored = cursor.fetchone()[0]
    assert "kubeconfig-secret-token" not in stored and stored != KUBECONFIG


def test_the_kubeconfig_is_never_shown_and_kept_when_left_empty(operator_client):
    operator_client.post("/admin/provisioning/kubernetescluster/add/", form())
    cluster = KubernetesCluster.objects.get(name="prod-eu")
    page = operator_client.get(f"/admin/provisioning/kubernetescluster/{cluster.pk}/change/")
    assert page.status_code == 200
    assert b"kubeconfig-secret-token" not in page.content
    response = operator_client.post(
        f"/admin/provisioning/kubernetescluster/{cluster.pk}/change/",
        form(kubeconfig="", exposure="NodePort"),
    )
    assert response.status_code == 302, response.content[:3000]
    cluster.refresh_from_db()
    assert cluster.exposure == "NodePort" and cluster.kubeconfig == KUBECONFIG


def test_a_cluster_needs_a_kubeconfig_or_in_cluster(operator_client):
    response = operator_client.post(
        "/admin/provisioning/kubernetescluster/add/", form(kubeconfig="")
    )
    assert response.status_code == 200 and b"required unless in_cluster" in response.content
    response = operator_client.post(
        "/admin/provisioning/kubernetescluster/add/", form(in_cluster="on")
    )
    assert response.status_code == 200 and b"leave empty when in_cluster" in response.content
    response = operator_client.post(
        "/admin/provisioning/kubernetescluster/add/", form(in_cluster="on", kubeconfig="")
    )
    assert response.status_code == 302
    assert KubernetesCluster.objects.get(name="prod-eu").in_cluster


def test_a_kubeconfig_that_cannot_be_used_is_refused(operator_client):
    for broken in ("clusters: [", "apiVersion: v1\nkind: Config\nclusters: []\n"):
        response = operator_client.post(
            "/admin/provisioning/kubernetescluster/add/", form(kubeconfig=broken)
        )
        assert response.status_code == 200 and b"cannot be used" in response.content
    response = operator_client.post(
        "/admin/provisioning/kubernetescluster/add/", form(context="no-such-context")
    )
    assert response.status_code == 200 and b"no-such-context" in response.content
    assert not KubernetesCluster.objects.exists()

"""Fixtures of the Kubernetes runtime suites: a registered cluster and a gateway on it."""

import pytest

from gateways import services as gateway_services
from provisioning.models import KubernetesCluster
from tenants.audit import Actor

ACTOR = Actor.system("tests")
KUBECONFIG = """apiVersion: v1
kind: Config
clusters:
- name: test
  cluster: {server: "https://127.0.0.1:6443"}
contexts:
- name: test
  context: {cluster: test, user: test}
current-context: test
users:
- name: test
  user: {token: kubeconfig-secret-token-1234}
"""


@pytest.fixture
def k8s_cluster(db, plan):
    cluster = KubernetesCluster.objects.create(
        name="prod-eu",
        kubeconfig=KUBECONFIG,
        exposure="LoadBalancer",
        xds_address="gantry-xds.gantry.svc.cluster.local",
        xds_port=18000,
    )
    cluster.plans.add(plan)
    return cluster


@pytest.fixture
def k8s_gateway(org, k8s_cluster):
    return gateway_services.create_gateway(
        ACTOR,
        org.tenant,
        "edge",
        {
            "runtime": "kubernetes",
            "replicas": 2,
            "size": "medium",
            "listeners": [{"name": "http", "protocol": "HTTP", "port": 80}],
        },
    )

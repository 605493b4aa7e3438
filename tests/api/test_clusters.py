"""The clusters API (``/api/v1/clusters/``) and ``manage.py clusters``: operators only, the
kubeconfig write-only and never in an answer, an error, the audit log or the command's
output; a connection test against the Kubernetes API server double and an unreachable one;
deleting a cluster gateways run on is refused, naming them."""

import json
import socket
from io import StringIO

import pytest
import yaml
from django.core.management import CommandError, call_command

from provisioning.models import KubernetesCluster, KubernetesPlacement
from tenants.models import AuditEvent
from tenants.roles import Role
from tests.kubernetes.apiserver_double import ApiServerDouble
from tests.kubernetes.conftest import KUBECONFIG, k8s_cluster, k8s_gateway  # noqa: F401 (fixtures)

SECRET = "kubeconfig-secret-token-1234"  # the token inside KUBECONFIG
CLUSTERS = "/api/v1/clusters/"


def kubeconfig_for(server: str, token: str = SECRET) -> str:
    return yaml.safe_dump(
        {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "c", "cluster": {"server": server}}],
            "users": [{"name": "u", "user": {"token": token}}],
            "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}],
            "current-context": "c",
        }
    )


def unused_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def double():
    server = ApiServerDouble().start()
    yield server
    server.stop()


def body(**overrides) -> dict:
    data = {
        "name": "prod-eu",
        "kubeconfig": KUBECONFIG,
        "xdsAddress": "gantry-xds.gantry.svc",
        "plans": ["standard"],
    }
    return data | overrides


def test_only_operators_see_or_change_clusters(org, staff_client):
    owner = org.client(Role.OWNER)
    assert owner.get(CLUSTERS).status_code == 403
    assert owner.post(CLUSTERS, body(), format="json").status_code == 403
    assert not KubernetesCluster.objects.exists()
    assert staff_client.get(CLUSTERS).status_code == 200


def test_a_cluster_is_registered_and_its_kubeconfig_never_comes_back(staff_client):
    response = staff_client.post(CLUSTERS, body(), format="json")
    assert response.status_code == 201, response.content
    answer = response.json()
    assert answer["name"] == "prod-eu" and answer["plans"] == ["standard"]
    assert answer["hasKubeconfig"] is True and "kubeconfig" not in answer
    assert answer["exposure"] == "LoadBalancer" and answer["xdsPort"] == 18000
    assert answer["gateways"] == 0
    assert KubernetesCluster.objects.get().kubeconfig == KUBECONFIG
    for path in (CLUSTERS, CLUSTERS + "prod-eu/"):
        assert SECRET not in staff_client.get(path).content.decode()
    event = AuditEvent.objects.get(object_type="kubernetes-cluster", action="create")
    assert event.actor_name == "operator" and SECRET not in json.dumps(event.after)
    assert event.after["plans"] == ["standard"] and event.after["access"] == "kubeconfig"


@pytest.mark.parametrize(
    ("overrides", "path", "words"),
    [
        ({"kubeconfig": ""}, "kubeconfig", "required unless inCluster"),
        ({"inCluster": True}, "kubeconfig", "leave empty when inCluster"),
        ({"plans": ["standard", "gold"]}, "plans[1]", "no plan named 'gold'"),
        ({"xdsPort": 0}, "xdsPort", "greater than or equal to 1"),
        ({"name": "Prod_EU"}, "name", ""),
        ({"exposure": "Ingress"}, "exposure", ""),
        ({"context": "nowhere"}, "kubeconfig", "nowhere"),
        ({"kubeconfig": "- just a list"}, "kubeconfig", "expected a YAML mapping"),
    ],
)
def test_bad_input_names_its_field_and_changes_nothing(staff_client, overrides, path, words):
    response = staff_client.post(CLUSTERS, body(**overrides), format="json")
    assert response.status_code == 400, response.content
    fields = response.json()["error"]["fields"]
    assert [f["path"] for f in fields] == [path]
    assert words in fields[0]["message"]
    assert (
        not KubernetesCluster.objects.exists()
        and not AuditEvent.objects.filter(object_type="kubernetes-cluster").exists()
    )


def test_a_broken_kubeconfig_is_refused_without_echoing_it(staff_client):
    broken = f"clusters: [\nusers: {{token: {SECRET}"
    response = staff_client.post(CLUSTERS, body(kubeconfig=broken), format="json")
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["fields"][0]["path"] == "kubeconfig"
    assert "not valid YAML" in error["fields"][0]["message"]
    assert "line 2" in error["fields"][0]["message"]
    assert SECRET not in response.content.decode()


def test_a_duplicate_name_is_409(staff_client):
    assert staff_client.post(CLUSTERS, body(), format="json").status_code == 201
    assert staff_client.post(CLUSTERS, body(), format="json").status_code == 409


def test_an_update_keeps_the_kubeconfig_and_is_audited(staff_client):
    staff_client.post(CLUSTERS, body(), format="json")
    response = staff_client.patch(
        CLUSTERS + "prod-eu/", {"exposure": "NodePort", "plans": ["enterprise"]}, format="json"
    )
    assert response.status_code == 200, response.content
    assert response.json()["plans"] == ["enterprise"]
    cluster = KubernetesCluster.objects.get()
    assert cluster.exposure == "NodePort" and cluster.kubeconfig == KUBECONFIG
    event = AuditEvent.objects.get(object_type="kubernetes-cluster", action="update")
    assert event.before["plans"] == ["standard"] and event.after["plans"] == ["enterprise"]
    response = staff_client.patch(CLUSTERS + "prod-eu/", {"name": "other"}, format="json")
    assert response.status_code == 400
    assert response.json()["error"]["fields"][0]["path"] == "name"
    response = staff_client.patch(CLUSTERS + "prod-eu/", {"xdsPort": 70000}, format="json")
    assert response.status_code == 400 and KubernetesCluster.objects.get().xds_port == 18000


def test_switching_to_in_cluster_drops_the_kubeconfig(staff_client):
    staff_client.post(CLUSTERS, body(), format="json")
    response = staff_client.patch(CLUSTERS + "prod-eu/", {"inCluster": True}, format="json")
    assert response.status_code == 200 and response.json()["hasKubeconfig"] is False
    assert KubernetesCluster.objects.get().kubeconfig == ""


def test_a_connection_test_against_the_api_server(staff_client, double):
    staff_client.post(CLUSTERS, body(kubeconfig=kubeconfig_for(double.host)), format="json")
    response = staff_client.post(CLUSTERS + "prod-eu/test/")
    assert response.status_code == 200
    result = response.json()
    assert result["ok"] is True, result
    assert result["latencyMs"] > 0 and result["serverVersion"].startswith("v1.")
    assert [(method, path.split("?")[0]) for method, path in double.requests] == [
        ("GET", "/version"),
        ("GET", "/api"),
    ]
    assert SECRET not in response.content.decode()
    event = AuditEvent.objects.get(object_type="kubernetes-cluster", action="test")
    assert event.after["ok"] is True


def test_a_connection_test_of_an_unreachable_cluster_says_why(staff_client):
    address = f"https://127.0.0.1:{unused_port()}"
    staff_client.post(CLUSTERS, body(kubeconfig=kubeconfig_for(address)), format="json")
    response = staff_client.post(CLUSTERS + "prod-eu/test/")
    assert response.status_code == 200
    result = response.json()
    assert result["ok"] is False and result["latencyMs"] is None
    assert "could not reach the API server" in result["message"]
    assert "refused" in result["message"].lower()
    assert SECRET not in response.content.decode()


def test_a_cluster_gateways_run_on_is_not_deleted(staff_client, k8s_gateway, k8s_cluster):  # noqa: F811
    KubernetesPlacement.objects.create(gateway=k8s_gateway, cluster=k8s_cluster)
    response = staff_client.delete(CLUSTERS + "prod-eu/")
    assert response.status_code == 409
    assert "acme/edge" in response.json()["error"]["message"]
    assert KubernetesCluster.objects.filter(name="prod-eu").exists()
    assert staff_client.get(CLUSTERS + "prod-eu/").json()["gateways"] == 1
    KubernetesPlacement.objects.all().delete()
    assert staff_client.delete(CLUSTERS + "prod-eu/").status_code == 204
    assert AuditEvent.objects.filter(object_type="kubernetes-cluster", action="delete").exists()


# manage.py clusters


def run(*args) -> str:
    out = StringIO()
    call_command("clusters", *args, stdout=out)
    return out.getvalue()


def test_the_command_registers_lists_tests_and_deletes(db, tmp_path, double):
    path = tmp_path / "kubeconfig"
    path.write_text(kubeconfig_for(double.host))
    assert "registered cluster lab" in run(
        "register", "lab", "--kubeconfig", str(path), "--xds-address", "xds.example.com",
        "--plan", "standard", "--plan", "enterprise",
    )  # fmt: skip
    listed = run("list")
    assert listed.splitlines()[0].split() == [
        "NAME", "CREDENTIALS", "EXPOSURE", "XDS", "PLANS", "GATEWAYS"
    ]  # fmt: skip
    assert "lab" in listed and "enterprise,standard" in listed and SECRET not in listed
    assert json.loads(run("list", "--json"))[0]["plans"] == ["enterprise", "standard"]
    assert "connected" in run("test", "lab")
    assert "deleted cluster lab" in run("delete", "lab")
    assert not KubernetesCluster.objects.exists()
    assert AuditEvent.objects.filter(object_type="kubernetes-cluster").count() == 3


def test_the_command_fails_with_exit_code_1(db, tmp_path):
    path = tmp_path / "kubeconfig"
    path.write_text(kubeconfig_for(f"https://127.0.0.1:{unused_port()}"))
    with pytest.raises(CommandError) as refused:
        run("register", "lab", "--kubeconfig", str(path), "--xds-address", "x", "--plan", "gold")
    assert refused.value.returncode == 1 and "plans[0]: no plan named 'gold'" in str(refused.value)
    run("register", "lab", "--kubeconfig", str(path), "--xds-address", "x")
    with pytest.raises(CommandError) as failed:
        run("test", "lab")
    assert failed.value.returncode == 1 and "could not reach" in str(failed.value)
    with pytest.raises(CommandError) as missing:
        run("delete", "nope")
    assert missing.value.returncode == 1 and "no cluster named 'nope'" in str(missing.value)


def test_the_command_s_exit_codes_in_a_shell(db):
    """What CI sees: 1 for a refusal, 2 for wrong usage."""
    import subprocess
    import sys

    from django.conf import settings

    assert settings.BASE_DIR  # the project's manage.py
    usage = subprocess.run(
        [sys.executable, str(settings.BASE_DIR / "manage.py"), "clusters", "frobnicate"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert usage.returncode == 2 and "invalid choice" in usage.stderr

"""A replica's bootstrap: identity, token and ADS server, accepted by real Envoy."""

import json
import subprocess

import pytest
from envoy.config.bootstrap.v3.bootstrap_pb2 import Bootstrap
from google.protobuf import json_format

from provisioning.envoy import envoy_binary
from provisioning.xds import resources  # noqa: F401 (registers the typed_config types)
from provisioning.xds.bootstrap import envoy_bootstrap


def bootstrap(**overrides) -> dict:
    arguments = {"gateway_key": "acme/edge", "replica": 1, "token": "s3cret",
                 "xds_address": "127.0.0.1", "xds_port": 18000, "admin_port": 19000}  # fmt: skip
    return envoy_bootstrap(**{**arguments, **overrides})


def test_it_names_the_replica_and_sends_the_gateways_token():
    config = bootstrap()
    assert config["node"] == {"id": "acme/edge/1", "cluster": "acme/edge"}
    ads = config["dynamic_resources"]["ads_config"]
    assert ads["api_type"] == "DELTA_GRPC"
    assert ads["grpc_services"][0]["initial_metadata"] == [
        {"key": "authorization", "value": "Bearer s3cret"}
    ]
    assert config["dynamic_resources"]["lds_config"] == {"ads": {}, "resource_api_version": "V3"}
    assert config["admin"]["address"]["socket_address"] == {"address": "127.0.0.1",
                                                            "port_value": 19000}  # fmt: skip


def test_a_host_name_xds_address_is_resolved_by_dns():
    assert bootstrap()["static_resources"]["clusters"][0]["type"] == "STATIC"
    by_name = bootstrap(xds_address="xds.gantry.svc")
    assert by_name["static_resources"]["clusters"][0]["type"] == "STRICT_DNS"


def test_it_refuses_an_unknown_api_type():
    with pytest.raises(ValueError, match="api_type"):
        bootstrap(api_type="REST")


@pytest.mark.parametrize("api_type", ["DELTA_GRPC", "GRPC"])
def test_envoy_accepts_the_bootstrap(api_type, tmp_path):
    config = bootstrap(api_type=api_type, xds_address="xds.example.internal")
    json_format.ParseDict(config, Bootstrap())  # every field is a real Bootstrap field
    path = tmp_path / "bootstrap.json"
    path.write_text(json.dumps(config))
    result = subprocess.run(
        [envoy_binary(), "--mode", "validate", "--config-path", str(path),
         "--log-level", "error", "--disable-hot-restart"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr + result.stdout


def test_a_local_replicas_admin_is_a_private_unix_socket_and_envoy_accepts_it(tmp_path):
    socket_path = str(tmp_path / "admin-1.sock")
    on_a_socket = bootstrap(admin_port=None, admin_socket=socket_path)
    assert on_a_socket["admin"] == {"address": {"pipe": {"path": socket_path, "mode": 0o600}}}
    assert "admin" not in bootstrap(admin_port=None)  # neither: no admin at all
    over_a_socket = bootstrap(xds_socket=str(tmp_path / "xds.sock"), admin_socket=socket_path)
    endpoint = over_a_socket["static_resources"]["clusters"][0]["load_assignment"]["endpoints"]
    assert endpoint[0]["lb_endpoints"][0]["endpoint"]["address"] == {
        "pipe": {"path": str(tmp_path / "xds.sock")}
    }
    for config in (on_a_socket, over_a_socket):
        json_format.ParseDict(config, Bootstrap())
        path = tmp_path / "bootstrap.json"
        path.write_text(json.dumps(config))
        result = subprocess.run(
            [envoy_binary(), "--mode", "validate", "--config-path", str(path),
             "--log-level", "error", "--disable-hot-restart"],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr + result.stdout

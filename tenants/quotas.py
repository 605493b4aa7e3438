"""Plan quotas, checked by the services before a write (with the tenant row locked)."""

from config.errors import DisallowedValue, QuotaExceeded
from tenants.models import Tenant

# Counted quotas: the quota's API name → the plan's column. Backends, certificates and
# consumers are counted per tenant, tokens per user in a tenant (active ones only).
COUNTED = {
    "maxBackends": "max_backends",
    "maxCertificates": "max_certificates",
    "maxConsumers": "max_consumers",
    "maxTokensPerUser": "max_tokens_per_user",
}


def lock_tenant(tenant: Tenant) -> Tenant:
    """The tenant row locked until the transaction ends, with its plan: two concurrent creates
    both counting below the quota cannot both succeed."""
    return Tenant.objects.select_for_update(of=("self",)).select_related("plan").get(pk=tenant.pk)


def check_count(tenant: Tenant, quota: str, current: int, adding: int = 1) -> None:
    """QuotaExceeded if ``adding`` more would take ``current`` past the ``quota`` (a COUNTED
    name) of the tenant's plan."""
    plan = tenant.plan
    limit = getattr(plan, COUNTED[quota])
    if current + adding > limit:
        raise QuotaExceeded(quota, limit=limit, used=current, requested=adding, plan=plan.name)


def check_gateway_count(tenant: Tenant, current: int, adding: int = 1) -> None:
    plan = tenant.plan
    if current + adding > plan.max_gateways:
        raise QuotaExceeded(
            "maxGateways", limit=plan.max_gateways, used=current, requested=adding, plan=plan.name
        )


def check_replicas(tenant: Tenant, replicas: int) -> None:
    plan = tenant.plan
    if replicas > plan.max_replicas_per_gateway:
        raise QuotaExceeded(
            "maxReplicasPerGateway",
            limit=plan.max_replicas_per_gateway,
            used=0,
            requested=replicas,
            plan=plan.name,
            message=f"quota maxReplicasPerGateway of plan {plan.name!r} is "
            f"{plan.max_replicas_per_gateway}; spec.replicas asks for {replicas}",
        )


def check_route_count(tenant: Tenant, current: int, adding: int = 1) -> None:
    plan = tenant.plan
    if current + adding > plan.max_routes_per_gateway:
        raise QuotaExceeded(
            "maxRoutesPerGateway",
            limit=plan.max_routes_per_gateway,
            used=current,
            requested=adding,
            plan=plan.name,
        )


def check_size(tenant: Tenant, size: str, path: str = "spec.size") -> None:
    allowed = tenant.plan.allowed_sizes
    if size not in allowed:
        raise DisallowedValue(
            path,
            f"size {size!r} is not allowed by plan {tenant.plan.name!r} "
            f"(allowed: {', '.join(allowed) or 'none'})",
        )

"""Per-listener status of a gateway (Gateway API ``status.listeners[]``).

``ResolvedRefs`` says whether an HTTPS listener's certificates exist and can serve TLS (have a
private key). A listener without a usable certificate is left out of the Envoy config, so this
condition is where the tenant learns why it does not answer. ``supportedKinds`` lists the route
kinds the listener takes (``gateways.route_kinds``). Other fields of an entry (the
``url`` the delivery pipeline fills in) are kept.
"""

from django.db.models import F

from gateways.conditions import set_condition
from gateways.models import Certificate, Gateway
from gateways.route_kinds import supported_kinds


def _resolved(listener: dict, certificates: dict[str, bool]) -> tuple[str, str, str]:
    refs = [ref["name"] for ref in (listener.get("tls") or {}).get("certificateRefs", [])]
    missing = [name for name in refs if name not in certificates]
    keyless = [name for name in refs if name in certificates and not certificates[name]]
    problems = [f"certificate {name!r} does not exist" for name in missing] + [
        f"certificate {name!r} has no private key (a CA bundle cannot serve TLS)"
        for name in keyless
    ]
    if problems:
        return "False", "InvalidCertificateRef", "; ".join(problems)
    return "True", "ResolvedRefs", "every referenced certificate can serve TLS"


def listener_statuses(
    spec: dict, certificates: dict[str, bool], previous: list[dict], generation: int
) -> list[dict]:
    """``certificates``: the tenant's certificate names → whether each has a private key."""
    before = {entry.get("name"): entry for entry in previous}
    result = []
    for listener in spec.get("listeners", []):
        entry = dict(before.get(listener["name"], {}))
        conditions = set_condition(
            entry.get("conditions", []), "ResolvedRefs",
            *_resolved(listener, certificates), generation,
        )  # fmt: skip
        result.append({
            **entry, "name": listener["name"], "supportedKinds": supported_kinds(listener),
            "conditions": conditions,
        })  # fmt: skip
    return result


def refresh_listener_status(gateway: Gateway) -> None:
    """Recomputes ``status.listeners`` and stores it when it changed (no new generation)."""
    certificates = {
        cert.name: bool(cert.status.get("hasPrivateKey"))
        for cert in Certificate.objects.filter(tenant_id=gateway.tenant_id).only("name", "status")
    }
    current = Gateway.objects.only("spec", "status", "generation").get(pk=gateway.pk)
    listeners = listener_statuses(
        current.spec, certificates, current.status.get("listeners", []), current.generation
    )
    if listeners != current.status.get("listeners", []):
        Gateway.objects.filter(pk=gateway.pk).update(
            status={**current.status, "listeners": listeners},
            resource_version=F("resource_version") + 1,
        )
    gateway.refresh_from_db(fields=["status", "resource_version"])


def refresh_tenant_listener_status(tenant_id: int) -> None:
    for gateway in Gateway.objects.filter(tenant_id=tenant_id).only("pk", "tenant_id"):
        refresh_listener_status(gateway)

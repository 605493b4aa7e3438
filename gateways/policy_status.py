"""A policy's status, Envoy Gateway's PolicyStatus simplified: one entry per target in
``ancestors`` (``ancestorRef`` is the targetRef itself) with an ``Accepted`` condition saying
whether the policy applies there and why not (``TargetNotFound``, ``Conflicted``, ``Invalid``),
and ``Overridden`` when a more specific policy of the same kind covers part of the target.
A top-level ``Accepted`` condition sums them up.
"""

from gateways.conditions import set_condition
from provisioning.ir.client_traffic import settle_ports
from provisioning.ir.policies import ACCEPTED, Resolution, resolve


def gateway_resolution(
    policies,
    routes: dict,
    listeners,
    consumers,
    backends=(),
    refused=None,
    egress=None,
    oidc=None,
) -> Resolution:
    """``policies``: Policy rows of one gateway, in any order; ``routes``: route name → the
    names of its rules; ``consumers``, ``backends``: the tenant's names; ``refused``,
    ``egress``: backends the egress policy refuses (name → why), and that policy; ``oidc``:
    what is known of their OpenID providers (``provisioning.ir.oidc.OidcInputs``)."""
    ordered = sorted(policies, key=lambda p: (p.created_at, p.name))
    specs = [{"name": p.name, "kind": p.kind, "spec": p.spec} for p in ordered]
    names = [listener["name"] for listener in listeners]
    resolution = resolve(specs, routes, names, consumers, backends, refused, egress, oidc)
    return settle_ports(resolution, specs, listeners)


def _previous(previous: dict, ref: dict) -> list[dict]:
    for ancestor in previous.get("ancestors", []):
        if ancestor.get("ancestorRef") == ref:
            return ancestor.get("conditions", [])
    return []


def policy_status(name: str, generation: int, previous: dict, resolution: Resolution) -> dict:
    ancestors, failures = [], []
    for result in resolution.results.get(name, []):
        accepted = result.reason == ACCEPTED
        conditions = set_condition(
            _previous(previous, result.ref), "Accepted", "True" if accepted else "False",
            result.reason, result.message, generation,
        )  # fmt: skip
        if result.overridden_for:
            conditions = set_condition(
                conditions, "Overridden", "True", "Overridden",
                "a more specific policy of the same kind applies to "
                + ", ".join(result.overridden_for), generation,
            )  # fmt: skip
        else:
            conditions = [c for c in conditions if c["type"] != "Overridden"]
        ancestors.append({"ancestorRef": result.ref, "conditions": conditions})
        if not accepted:
            failures.append(result)
    if failures:
        first = failures[0]
        summary = ("False", first.reason, f"{len(failures)} of {len(ancestors)} targets not "
                   f"applied; first: {first.message}")  # fmt: skip
    else:
        summary = ("True", ACCEPTED, "applied to every target")
    conditions = set_condition(previous.get("conditions", []), "Accepted", *summary, generation)
    return {"observedGeneration": generation, "conditions": conditions, "ancestors": ancestors}

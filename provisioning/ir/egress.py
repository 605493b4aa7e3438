"""The egress policy at translation time: the same check as the API's, again, for rows stored
before the policy (or under a laxer one). Pure: the policy comes with the desired state.

A refused backend is left out of the configuration, as if it did not exist: the routes sending
to it answer 500 for its share, a mirror to it is dropped, and a SecurityPolicy whose extAuth
names it is Invalid (its targets answer 500). A SecurityPolicy with a refused ``remoteJWKS``
URI is Invalid too. Nothing fails open: no refused address ever reaches Envoy.
"""

from dataclasses import replace

from gateways.egress import EgressPolicy, backend_refusals


def refused_backends(
    backends: dict[str, dict], policy: EgressPolicy | None, resolved: dict | None = None
) -> dict[str, str]:
    """Backend name → why the policy refuses it (its first refused endpoint); ``resolved``:
    the addresses its host names resolved to, when the platform pins them."""
    if policy is None:
        return {}
    refused = {}
    for name, spec in backends.items():
        found = backend_refusals(spec, policy, resolved)
        if found:
            path, reason = found[0]
            refused[name] = f"{path}: {reason}"
    return refused


def without_refused(state):
    """``state`` without its refused backends, and {name: why} of those."""
    refused = refused_backends(state.backends, state.egress, state.resolved)
    if not refused:
        return state, refused
    kept = {name: spec for name, spec in state.backends.items() if name not in refused}
    return replace(state, backends=kept), refused


def jwks_refusals(spec: dict, policy: EgressPolicy | None) -> list[str]:
    """``path: why`` for each remoteJWKS URI of a SecurityPolicy spec the policy refuses."""
    if policy is None:
        return []
    found = []
    for index, provider in enumerate((spec.get("jwt") or {}).get("providers", [])):
        uri = (provider.get("remoteJWKS") or {}).get("uri")
        reason = uri and policy.check_uri(uri)
        if reason:
            path = f"spec.jwt.providers[{index}].remoteJWKS.uri"
            found.append(f"{path}: refused by the egress policy ({reason})")
    return found


def refused_in_resources(resources: dict, policy: EgressPolicy) -> list[str]:
    """``cluster: why`` for each endpoint of compiled resources (``Resources.as_dict()``, or a
    stored revision's) the policy refuses: for configuration compiled under an older policy,
    such as a stored revision (a rollback compiles again, under today's policy)."""
    found = []
    for cluster in resources.get("clusters", []):
        assignment = cluster.get("load_assignment") or {}
        for group in assignment.get("endpoints", []):
            for item in group.get("lb_endpoints", []):
                socket = item.get("endpoint", {}).get("address", {}).get("socket_address", {})
                if "address" not in socket:
                    continue
                reason = policy.check(socket["address"], socket.get("port_value"))
                if reason:
                    found.append(f"{cluster.get('name')}: {reason}")
    return found

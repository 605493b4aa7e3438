"""SecurityPolicy extAuth → IR: the HTTP authorization service is one of the tenant's backends,
reached through that backend's cluster (the one its routes use). Pure."""

from provisioning.ir.durations import to_ms
from provisioning.ir.names import cluster_name
from provisioning.ir.types import ExtAuth

DEFAULT_TIMEOUT = "10s"  # Envoy Gateway's


def named_backends(spec: dict) -> list[tuple[str, str]]:
    """(JSON path, backend name) of every backend a SecurityPolicy names."""
    ext_auth = spec.get("extAuth") or {}
    kind = "grpc" if "grpc" in ext_auth else "http"
    refs = (ext_auth.get(kind) or {}).get("backendRefs", [])
    return [(f"spec.extAuth.{kind}.backendRefs[{index}]", ref["name"])
            for index, ref in enumerate(refs)]  # fmt: skip


def _uri(backend: dict, path: str) -> str:
    """Where the service is, for Envoy's ``server_uri`` (requests go through the cluster)."""
    service = backend.get("kubernetesService")
    if service is not None:  # its endpoints come by EDS; the URI only names it
        address = {"hostname": f"{service['name']}.{service['namespace']}.svc",
                   "port": service["port"]}  # fmt: skip
    else:
        endpoint = backend["endpoints"][0]
        address = endpoint.get("ip") or endpoint["fqdn"]
    host = address.get("address") or address.get("hostname")
    if ":" in host:
        host = f"[{host}]"
    scheme = "https" if backend.get("tls") is not None else "http"
    return f"{scheme}://{host}:{address['port']}{path}"


def build_ext_auth(tenant: str, policy: str, spec: dict, backends: dict[str, dict]) -> ExtAuth:
    """``spec``: the policy's ``extAuth``; its backend exists (else the policy is invalid)."""
    if "grpc" in spec:
        backend = spec["grpc"]["backendRefs"][0]["name"]
        return ExtAuth(
            policy=policy, cluster=cluster_name(tenant, backend), uri="", grpc=True,
            headers_to_ext_auth=tuple(h.lower() for h in spec.get("headersToExtAuth", [])),
            timeout_ms=to_ms(spec.get("timeout", DEFAULT_TIMEOUT)),
            fail_open=spec.get("failOpen", False),
        )  # fmt: skip
    http = spec["http"]
    backend = http["backendRefs"][0]["name"]
    path = http.get("path", "")
    return ExtAuth(
        policy=policy, cluster=cluster_name(tenant, backend), uri=_uri(backends[backend], path),
        path_prefix=path,
        headers_to_ext_auth=tuple(h.lower() for h in spec.get("headersToExtAuth", [])),
        headers_to_backend=tuple(h.lower() for h in http.get("headersToBackend", [])),
        timeout_ms=to_ms(spec.get("timeout", DEFAULT_TIMEOUT)),
        fail_open=spec.get("failOpen", False),
    )  # fmt: skip

"""Backend host names resolved by the platform, for gateways whose traffic no network policy
checks (the local runtime).

On Kubernetes the gateway's NetworkPolicy refuses the denied ranges whatever a name resolves
to. On the local runtime nothing below Envoy does: a backend named ``rebind.example`` that
resolves to 127.0.0.1, 169.254.169.254 or a platform address would pass the API's check (a
name is not an address) and Envoy would connect there. So the platform resolves each name
itself when it compiles, checks every address against the egress policy, and gives Envoy the
addresses (a STATIC cluster), never the name: a DNS answer that changes after the check
(rebinding) reaches no Envoy. Names are resolved again at every reconcile, so the periodic
heal (``GANTRY_RECONCILE_ALL_SECONDS``) is how often a gateway follows a DNS change.
"""

import ipaddress
import logging
import socket
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout

from django.conf import settings

log = logging.getLogger(__name__)
MAX_ADDRESSES = 16  # per name: a round-robin answer, not a way to grow a cluster without bound


def fqdn_names(backends: dict[str, dict]) -> set[str]:
    return {
        endpoint["fqdn"]["hostname"].lower().rstrip(".")
        for spec in backends.values()
        for endpoint in spec.get("endpoints", [])
        if "fqdn" in endpoint
    }


def _lookup(name: str) -> tuple[str, ...]:
    try:
        answers = socket.getaddrinfo(name, None, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as error:
        log.info("backend host %s does not resolve: %s", name, error)
        return ()
    found = {ipaddress.ip_address(answer[4][0].split("%", 1)[0]) for answer in answers}
    # IPv4 first (as Envoy's V4_PREFERRED), then a stable order: no new revision per answer.
    ordered = sorted(found, key=lambda address: (address.version, address.packed))
    return tuple(str(address) for address in ordered[:MAX_ADDRESSES])


def resolve(names: set[str], timeout: float | None = None) -> dict[str, tuple[str, ...]]:
    """name → its addresses (empty when it does not resolve within ``timeout`` seconds)."""
    if not names:
        return {}
    timeout = settings.GANTRY_DNS_TIMEOUT_SECONDS if timeout is None else timeout
    ordered = sorted(names)
    pool = ThreadPoolExecutor(max_workers=min(8, len(ordered)), thread_name_prefix="dns")
    try:
        futures = {name: pool.submit(_lookup, name) for name in ordered}
        resolved = {}
        for name, future in futures.items():
            try:
                resolved[name] = future.result(timeout=timeout)
            except FutureTimeout:
                log.info("backend host %s: no answer within %ss", name, timeout)
                resolved[name] = ()
        return resolved
    finally:
        pool.shutdown(wait=False, cancel_futures=True)


def pinned_for(runtime: str, backends: dict[str, dict]) -> dict[str, tuple[str, ...]] | None:
    """What a gateway on ``runtime`` is compiled with: its backends' names resolved (the local
    runtime), or None (Envoy resolves them; Kubernetes NetworkPolicies check where it goes)."""
    if runtime != "local" or not settings.GANTRY_EGRESS_PIN_DNS:
        return None
    return resolve(fqdn_names(backends))

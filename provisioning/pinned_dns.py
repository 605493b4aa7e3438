"""Backend host names resolved by the platform, for gateways whose traffic no network policy
checks (the local runtime).

On Kubernetes the gateway's NetworkPolicy refuses the denied ranges whatever a name resolves
to. On the local runtime nothing below Envoy does: a backend named ``rebind.example`` that
resolves to 127.0.0.1, 169.254.169.254 or a platform address would pass the API's check (a
name is not an address) and Envoy would connect there. So the platform resolves each name
itself when it compiles, checks every address against the egress policy, and gives Envoy the
addresses (a STATIC cluster), never the name: a DNS answer that changes after the check
(rebinding) reaches no Envoy.

Names are resolved again at every reconcile, and each answer is kept as a ``ResolvedName``
row until it expires (its TTL when the platform asks DNS servers itself,
``GANTRY_GATEWAY_DNS_RESOLVERS``; else the shortest ``dns.refreshRate`` of the backends that
name it). The periodic refresh (``refresh_expired``, beat every ``GANTRY_DNS_REFRESH_SECONDS``)
resolves expired names again and reconciles the gateways that use one whose addresses
changed: a gateway follows a DNS change within its TTL (docs/discovery.md#dns-backends).
"""

import ipaddress
import logging
import socket
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from gateways.egress import parse_resolver
from provisioning.ir.durations import to_ms

log = logging.getLogger(__name__)
MAX_ADDRESSES = 16  # per name: a round-robin answer, not a way to grow a cluster without bound
DEFAULT_REFRESH_SECONDS = 30  # a backend's dns.refreshRate when it has no dns field


def _name(hostname: str) -> str:
    return hostname.lower().rstrip(".")


def fqdn_names(backends: dict[str, dict]) -> set[str]:
    return {
        _name(endpoint["fqdn"]["hostname"])
        for spec in backends.values()
        for endpoint in spec.get("endpoints", [])
        if "fqdn" in endpoint
    }


def _ordered(addresses) -> tuple[str, ...]:
    found = {ipaddress.ip_address(str(address).split("%", 1)[0]) for address in addresses}
    # IPv4 first (as Envoy's V4_PREFERRED), then a stable order: no new revision per answer.
    ordered = sorted(found, key=lambda address: (address.version, address.packed))
    return tuple(str(address) for address in ordered[:MAX_ADDRESSES])


def _system_lookup(name: str) -> tuple[tuple[str, ...], int | None]:
    """The host's resolver (hosts file included); its answers carry no TTL."""
    try:
        answers = socket.getaddrinfo(name, None, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as error:
        log.info("backend host %s does not resolve: %s", name, error)
        return (), None
    return _ordered(answer[4][0] for answer in answers), None


def _server_lookup(name: str, servers: list[str]) -> tuple[tuple[str, ...], int | None]:
    """A and AAAA records from the operator's DNS servers, with the shortest TTL seen."""
    import dns.exception
    import dns.nameserver
    import dns.resolver

    resolver = dns.resolver.Resolver(configure=False)
    resolver.nameservers = [
        dns.nameserver.Do53Nameserver(*parse_resolver(server)) for server in servers
    ]
    resolver.lifetime = settings.GANTRY_DNS_TIMEOUT_SECONDS
    addresses: list[str] = []
    ttls: list[int] = []
    for rdtype in ("A", "AAAA"):
        try:
            answer = resolver.resolve(name + ".", rdtype, search=False, raise_on_no_answer=False)
        except (dns.exception.DNSException, UnicodeError) as error:
            log.info("backend host %s (%s): %s", name, rdtype, error)
            continue
        if answer.rrset is not None:
            ttls.append(answer.rrset.ttl)
            addresses += [record.address for record in answer.rrset]
    return _ordered(addresses), (min(ttls) if ttls else None)


def _lookup(name: str) -> tuple[tuple[str, ...], int | None]:
    servers = settings.GANTRY_GATEWAY_DNS_RESOLVERS
    return _server_lookup(name, servers) if servers else _system_lookup(name)


def resolve_with_ttl(names: set[str], timeout: float | None = None) -> dict[str, tuple]:
    """name → (its addresses, the answer's TTL or None); no addresses when it does not resolve
    within ``timeout`` seconds."""
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
                resolved[name] = future.result(timeout=timeout + 1)
            except FutureTimeout:
                log.info("backend host %s: no answer within %ss", name, timeout)
                resolved[name] = ((), None)
        return resolved
    finally:
        pool.shutdown(wait=False, cancel_futures=True)


def resolve(names: set[str], timeout: float | None = None) -> dict[str, tuple[str, ...]]:
    """name → its addresses (empty when it does not resolve within ``timeout`` seconds)."""
    return {name: found[0] for name, found in resolve_with_ttl(names, timeout).items()}


def keep_for(name: str, ttl: int | None, backends: list[dict]) -> int:
    """Seconds the answer for ``name`` is kept: for each backend naming it, the TTL (with
    ``dns.respectTtl``, the default, when the answer had one) else its ``dns.refreshRate``;
    the shortest of them, and never under ``GANTRY_DNS_MIN_TTL_SECONDS``."""
    candidates = []
    for spec in backends:
        if name not in fqdn_names({"": spec}):
            continue
        dns = spec.get("dns") or {}
        if ttl is not None and dns.get("respectTtl", True):
            candidates.append(ttl)
        else:
            refresh = dns.get("refreshRate")
            candidates.append(to_ms(refresh) // 1000 if refresh else DEFAULT_REFRESH_SECONDS)
    shortest = min(candidates, default=DEFAULT_REFRESH_SECONDS)
    return max(shortest, settings.GANTRY_DNS_MIN_TTL_SECONDS)


def record(answers: dict[str, tuple], backends: list[dict]) -> dict[str, tuple[str, ...]]:
    """Stores the answers (``resolve_with_ttl``) with their expiry; name → the addresses it
    had before (names seen for the first time are left out)."""
    from provisioning.models import ResolvedName

    if not answers:
        return {}
    before = dict(ResolvedName.objects.filter(name__in=answers).values_list("name", "addresses"))
    now = timezone.now()
    rows = [
        ResolvedName(
            name=name, addresses=list(addresses), resolved_at=now,
            expires_at=now + timedelta(seconds=keep_for(name, ttl, backends)),
        )
        for name, (addresses, ttl) in sorted(answers.items())
    ]  # fmt: skip
    ResolvedName.objects.bulk_create(
        rows, update_conflicts=True, unique_fields=["name"],
        update_fields=["addresses", "resolved_at", "expires_at"],
    )  # fmt: skip
    return {name: tuple(addresses) for name, addresses in before.items()}


def pinned_for(runtime: str, backends: dict[str, dict]) -> dict[str, tuple[str, ...]] | None:
    """What a gateway on ``runtime`` is compiled with: its backends' names resolved (the local
    runtime), or None (Envoy resolves them; Kubernetes NetworkPolicies check where it goes)."""
    if runtime != "local" or not settings.GANTRY_EGRESS_PIN_DNS:
        return None
    answers = resolve_with_ttl(fqdn_names(backends))
    record(answers, list(backends.values()))
    return {name: addresses for name, (addresses, _) in answers.items()}


def refresh_expired() -> list[int]:
    """Resolves again every expired name a local gateway's tenant's backends use; reconciles
    (after commit) the local gateways of the tenants whose backends name one whose addresses
    changed. The gateways' ids, in order."""
    from gateways.models import Backend, Gateway
    from provisioning.models import ResolvedName
    from provisioning.tasks import send_reconciles

    if not settings.GANTRY_EGRESS_PIN_DNS:
        return []
    rows = Gateway.objects.values_list("pk", "tenant_id", "spec__runtime")
    local = {pk: tenant_id for pk, tenant_id, runtime in rows if runtime in (None, "local")}
    tenants = set(local.values())
    by_tenant: dict[int, list[dict]] = {}
    for tenant_id, spec in Backend.objects.filter(tenant_id__in=tenants).values_list(
        "tenant_id", "spec"
    ):
        if fqdn_names({"": spec}):
            by_tenant.setdefault(tenant_id, []).append(spec)
    named = {name for specs in by_tenant.values() for name in fqdn_names(dict(enumerate(specs)))}
    fresh = set(
        ResolvedName.objects.filter(name__in=named, expires_at__gt=timezone.now()).values_list(
            "name", flat=True
        )
    )
    due = named - fresh
    if not due:
        return []
    answers = resolve_with_ttl(due)
    everyone = [spec for specs in by_tenant.values() for spec in specs]
    before = record(answers, everyone)
    changed = {
        name for name, (addresses, _) in answers.items()
        if name in before and tuple(before[name]) != tuple(addresses)
    }  # fmt: skip
    if not changed:
        return []
    affected = [
        tenant_id for tenant_id, specs in by_tenant.items()
        if fqdn_names(dict(enumerate(specs))) & changed
    ]  # fmt: skip
    gateway_ids = sorted(pk for pk, tenant_id in local.items() if tenant_id in affected)
    log.info("backend names changed (%s): reconciling %d gateways", ", ".join(sorted(changed)),
             len(gateway_ids))  # fmt: skip
    send_reconciles(gateway_ids)
    return gateway_ids

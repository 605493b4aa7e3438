"""Where gateways may send traffic: the operator's egress policy, as data.

A tenant names addresses in backends' endpoints (an extAuth service is one of its backends) and
in JWT providers' ``remoteJWKS`` URIs; its gateway's Envoy connects there. Without a policy a
tenant could point its gateway at the platform itself (the API and admin login, the xDS server,
PostgreSQL, Redis, other tenants' listeners) or at a cloud's metadata service.

``EgressPolicy.check(host, port)`` says why a gateway may not reach ``host:port`` (or None).
Checked, in order:

1. Always refused, whatever the settings: unspecified, link-local, multicast and reserved
   addresses, cloud metadata addresses and names, ``localhost`` and ``*.localhost``.
2. The platform's own ports (web, xDS, PostgreSQL, Redis, the Celery broker, the local
   runtime's listener range, and the operator's ``GANTRY_EGRESS_PLATFORM_PORTS``) on loopback
   and on the addresses the platform listens on.
3. ``allowed_cidrs``: exceptions that win over what follows.
4. ``platform_cidrs``, ``denied_cidrs``, and loopback unless ``allow_loopback``.
5. Host names: ``denied_names`` (exact, or ``*.suffix``) and the platform's service hosts.

An IPv6 address that spells an IPv4 one (IPv4-mapped, IPv4-compatible, NAT64, 6to4) is judged
as that IPv4 address; numeric host names in inet_aton's spellings (``127.1``, ``0x7f.1``,
``2130706433``) are refused. Pure: the settings come in as plain values (``from_values``);
``current_policy`` reads them from Django's settings.
"""

import ipaddress
import re
from dataclasses import dataclass
from functools import lru_cache
from urllib.parse import urlsplit

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

# Refused whatever the settings say (the first that matches names the reason).
ALWAYS_DENIED = (
    ("0.0.0.0/8", "an unspecified address (on Linux it reaches this host)"),
    ("::/128", "the unspecified address"),
    ("169.254.0.0/16", "link-local"),
    ("fe80::/10", "link-local"),
    ("100.100.100.200/32", "a cloud metadata address"),
    ("fd00:ec2::254/128", "a cloud metadata address"),
    ("224.0.0.0/4", "multicast"),
    ("ff00::/8", "multicast"),
    ("240.0.0.0/4", "reserved (or broadcast)"),
)
ALWAYS_DENIED_NETWORKS = tuple((ipaddress.ip_network(cidr), what) for cidr, what in ALWAYS_DENIED)
LOOPBACK = (ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128"))
METADATA_NAMES = (
    "metadata",
    "metadata.google.internal",
    "metadata.goog",
    "metadata.tencentyun.com",
    "instance-data",
    "instance-data.ec2.internal",
)
LOOPBACK_NAMES = ("localhost", "*.localhost")
NAT64 = (ipaddress.ip_network("64:ff9b::/96"), ipaddress.ip_network("64:ff9b:1::/48"))
COMPATIBLE = ipaddress.ip_network("::/96")
DEFAULT_PORTS = {"postgres": 5432, "postgresql": 5432, "redis": 6379, "rediss": 6379,
                 "amqp": 5672, "amqps": 5671, "pyamqp": 5672}  # fmt: skip
_NUMBER = re.compile(r"(0x[0-9a-f]*|[0-9]+)")


def parse_cidr(value: str) -> IPNetwork:
    try:
        return ipaddress.ip_network(value.strip(), strict=False)
    except ValueError:
        raise ValueError(f"{value!r} is not a CIDR such as 10.0.0.0/8 or fd00::/8") from None


def parse_name_pattern(value: str) -> str:
    name = value.strip().lower().rstrip(".")
    bare = name[2:] if name.startswith("*.") else name
    if not bare or not re.fullmatch(r"[a-z0-9]([-a-z0-9.]*[a-z0-9])?", bare):
        raise ValueError(f"{value!r} is not a host name such as internal.example or *.corp")
    return name


def parse_port_range(value: str) -> tuple[int, int]:
    """``8080`` or ``5555-5600`` as (low, high)."""
    low, _, high = value.strip().partition("-")
    try:
        bounds = (int(low), int(high or low))
    except ValueError:
        bounds = (0, 0)
    if not 1 <= bounds[0] <= bounds[1] <= 65535:
        raise ValueError(f"{value!r} is not a port or a range of ports such as 22 or 5555-5600")
    return bounds


def parse_resolver(value: str) -> tuple[str, int]:
    """A DNS server: ``10.0.0.10``, ``10.0.0.10:5353``, ``[2001:db8::53]:53`` → (address, port)."""
    text = value.strip()
    host, port = text, "53"
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port = rest.removeprefix(":") or "53"
    elif text.count(":") == 1:
        host, _, port = text.partition(":")
    try:
        address = ipaddress.ip_address(host)
        number = int(port)
    except ValueError:
        raise ValueError(f"{value!r} is not a DNS server address such as 10.0.0.10:53") from None
    if not 1 <= number <= 65535:
        raise ValueError(f"{value!r}: the port must be 1-65535")
    return str(address), number


def loose_ipv4(text: str) -> ipaddress.IPv4Address | None:
    """The address inet_aton reads in ``text`` (``127.1``, ``0x7f.0.0.1``, ``017700000001``,
    ``2130706433``), which some resolvers accept as a host name; None if it is not one."""
    parts = text.lower().split(".")
    if not 1 <= len(parts) <= 4 or not all(_NUMBER.fullmatch(part) for part in parts):
        return None
    try:
        numbers = [int(p, 16) if p.startswith("0x") else int(p, 8) if p.startswith("0") and
                   len(p) > 1 else int(p) for p in parts]  # fmt: skip
    except ValueError:  # "0x" alone, or 8 and 9 in an octal part
        return None
    *head, last = numbers
    if any(n > 255 for n in head) or last >= 256 ** (4 - len(head)):
        return None
    value = last
    for index, number in enumerate(head):
        value += number << (8 * (3 - index))
    return ipaddress.IPv4Address(value)


def embedded_ipv4(address: IPAddress) -> tuple[ipaddress.IPv4Address, str] | None:
    """The IPv4 address an IPv6 address stands for, and the spelling's name."""
    if address.version == 4:
        return None
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped, "IPv4-mapped"
    if address.sixtofour is not None:
        return address.sixtofour, "6to4"
    if any(address in net for net in NAT64):
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF), "NAT64"
    if address in COMPATIBLE and int(address) > 1:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF), "IPv4-compatible"
    return None


def _matches(name: str, pattern: str) -> bool:
    if pattern.startswith("*."):
        return name.endswith(pattern[1:]) and len(name) > len(pattern) - 1
    return name == pattern


def normal_name(text: str) -> tuple[str | None, str | None]:
    """(the host name as DNS sees it: lowercase, no trailing dot, IDNA-encoded), or (None,
    why it is not a host name)."""
    name = text.strip().lower()
    if name.endswith("."):
        name = name[:-1]
    try:
        name = name.encode("idna").decode("ascii")
    except UnicodeError:
        return None, f"{text} is not a valid host name"
    if not name or ".." in name:
        return None, f"{text} is not a valid host name"
    return name, None


@dataclass(frozen=True)
class EgressPolicy:
    """What gateways may not reach; see the module docstring for the order of the checks."""

    denied_cidrs: tuple[IPNetwork, ...] = ()
    allowed_cidrs: tuple[IPNetwork, ...] = ()
    platform_cidrs: tuple[IPNetwork, ...] = ()
    denied_names: tuple[str, ...] = ()
    allow_loopback: bool = False
    # (low, high, what): ports of the platform, refused on loopback and ``platform_hosts``
    platform_ports: tuple[tuple[int, int, str], ...] = ()
    platform_hosts: tuple[IPAddress, ...] = ()
    platform_names: tuple[tuple[str, str], ...] = ()  # (host name, what): refused on any port

    @classmethod
    def from_values(
        cls,
        *,
        denied_cidrs=(),
        allowed_cidrs=(),
        platform_cidrs=(),
        denied_hosts=(),
        allow_loopback: bool = False,
        ports: dict[str, int | tuple[int, int] | None] | None = None,
        service_urls: dict[str, str | None] | None = None,
        host_addresses=(),
    ) -> "EgressPolicy":
        """The policy from settings' plain values. ``ports``: what → port or (low, high);
        ``service_urls``: what → URL (PostgreSQL, Redis, the broker), whose hosts and ports
        are the platform's; ``host_addresses``: where the platform listens besides loopback.
        ValueError names a malformed value."""
        port_ranges, hosts, names = [], [], []
        for what, port in (ports or {}).items():
            if port:
                low, high = port if isinstance(port, tuple) else (port, port)
                port_ranges.append((low, high, what))
        for what, url in (service_urls or {}).items():
            host, port = _service_host(url)
            if port:
                port_ranges.append((port, port, what))
            if host:
                _platform_host(host, what, hosts, names)
        for text in host_addresses:
            if text:
                _platform_host(text, "where it listens", hosts, names)
        return cls(
            denied_cidrs=tuple(parse_cidr(v) for v in denied_cidrs),
            allowed_cidrs=tuple(parse_cidr(v) for v in allowed_cidrs),
            platform_cidrs=tuple(parse_cidr(v) for v in platform_cidrs),
            denied_names=tuple(parse_name_pattern(v) for v in denied_hosts),
            allow_loopback=allow_loopback,
            platform_ports=tuple(port_ranges),
            platform_hosts=tuple(dict.fromkeys(hosts)),
            platform_names=tuple(dict.fromkeys(names)),
        )

    def check(self, host: str, port: int | None = None) -> str | None:
        """Why a gateway may not reach ``host`` (an IP address or a host name) on ``port``
        (None: on any port, for the host alone), or None when it may."""
        text = host.strip()
        if text.startswith("[") and text.endswith("]"):
            text = text[1:-1]
        if "%" in text:
            return f"{host} carries a zone (such as %eth0), which gateways may not use"
        try:
            address = ipaddress.ip_address(text)
        except ValueError:
            return self._check_name(host, text, port)
        return self.check_ip(address, port, host.strip())

    def check_ip(self, address: IPAddress, port: int | None = None, shown: str = "") -> str | None:
        shown = shown or str(address)
        embedded = embedded_ipv4(address)
        if embedded is not None:
            inner, spelling = embedded
            reason = self.check_ip(inner, port)
            return reason and f"{shown} (the {spelling} form of {inner}): {reason}"
        for network, what in ALWAYS_DENIED_NETWORKS:
            if address in network:
                return f"{shown} is {what}, which gateways may not reach"
        on_host = address.is_loopback or address in self.platform_hosts
        for low, high, what in self.platform_ports if port and on_host else ():
            if low <= port <= high:
                return (f"port {port} of {shown} belongs to the platform ({what}), which "
                        "gateways may not reach")  # fmt: skip
        if any(address in network for network in self.allowed_cidrs):
            return None
        for network in self.platform_cidrs:
            if address in network:
                return f"{shown} is a platform address ({network}), which gateways may not reach"
        for network in self.denied_cidrs:
            if address in network:
                return (f"{shown} is in {network}, which the operator's egress policy denies to "
                        "gateways")  # fmt: skip
        if address.is_loopback and not self.allow_loopback:
            return f"{shown} is loopback, which gateways may not reach"
        return None

    def _check_name(self, host: str, text: str, port: int | None) -> str | None:
        numeric = loose_ipv4(text)
        if numeric is not None:
            reason = self.check_ip(numeric, port, f"{host} ({numeric})")
            return reason or f"{host} is an unusual spelling of {numeric}: write {numeric}"
        name, problem = normal_name(text)
        if problem:
            return problem
        if _NUMBER.fullmatch(name.rsplit(".", 1)[-1]):
            return f"{host} is neither an IP address nor a host name (its last label is a number)"
        for pattern in LOOPBACK_NAMES:
            if _matches(name, pattern):
                return f"{host} is a loopback name, which gateways may not reach"
        if name in METADATA_NAMES:
            return f"{host} is a cloud metadata name, which gateways may not reach"
        for platform_name, what in self.platform_names:
            if name == platform_name:
                return f"{host} is a host of the platform ({what}), which gateways may not reach"
        for pattern in self.denied_names:
            if _matches(name, pattern):
                return (f"{host} matches {pattern}, which the operator's egress policy denies "
                        "to gateways")  # fmt: skip
        return None

    def check_uri(self, uri: str) -> str | None:
        """``check`` for the host and port of an http(s) URI (its default port if none)."""
        parsed = urlsplit(uri)
        try:
            port = parsed.port or (443 if parsed.scheme == "https" else 80)
        except ValueError:
            return f"{uri} has no valid port"
        if parsed.username is not None or parsed.password is not None:
            return f"{uri} carries credentials (user@host), which gateways may not use"
        if not parsed.hostname:
            return f"{uri} names no host"
        return self.check(parsed.hostname, port)

    def denied_networks(self) -> tuple[IPNetwork, ...]:
        """Every range gateways may not reach on any port (for Kubernetes NetworkPolicies'
        ``except``): the safe defaults, the platform's ranges, the operator's denials, and
        loopback unless allowed."""
        found = [network for network, _ in ALWAYS_DENIED_NETWORKS]
        found += [*self.platform_cidrs, *self.denied_cidrs]
        if not self.allow_loopback:
            found += LOOPBACK
        return tuple(dict.fromkeys(found))


def _service_host(url: str | None) -> tuple[str | None, int | None]:
    """(host, port) of a service URL such as postgres://user@db:5432/gantry (None for the
    embedded broker and SQLite)."""
    if not url or "://" not in url:
        return None, None
    parsed = urlsplit(url)
    try:
        port = parsed.port
    except ValueError:
        port = None
    return parsed.hostname, port or DEFAULT_PORTS.get(parsed.scheme.split("+")[0])


def _platform_host(host: str, what: str, hosts: list, names: list) -> None:
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        name, _ = normal_name(host)
        if name and name != "localhost":
            names.append((name, what))
        return
    if not address.is_loopback and not address.is_unspecified:
        hosts.append(address)


def policy_from_settings(settings) -> EgressPolicy:
    """The policy Django's ``settings`` describe (the GANTRY_EGRESS_* variables, and the ports
    and addresses the platform uses)."""
    low, high = (int(part) for part in settings.GANTRY_LOCAL_PORT_RANGE.split("-"))
    database = settings.DATABASES["default"]
    db_url = None
    if database.get("HOST") and "postgresql" in database.get("ENGINE", ""):
        db_url = f"postgres://{database['HOST']}:{database.get('PORT') or 5432}/"
    return _cached_policy(
        tuple(settings.GANTRY_EGRESS_DENIED_CIDRS), tuple(settings.GANTRY_EGRESS_ALLOWED_CIDRS),
        tuple(settings.GANTRY_EGRESS_PLATFORM_CIDRS), tuple(settings.GANTRY_EGRESS_DENIED_HOSTS),
        settings.GANTRY_EGRESS_ALLOW_LOOPBACK,
        (("the web and API", settings.GANTRY_PORT), ("the xDS server", settings.GANTRY_XDS_PORT),
         ("the rate limit service", settings.GANTRY_RATELIMIT_PORT),
         ("the local runtime's gateway listeners", (low, high)),
         *((f"GANTRY_EGRESS_PLATFORM_PORTS {value}", parse_port_range(value))
           for value in settings.GANTRY_EGRESS_PLATFORM_PORTS)),
        (("PostgreSQL", db_url), ("Redis", settings.REDIS_URL),
         ("the Celery broker", settings.CELERY_BROKER_URL)),
        (settings.GANTRY_XDS_ADDRESS, settings.GANTRY_RATELIMIT_ADDRESS,
         settings.GANTRY_LOCAL_LISTEN_ADDRESS),
    )  # fmt: skip


@lru_cache(maxsize=16)
def _cached_policy(denied, allowed, platform, names, loopback, ports, urls, hosts) -> EgressPolicy:
    return EgressPolicy.from_values(
        denied_cidrs=denied, allowed_cidrs=allowed, platform_cidrs=platform, denied_hosts=names,
        allow_loopback=loopback, ports=dict(ports), service_urls=dict(urls),
        host_addresses=hosts,
    )  # fmt: skip


def current_policy() -> EgressPolicy:
    """The policy of the running settings (tests may override them per test)."""
    from django.conf import settings

    return policy_from_settings(settings)


def backend_refusals(
    spec: dict, policy: EgressPolicy, resolved: dict[str, tuple[str, ...]] | None = None
) -> list[tuple[str, str]]:
    """(JSON path, why) of each endpoint of a backend ``spec`` the policy refuses.
    ``resolved``: host name → the addresses it resolved to, each checked too (a name the map
    does not hold is judged by its name alone)."""
    found = []
    for index, endpoint in enumerate(spec.get("endpoints", [])):
        if "ip" in endpoint:
            path, host, port = "ip.address", endpoint["ip"]["address"], endpoint["ip"]["port"]
        else:
            target = endpoint.get("fqdn") or {}
            path, host, port = "fqdn.hostname", target.get("hostname", ""), target.get("port")
        reason = policy.check(host, port)
        if not reason and resolved and "fqdn" in endpoint:
            reason = _resolved_refusal(host, port, resolved, policy)
        if reason:
            found.append((f"spec.endpoints[{index}].{path}", reason))
    return found


def _resolved_refusal(host: str, port, resolved: dict, policy: EgressPolicy) -> str | None:
    for text in resolved.get(host.lower().rstrip("."), ()):
        reason = policy.check_ip(ipaddress.ip_address(text), port, f"{host} (resolving to {text})")
        if reason:
            return reason
    return None

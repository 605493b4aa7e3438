"""Host ports of the local runtime.

Each gateway listener port (80, 443, …) gets a host port from ``GANTRY_LOCAL_PORT_RANGE``,
kept for as long as the gateway has a listener on that port. Every replica of the gateway binds
the same host port (Envoy sets SO_REUSEPORT), so the kernel spreads connections among them as a
Service would. A port is handed out only when nothing on the host holds it: a bind test skips
ports other programs use.
"""

import socket

from django.conf import settings
from django.db import IntegrityError, transaction

from config.statements import Arg, Statement
from gateways.models import Gateway
from provisioning.models import LocalPort


class NoFreePort(Exception):
    pass


def port_range() -> range:
    low, _, high = settings.GANTRY_LOCAL_PORT_RANGE.partition("-")
    return range(int(low), int(high) + 1)


def _free_on_host(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # TIME_WAIT is no owner
        try:
            probe.bind((settings.GANTRY_LOCAL_LISTEN_ADDRESS, port))
        except OSError:
            return False
    return True


def _claim(gateway: Gateway, listener_port: int, taken: set[int]) -> int:
    for port in port_range():
        if port in taken or not _free_on_host(port):
            continue
        try:
            with transaction.atomic():
                LocalPort.objects.create(
                    gateway=gateway, listener_port=listener_port, host_port=port
                )
        except IntegrityError:  # another gateway claimed it meanwhile
            taken.add(port)
            continue
        taken.add(port)
        return port
    raise NoFreePort(
        f"no free port left in GANTRY_LOCAL_PORT_RANGE={settings.GANTRY_LOCAL_PORT_RANGE}"
    )


_PORTS = Statement(  # every reconcile of a local gateway asks (config/statements.py)
    lambda: LocalPort.objects.filter(gateway_id=Arg("gateway")).values_list(
        "listener_port", "host_port"
    )
)


def allocate(gateway: Gateway, listener_ports: set[int]) -> dict[int, int]:
    """Listener port → host port for the gateway, claiming new ones and releasing those whose
    listener port is gone. Called under the gateway's lock (by reconcile)."""
    mapping = dict(_PORTS.rows(gateway=gateway.pk))
    gone = mapping.keys() - listener_ports
    if gone:
        LocalPort.objects.filter(gateway=gateway, listener_port__in=gone).delete()
        mapping = {port: host for port, host in mapping.items() if port not in gone}
    missing = sorted(listener_ports - mapping.keys())
    if missing:
        taken = set(LocalPort.objects.values_list("host_port", flat=True))
        for listener_port in missing:
            mapping[listener_port] = _claim(gateway, listener_port, taken)
    return mapping


def release(gateway: Gateway) -> None:
    LocalPort.objects.filter(gateway=gateway).delete()

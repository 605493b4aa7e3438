"""The whole compile stage: desired state → IR → Envoy resources."""

import gc
from contextlib import contextmanager

from provisioning.ir.build import DesiredState, gateway_ir
from provisioning.translate import Resources, translate
from provisioning.translate.access_log import DEFAULT_PATH


@contextmanager
def gc_paused():
    """Compiling allocates hundreds of thousands of small objects that all stay alive until it
    ends; the cyclic collector would walk them again and again for nothing (a third of the
    time at 10,000 routes). Reference counting still frees garbage meanwhile."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def compile_gateway(
    state: DesiredState,
    *,
    address: str = "0.0.0.0",  # noqa: S104 (gateways listen on every interface by default)
    port_map: dict[int, int] | None = None,
    access_log_path: str = DEFAULT_PATH,
) -> Resources:
    with gc_paused():
        return translate(gateway_ir(state), address=address, port_map=port_map,
                         access_log_path=access_log_path)  # fmt: skip

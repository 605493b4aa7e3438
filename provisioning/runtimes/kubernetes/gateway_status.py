"""A RuntimeStatus into the gateway's status: the ``Ready`` condition (what the cluster says of
the Deployment and Service) and each listener's ``url``. Stored only when something changed
(``resourceVersion`` moves then). ``phase`` is not written here: for every runtime it says how
many replicas run the current revision (``provisioning.readiness``, from their xDS ACKs)."""

from django.db import transaction

from gateways.conditions import set_condition
from gateways.models import Gateway
from gateways.services.common import store_status
from provisioning.runtimes.kubernetes.status import RuntimeStatus


def merged(status: dict, runtime: RuntimeStatus, generation: int) -> dict:
    ready = runtime.conditions[0]
    conditions = set_condition(
        status.get("conditions", []), "Ready", ready["status"], ready["reason"],
        ready["message"], generation,
    )  # fmt: skip
    listeners = []
    for entry in status.get("listeners", []):
        entry = {k: v for k, v in entry.items() if k != "url"}
        if entry.get("name") in runtime.urls:
            entry["url"] = runtime.urls[entry["name"]]
        listeners.append(entry)
    return {**status, "conditions": conditions, "listeners": listeners}


@transaction.atomic
def store_runtime_status(gateway: Gateway, runtime: RuntimeStatus) -> bool:
    """Writes the runtime's view into the gateway's status (row locked); True if it changed."""
    row = Gateway.objects.select_for_update().get(pk=gateway.pk)
    changed = store_status(row, merged(row.status, runtime, row.generation))
    gateway.status, gateway.resource_version = row.status, row.resource_version
    return changed

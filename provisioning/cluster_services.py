"""Every write to the Kubernetes clusters operators register: one function per use case.

The API (``/api/v1/clusters/``), the operators' console (``/ops/clusters/``), the admin and
``manage.py clusters`` all call these. Each runs in one transaction, validates with the API's
field names (camelCase JSON paths), and leaves an audit event without the kubeconfig: a
kubeconfig is a secret, encrypted at rest and never shown back, not even in an error message
(a YAML error names the line and column, never the text there).
"""

import time
from dataclasses import dataclass

import yaml
from django.core.exceptions import ValidationError
from django.db import transaction

from config.errors import Conflict, FieldError, NotFound, ValidationFailed
from provisioning.models import KubernetesCluster
from tenants import audit
from tenants.audit import Actor
from tenants.models import Plan

# Model field → the API's name for it (and the JSON path of its errors).
API_NAMES = {
    "name": "name",
    "in_cluster": "inCluster",
    "kubeconfig": "kubeconfig",
    "context": "context",
    "exposure": "exposure",
    "envoy_image": "envoyImage",
    "xds_address": "xdsAddress",
    "xds_port": "xdsPort",
    "plans": "plans",
}
# How long a connection test waits for each answer, seconds (connect, read).
TEST_TIMEOUT = (3, 5)


def snapshot(cluster: KubernetesCluster, plans: list[str] | None = None) -> dict:
    """What the audit log keeps of a cluster: everything but the kubeconfig (only whether
    there is one)."""
    if plans is None:
        plans = sorted(plan.name for plan in cluster.plans.all())
    return {
        "name": cluster.name,
        "inCluster": cluster.in_cluster,
        # (not the word "kubeconfig": the audit log redacts fields so named)
        "access": "in-cluster"
        if cluster.in_cluster
        else "kubeconfig"
        if cluster.kubeconfig
        else "",
        "context": cluster.context,
        "exposure": cluster.exposure,
        "envoyImage": cluster.envoy_image,
        "xdsAddress": cluster.xds_address,
        "xdsPort": cluster.xds_port,
        "plans": plans,
    }


def get_cluster(name: str) -> KubernetesCluster:
    cluster = KubernetesCluster.objects.filter(name=name).first()
    if cluster is None:
        raise NotFound(f"no cluster named {name!r}")
    return cluster


def _plans_named(names: list[str]) -> list[Plan]:
    found = {plan.name: plan for plan in Plan.objects.filter(name__in=names)}
    missing = [name for name in names if name not in found]
    if missing:
        known = ", ".join(Plan.objects.values_list("name", flat=True)) or "none"
        raise ValidationFailed(
            [
                FieldError(
                    f"plans[{names.index(name)}]",
                    f"no plan named {name!r} (plans: {known})",
                    "not_found",
                )
                for name in missing
            ]  # fmt: skip
        )
    return [found[name] for name in dict.fromkeys(names)]


def kubeconfig_problem(cluster: KubernetesCluster) -> str | None:
    """Why the kubeconfig (or the in-cluster account) cannot be used, without its text."""
    from provisioning.runtimes.kubernetes.driver import UnusableCluster, configuration_for

    if cluster.kubeconfig:
        try:
            loaded = yaml.safe_load(cluster.kubeconfig)
        except yaml.YAMLError as error:
            mark = getattr(error, "problem_mark", None)
            where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
            problem = getattr(error, "problem", None) or "not valid YAML"
            return f"not valid YAML: {problem}{where}"
        if not isinstance(loaded, dict):
            return "not a kubeconfig: expected a YAML mapping (apiVersion, clusters, users, …)"
        try:
            configuration_for(cluster)
        except UnusableCluster as error:
            return str(error).removeprefix(f"cluster {cluster.name}: ")
        except Exception as error:  # noqa: BLE001 — the client's loader raises many kinds
            kind = f"{type(error).__module__}.{type(error).__qualname__}".removeprefix("builtins.")
            return f"the Kubernetes client cannot load it ({kind})"
    return None


def _validate(cluster: KubernetesCluster) -> None:
    """The model's field checks and the kubeconfig rules, as one ValidationFailed."""
    errors: list[FieldError] = []
    try:
        cluster.full_clean(exclude=["plans"], validate_unique=False, validate_constraints=False)
    except ValidationError as error:
        for field, messages in error.message_dict.items():
            if field == "kubeconfig":
                continue  # checked below, without echoing anything of it
            path = API_NAMES.get(field, "")
            errors.extend(FieldError(path, message) for message in messages)
    if cluster.in_cluster and cluster.kubeconfig:
        errors.append(FieldError("kubeconfig", "leave empty when inCluster is set"))
    elif not cluster.in_cluster and not cluster.kubeconfig:
        errors.append(FieldError("kubeconfig", "required unless inCluster is set", "required"))
    elif not any(e.path == "name" for e in errors):
        problem = kubeconfig_problem(cluster)
        if problem:
            errors.append(FieldError("kubeconfig", f"cannot be used: {problem}"))
    if errors:
        raise ValidationFailed(errors)


def _apply(cluster: KubernetesCluster, fields: dict) -> None:
    for field, value in fields.items():
        if field != "plans":
            setattr(cluster, field, value)


def _gateway_ids(cluster: KubernetesCluster) -> list[int]:
    return list(cluster.placements.values_list("gateway_id", flat=True))


@transaction.atomic
def register_cluster(actor: Actor, fields: dict) -> KubernetesCluster:
    """``fields``: model field names (``name``, ``in_cluster``, ``kubeconfig``, ``context``,
    ``exposure``, ``envoy_image``, ``xds_address``, ``xds_port``) and ``plans`` (plan
    names)."""
    unknown = sorted(set(fields) - set(API_NAMES))
    if unknown:
        raise ValueError(f"not cluster fields: {unknown}")
    plans = _plans_named(list(fields.get("plans", [])))
    cluster = KubernetesCluster()
    _apply(cluster, fields)
    if cluster.name and KubernetesCluster.objects.filter(name=cluster.name).exists():
        raise Conflict(f"a cluster named {cluster.name!r} already exists")
    _validate(cluster)
    cluster.save()
    cluster.plans.set(plans)
    audit.record(actor, "create", "kubernetes-cluster", cluster.name, tenant=None,
                 after=snapshot(cluster, sorted(p.name for p in plans)))  # fmt: skip
    return cluster


@transaction.atomic
def update_cluster(actor: Actor, cluster: KubernetesCluster, changes: dict) -> KubernetesCluster:
    """``changes``: the fields to change (as for ``register_cluster``, the name excepted). An
    empty ``kubeconfig`` keeps the stored one unless ``in_cluster`` is being set. The gateways
    placed on the cluster are reconciled (a plan taken off moves them elsewhere)."""
    if "name" in changes and changes["name"] != cluster.name:
        raise ValidationFailed.one("name", "a cluster's name cannot be changed")
    changes = {field: value for field, value in changes.items() if field != "name"}
    cluster = KubernetesCluster.objects.select_for_update().get(pk=cluster.pk)
    before = snapshot(cluster)
    if changes.get("kubeconfig") == "" and not changes.get("in_cluster", cluster.in_cluster):
        del changes["kubeconfig"]  # empty: keep the stored one
    if changes.get("in_cluster") and "kubeconfig" not in changes:
        changes["kubeconfig"] = ""  # in-cluster credentials replace the kubeconfig
    plans = _plans_named(list(changes["plans"])) if "plans" in changes else None
    _apply(cluster, changes)
    _validate(cluster)
    cluster.save()
    if plans is not None:
        cluster.plans.set(plans)
    after = snapshot(cluster)
    if after != before or "kubeconfig" in changes:
        audit.record(actor, "update", "kubernetes-cluster", cluster.name, tenant=None,
                     before=before, after=after)  # fmt: skip
        from provisioning.tasks import enqueue_reconcile

        enqueue_reconcile(*_gateway_ids(cluster))
    return cluster


@transaction.atomic
def delete_cluster(actor: Actor, cluster: KubernetesCluster) -> None:
    """Refused while gateways are placed on the cluster (it names them)."""
    cluster = KubernetesCluster.objects.select_for_update().get(pk=cluster.pk)
    placed = list(
        cluster.placements.select_related("gateway__tenant").order_by(
            "gateway__tenant__slug", "gateway__name"
        )
    )
    if placed:
        shown = ", ".join(f"{p.gateway.tenant.slug}/{p.gateway.name}" for p in placed[:10])
        more = f" and {len(placed) - 10} more" if len(placed) > 10 else ""
        raise Conflict(
            f"cluster {cluster.name!r} runs {len(placed)} gateway(s): {shown}{more}; move or "
            "delete them first (take the cluster's plans off it to move them)"
        )
    audit.record(actor, "delete", "kubernetes-cluster", cluster.name, tenant=None,
                 before=snapshot(cluster))  # fmt: skip
    cluster.delete()


@dataclass(frozen=True)
class ConnectionResult:
    ok: bool
    message: str
    latency_ms: float | None  # the whole test's time, when the API server answered
    server_version: str = ""


def _describe_failure(error: Exception) -> str:
    from kubernetes.client.exceptions import ApiException

    if isinstance(error, ApiException):
        reason = error.reason or ""
        return f"the API server refused the request: {error.status} {reason}".strip()
    text = str(getattr(error, "reason", None) or error)
    # urllib3 puts the connection object's repr in front: keep the cause.
    if ">: " in text:
        text = text.split(">: ", 1)[1]
    return f"could not reach the API server: {text.rstrip(')')}"


def _get(api_client, path: str, timeout):
    return api_client.call_api(
        path, "GET", auth_settings=["BearerToken"], response_type="object",
        _return_http_data_only=True, _request_timeout=timeout,
    )  # fmt: skip


def check_connection(cluster: KubernetesCluster, timeout=TEST_TIMEOUT) -> ConnectionResult:
    """Calls the cluster's API server with its stored credentials: ``GET /version`` (is it
    there) and ``GET /api`` (are the credentials accepted: discovery needs an authenticated
    user). No retry; the message never holds the credentials."""
    from kubernetes import client as k8s

    from provisioning.runtimes.kubernetes.driver import UnusableCluster, configuration_for

    try:
        configuration = configuration_for(cluster)
    except UnusableCluster as error:
        return ConnectionResult(False, f"credentials cannot be used: {error}", None)
    configuration.retries = False
    started = time.monotonic()
    try:
        with k8s.ApiClient(configuration) as api_client:
            version, _ = _get(api_client, "/version", timeout), _get(api_client, "/api", timeout)
    except Exception as error:  # noqa: BLE001 — every failure is the test's answer
        return ConnectionResult(False, _describe_failure(error), None)
    latency = round((time.monotonic() - started) * 1000, 1)
    server = str((version or {}).get("gitVersion", "")) if isinstance(version, dict) else ""
    return ConnectionResult(True, f"connected: Kubernetes {server}".strip(), latency, server)


def test_connection(actor: Actor, cluster: KubernetesCluster) -> ConnectionResult:
    """``check_connection``, audited (who tested which cluster, and how it went)."""
    result = check_connection(cluster)
    audit.record(actor, "test", "kubernetes-cluster", cluster.name, tenant=None,
                 after={"ok": result.ok, "message": result.message})  # fmt: skip
    return result


test_connection.__test__ = False  # not a pytest test, whatever its name

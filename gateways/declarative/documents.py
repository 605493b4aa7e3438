"""Each YAML document ``{apiVersion, kind, metadata, spec}`` ↔ a Gantry object (pure functions).

A registry of kinds (``KINDS``) says which API version each kind has, which Gantry resource
it maps to and how its spec converts both ways. A kind that is known but not handled yet has
an entry in ``NOT_YET`` with the reason, so adding it later is one entry here.
"""

from dataclasses import dataclass, field

import yaml

from config.errors import FieldError
from config.validators import validate_dns_label

GATEWAY_API = "gateway.networking.k8s.io/v1"
GATEWAY_API_ALPHA = "gateway.networking.k8s.io/v1alpha2"  # TCPRoute, TLSRoute
ENVOY_GATEWAY = "gateway.envoyproxy.io/v1alpha1"
GANTRY = "gantry.io/v1alpha1"  # Gantry's own kinds (DubboRoute)
GATEWAY_CLASS = "gantry"
# Names the gateway of a policy that targets only routes (a route name alone may be ambiguous).
GATEWAY_LABEL = "gantry.io/gateway"
MAX_DOCUMENTS = 1000


@dataclass
class Item:
    """One document as a Gantry object: ``resource`` is gateway, backend, route or policy."""

    index: int
    kind: str
    resource: str
    name: str
    spec: dict
    gateway: str = ""  # routes and policies: the gateway they belong to
    errors: list[FieldError] = field(default_factory=list)

    @property
    def key(self) -> tuple:
        return (self.resource, self.gateway, self.name)

    def label(self) -> str:
        return f"{self.kind} {self.gateway + '/' if self.gateway else ''}{self.name}"


class DocumentError(Exception):
    def __init__(self, path: str, message: str):
        super().__init__(message)
        self.path, self.message = path, message


# --- the kinds ------------------------------------------------------------------------------


def _gateway_in(spec: dict) -> tuple[str, dict]:
    spec = dict(spec)
    gateway_class = spec.pop("gatewayClassName", GATEWAY_CLASS)
    if gateway_class != GATEWAY_CLASS:
        raise DocumentError("spec.gatewayClassName", f"must be {GATEWAY_CLASS!r} (or left out)")
    return "", spec


def _gateway_out(spec: dict, gateway: str) -> dict:
    return {"gatewayClassName": GATEWAY_CLASS, **spec}


def _route_in(spec: dict) -> tuple[str, dict]:
    spec = dict(spec)
    refs = spec.pop("parentRefs", None)
    if not isinstance(refs, list) or not refs:
        raise DocumentError("spec.parentRefs", "must name the gateway: [{name: <gateway>}]")
    gateways, sections, whole = [], [], False
    for position, ref in enumerate(refs):
        path = f"spec.parentRefs[{position}]"
        if not isinstance(ref, dict):
            raise DocumentError(path, "must be an object")
        unknown = set(ref) - {"group", "kind", "name", "sectionName"}
        if unknown:
            raise DocumentError(f"{path}.{sorted(unknown)[0]}", "is not supported by Gantry")
        if ref.get("kind", "Gateway") != "Gateway":
            raise DocumentError(f"{path}.kind", "must be Gateway")
        if ref.get("group", "gateway.networking.k8s.io") != "gateway.networking.k8s.io":
            raise DocumentError(f"{path}.group", "must be gateway.networking.k8s.io")
        if not isinstance(ref.get("name"), str):
            raise DocumentError(f"{path}.name", "is required: the gateway's name")
        gateways.append(ref["name"])
        if "sectionName" in ref:
            sections.append({"sectionName": ref["sectionName"]})
        else:
            whole = True
    if len(set(gateways)) > 1:
        raise DocumentError(
            "spec.parentRefs",
            "names several gateways; a Gantry route belongs to one gateway: write one HTTPRoute "
            "per gateway",
        )
    if sections and not whole:
        spec["parentRefs"] = sections
    return gateways[0], spec


def _route_out(spec: dict, gateway: str) -> dict:
    spec = dict(spec)
    sections = spec.pop("parentRefs", None) or [{}]
    refs = [{"name": gateway, **section} for section in sections]
    return {"parentRefs": refs, **spec}


def _policy_in(spec: dict) -> tuple[str, dict]:
    # The gateway is resolved later (it may come from the targets, a label or the routes).
    return "", dict(spec)


def _policy_out(spec: dict, gateway: str) -> dict:
    return dict(spec)


def _backend_in(spec: dict) -> tuple[str, dict]:
    return "", dict(spec)


@dataclass(frozen=True)
class Kind:
    api_version: str
    resource: str
    to_gantry: object  # (document spec) -> (gateway name or "", Gantry spec)
    to_document: object  # (Gantry spec, gateway name) -> document spec
    order: int  # writes go in ascending order, prune deletes in descending order


KINDS: dict[str, Kind] = {
    "Backend": Kind(ENVOY_GATEWAY, "backend", _backend_in, _policy_out, 0),
    "Gateway": Kind(GATEWAY_API, "gateway", _gateway_in, _gateway_out, 1),
    "HTTPRoute": Kind(GATEWAY_API, "route", _route_in, _route_out, 2),
    "GRPCRoute": Kind(GATEWAY_API, "route", _route_in, _route_out, 2),
    "TCPRoute": Kind(GATEWAY_API_ALPHA, "route", _route_in, _route_out, 2),
    "TLSRoute": Kind(GATEWAY_API_ALPHA, "route", _route_in, _route_out, 2),
    "DubboRoute": Kind(GANTRY, "route", _route_in, _route_out, 2),
    "SecurityPolicy": Kind(ENVOY_GATEWAY, "policy", _policy_in, _policy_out, 3),
    "BackendTrafficPolicy": Kind(ENVOY_GATEWAY, "policy", _policy_in, _policy_out, 3),
    "ClientTrafficPolicy": Kind(ENVOY_GATEWAY, "policy", _policy_in, _policy_out, 3),
}
POLICY_KINDS = ("SecurityPolicy", "BackendTrafficPolicy", "ClientTrafficPolicy")

NOT_YET = {
    "Secret": "kind Secret is not supported yet: upload certificates and their keys with the "
    "certificates API (keys are never part of declarative files)",
    "UDPRoute": "kind UDPRoute is not supported yet",
    "EnvoyProxy": "kind EnvoyProxy is not supported yet",
    "EnvoyExtensionPolicy": "kind EnvoyExtensionPolicy is not supported yet",
}


# --- reading ----------------------------------------------------------------------------------


class _Loader(yaml.SafeLoader):
    """YAML limited to JSON values: no aliases (no "billion laughs"), no timestamps."""

    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise yaml.MarkedYAMLError(
                "while composing", None, "aliases (*name) are not accepted", event.start_mark
            )
        return super().compose_node(parent, index)


_Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.copy().items()
}


def load_yaml(text: str) -> list:
    """The documents of a multi-document YAML text (empty documents skipped).

    DocumentError at ``(body)`` for text that is not YAML; the message gives the line and
    column, never the text there."""
    try:
        documents = [doc for doc in yaml.load_all(text, Loader=_Loader) if doc is not None]  # noqa: S506
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise DocumentError(
            "", f"not valid YAML{where}: {error.problem or error.context}"
        ) from None
    except yaml.YAMLError:
        raise DocumentError("", "not valid YAML") from None
    return documents


def parse(documents, tenant_slug: str) -> list[Item]:
    """Each document as an Item; an Item with ``errors`` could not be mapped."""
    if not isinstance(documents, list):
        raise DocumentError("", "must be a list of documents")
    if len(documents) > MAX_DOCUMENTS:
        raise DocumentError("", f"has {len(documents)} documents; at most {MAX_DOCUMENTS}")
    return [_parse_one(index, document, tenant_slug) for index, document in enumerate(documents)]


def _parse_one(index: int, document, tenant_slug: str) -> Item:
    item = Item(index, "", "", "", {})
    try:
        _fill(item, document, tenant_slug)
    except DocumentError as error:
        path = f"documents[{index}]" + (f".{error.path}" if error.path else "")
        item.errors.append(FieldError(path, _prefixed(item, error.message)))
    return item


def _prefixed(item: Item, message: str) -> str:
    if item.kind and item.name:
        return f"{item.kind} {item.name!r}: {message}"
    return message


def _fill(item: Item, document, tenant_slug: str) -> None:
    if not isinstance(document, dict):
        raise DocumentError("", "must be an object with apiVersion, kind, metadata and spec")
    unknown = set(document) - {"apiVersion", "kind", "metadata", "spec", "status"}
    if unknown:
        raise DocumentError(sorted(unknown)[0], "is not a field of a document")
    kind_name = document.get("kind")
    if not isinstance(kind_name, str) or not kind_name:
        raise DocumentError("kind", "is required")
    item.kind = kind_name
    if kind_name in NOT_YET:
        raise DocumentError("kind", NOT_YET[kind_name])
    kind = KINDS.get(kind_name)
    if kind is None:
        raise DocumentError(
            "kind", f"{kind_name!r} is not a kind Gantry knows ({', '.join(KINDS)})"
        )
    if document.get("apiVersion") != kind.api_version:
        raise DocumentError("apiVersion", f"must be {kind.api_version} for kind {kind_name}")
    metadata = document.get("metadata")
    if not isinstance(metadata, dict):
        raise DocumentError("metadata", "must be an object with a name")
    _check_metadata(item, metadata, tenant_slug)
    spec = document.get("spec", {})
    if not isinstance(spec, dict):
        raise DocumentError("spec", "must be an object")
    item.resource = kind.resource
    item.gateway, item.spec = kind.to_gantry(spec)
    if kind.resource == "policy":
        item.gateway = (metadata.get("labels") or {}).get(GATEWAY_LABEL, "")


def _check_metadata(item: Item, metadata: dict, tenant_slug: str) -> None:
    allowed = {"name", "namespace", "labels", "annotations"}
    unknown = set(metadata) - allowed - {"uid", "resourceVersion", "generation",
                                         "creationTimestamp"}  # fmt: skip
    if unknown:
        raise DocumentError(f"metadata.{sorted(unknown)[0]}", "is not supported by Gantry")
    name = metadata.get("name")
    try:
        validate_dns_label(name if isinstance(name, str) else "")
    except Exception:
        raise DocumentError("metadata.name", "must be a DNS label (≤ 63 lowercase letters, "
                            "digits and '-')") from None  # fmt: skip
    item.name = name
    namespace = metadata.get("namespace")
    if namespace is not None and namespace != tenant_slug:
        raise DocumentError(
            "metadata.namespace", f"must be the tenant ({tenant_slug!r}) or left out"
        )
    labels = metadata.get("labels", {})
    if not isinstance(labels, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in labels.items()
    ):
        raise DocumentError("metadata.labels", "must map strings to strings")
    gateway = labels.get(GATEWAY_LABEL)
    if gateway is not None and item.kind not in POLICY_KINDS:
        raise DocumentError(f"metadata.labels.{GATEWAY_LABEL}", "is only for policies")


# --- writing ----------------------------------------------------------------------------------


def sorted_keys(value):
    """Objects with their keys in order (PostgreSQL's jsonb keeps its own order)."""
    if isinstance(value, dict):
        return {key: sorted_keys(value[key]) for key in sorted(value)}
    if isinstance(value, list):
        return [sorted_keys(item) for item in value]
    return value


def document(kind_name: str, name: str, spec: dict, gateway: str = "") -> dict:
    kind = KINDS[kind_name]
    metadata: dict = {"name": name}
    out_spec = kind.to_document(sorted_keys(spec), gateway)
    if kind_name in POLICY_KINDS and not any(
        ref.get("kind") == "Gateway" for ref in spec.get("targetRefs", [])
    ):
        metadata["labels"] = {GATEWAY_LABEL: gateway}
    return {"apiVersion": kind.api_version, "kind": kind_name, "metadata": metadata,
            "spec": out_spec}  # fmt: skip


def dump(documents: list[dict]) -> str:
    return "".join(
        "---\n" + yaml.safe_dump(doc, sort_keys=False, default_flow_style=False, width=100)
        for doc in documents
    )

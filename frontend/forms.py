"""Console forms. They collect input and turn it into what a service takes; they validate
nothing themselves (every field is a plain text field, even behind a select or a number
input): the services, and for names the API's own body serializer, decide, and
``form_errors.apply_service_error`` shows their verdict next to the field it names."""

import copy

from django import forms

from frontend import structured_input
from gateways.serializers import GatewayCreateSerializer
from gateways.sizes import SIZES
from gateways.validation import RUNTIMES
from gateways.validation.backends import APP_PROTOCOLS
from gateways.validation.common import failed, is_ip_address
from tenants.serializers import MemberSerializer

ROUTE_PATH_TYPES = ["PathPrefix", "Exact", "RegularExpression"]


def checked_name(name: str) -> str:
    """``name`` if the API would accept it for a new object; else ValidationFailed at
    ``name`` with the API's message (the API checks names with this serializer)."""
    body = GatewayCreateSerializer(data={"name": name})
    if not body.is_valid():
        raise failed({"name": body.errors["name"]}, prefix="")
    return body.validated_data["name"]


def _text(label: str, help_text: str = "", widget=None, **attrs) -> forms.CharField:
    widget = widget or forms.TextInput()
    widget.attrs.update(attrs)
    return forms.CharField(
        label=label, required=False, strip=False, help_text=help_text, widget=widget
    )


def _choice(label: str, choices: list[str], help_text: str = "") -> forms.CharField:
    return _text(label, help_text, forms.Select(choices=[(c, c) for c in choices]))


def _code(label: str, help_text: str, rows: int = 8) -> forms.CharField:
    widget = forms.Textarea(attrs={"rows": rows, "spellcheck": "false", "class": "code"})
    return _text(label, help_text, widget)


class GatewayForm(forms.Form):
    """A new gateway: name and the common parts of its spec."""

    FIELDS = {
        "name": "name",
        "size": "spec.size",
        "replicas": "spec.replicas",
        "runtime": "spec.runtime",
        "listeners": "spec.listeners",
    }
    name = _text("Name", "lowercase letters, digits and '-', e.g. edge", autocomplete="off")
    size = _choice("Size", list(SIZES), "Envoy worker threads and memory per replica")
    replicas = _text("Replicas", "", forms.NumberInput(), min="1", inputmode="numeric")
    runtime = _choice("Runtime", RUNTIMES)
    listeners = _code(
        "Listeners (YAML or JSON list)",
        "each with name, protocol (HTTP, HTTPS or Dubbo), port, optional hostname and, for HTTPS, "
        "tls.certificateRefs",
        rows=6,
    )

    def name_and_spec(self) -> tuple[str, dict]:
        """(name, spec) for ``create_gateway``; ValidationFailed if the listeners do not parse
        or the name would be refused."""
        data = self.cleaned_data
        name = checked_name(data["name"])
        spec = {key: data[key] for key in ("size", "replicas", "runtime") if data[key] != ""}
        listeners = structured_input.parse(data["listeners"], "spec.listeners", expect=list)
        if listeners is not None:
            spec["listeners"] = listeners
        return name, spec


class ScaleForm(forms.Form):
    FIELDS = {"replicas": "spec.replicas"}
    replicas = _text("Replicas", "", forms.NumberInput(), min="1", inputmode="numeric")
    resource_version = forms.CharField(required=False, widget=forms.HiddenInput())


class RouteForm(forms.Form):
    """A route, edited either through its common fields (the first rule's first path match
    and first backend, the hostnames) or as the whole spec in YAML or JSON: the button
    pressed (``mode``) says which. The common fields change only what they show."""

    COMMON_FIELDS = {
        "name": "name",
        "hostnames": "spec.hostnames",
        "path_type": "spec.rules[0].matches[0].path.type",
        "path_value": "spec.rules[0].matches[0].path.value",
        "backend": "spec.rules[0].backendRefs[0].name",
    }
    SPEC_FIELDS = {"name": "name", "spec": "spec"}

    name = _text("Name", "lowercase letters, digits and '-', e.g. web", autocomplete="off")
    hostnames = _text(
        "Hostnames", "one per line or comma-separated; empty: every hostname of the listeners",
        forms.Textarea(attrs={"rows": 2}),
    )  # fmt: skip
    path_type = _choice("Path match", ROUTE_PATH_TYPES, "of the first rule's first match")
    path_value = _text("Path", "e.g. / or /api", autocomplete="off")
    backend = _text("Backend", "the first rule's first backend, by name", autocomplete="off")
    spec = _code(
        "Whole spec (YAML or JSON)",
        "a Gateway API HTTPRoute spec: parentRefs, hostnames, rules (matches, filters, "
        "backendRefs, timeouts)",
        rows=18,
    )
    resource_version = forms.CharField(required=False, widget=forms.HiddenInput())

    @staticmethod
    def initial_for(spec: dict) -> dict:
        rule = (spec.get("rules") or [{}])[0]
        path = ((rule.get("matches") or [{}])[0]).get("path", {})
        backends = rule.get("backendRefs") or [{}]
        return {
            "hostnames": "\n".join(spec.get("hostnames", [])),
            "path_type": path.get("type", "PathPrefix"),
            "path_value": path.get("value", "/"),
            "backend": backends[0].get("name", ""),
            "spec": structured_input.dump(spec) if spec else "",
        }

    def spec_from_fields(self, current: dict) -> dict:
        """``current`` with the common fields written into it."""
        data = self.cleaned_data
        spec = copy.deepcopy(current)
        hostnames = _lines(data["hostnames"])
        if hostnames:
            spec["hostnames"] = hostnames
        else:
            spec.pop("hostnames", None)
        rules = spec.setdefault("rules", [{}]) or [{}]
        spec["rules"] = rules
        rule = rules[0]
        matches = rule.setdefault("matches", [{}]) or [{}]
        rule["matches"] = matches
        matches[0]["path"] = {"type": data["path_type"], "value": data["path_value"]}
        refs = rule.get("backendRefs") or []
        if data["backend"].strip():
            first = dict(refs[0]) if refs else {}
            first["name"] = data["backend"].strip()
            rule["backendRefs"] = [first, *refs[1:]]
        elif refs:
            rule["backendRefs"] = refs[1:]
        return spec

    def spec_from_text(self) -> dict:
        return structured_input.parse(self.cleaned_data["spec"], "spec", empty={})

    def for_kind(self, kind: str) -> "RouteForm":
        """The form for a route of ``kind``: an HTTPRoute has its common fields, the other
        kinds are written as their whole spec."""
        if kind != "HTTPRoute":
            for name in ("hostnames", "path_type", "path_value", "backend"):
                del self.fields[name]
            self.fields["spec"].help_text = SPEC_HELP.get(kind, f"a Gateway API {kind} spec")
        return self


SPEC_HELP = {
    "GRPCRoute": "a Gateway API GRPCRoute spec: parentRefs, hostnames, rules (matches: method "
    "{service, method, type Exact or RegularExpression} and headers; filters; backendRefs to "
    "backends with appProtocol gRPC)",
    "TCPRoute": "a Gateway API TCPRoute spec: parentRefs (a TCP listener), one rule of "
    "backendRefs with weights",
    "TLSRoute": "a Gateway API TLSRoute spec: parentRefs (a TLS passthrough listener), "
    "hostnames (SNI names), one rule of backendRefs with weights",
    "DubboRoute": "a Gantry DubboRoute spec: parentRefs (a Dubbo listener), rules (matches: "
    "service, method, group, version, attachments; backendRefs with weights)",
}


def _lines(text: str) -> list[str]:
    """Items written one per line or separated by commas."""
    return [item.strip() for item in text.replace(",", "\n").splitlines() if item.strip()]


def _endpoint(text: str) -> dict:
    """``10.0.0.1:8080``, ``[2001:db8::1]:8080`` or ``api.internal:443`` as an endpoint; the
    service judges the address and the port (a missing port is its "required")."""
    host, _, port = text.rpartition(":") if not text.endswith("]") else (text, "", "")
    if not host:
        host, port = text, ""
    host = host.removeprefix("[").removesuffix("]")
    kind, field = ("ip", "address") if is_ip_address(host) else ("fqdn", "hostname")
    return {kind: {field: host, **({"port": port} if port else {})}}


class BackendForm(forms.Form):
    """A backend, through its fields (endpoints, protocol, TLS: the whole spec) or as YAML."""

    COMMON_FIELDS = {
        "name": "name",
        "endpoints": "spec.endpoints",
        "app_protocol": "spec.appProtocol",
        "sni": "spec.tls.sni",
        "ca_refs": "spec.tls.caCertificateRefs",
        "tls": "spec.tls",
    }
    SPEC_FIELDS = {"name": "name", "spec": "spec"}
    COMMON = ["endpoints", "app_protocol", "tls", "sni", "ca_refs"]

    name = _text("Name", "lowercase letters, digits and '-', e.g. api", autocomplete="off")
    endpoints = _text(
        "Endpoints", "one per line: address:port ([v6 address]:port) or hostname:port, all of "
        "one kind", forms.Textarea(attrs={"rows": 3, "class": "code", "spellcheck": "false"}),
    )  # fmt: skip
    app_protocol = _choice("Protocol", APP_PROTOCOLS)
    tls = _text("TLS to the backend", "", forms.Select(choices=[("", "no"), ("on", "yes")]))
    sni = _text("TLS server name (SNI)", "optional; sent to the backend", autocomplete="off")
    ca_refs = _text(
        "CA certificates", "optional; certificate names whose chains verify the backend, "
        "comma-separated; none: the system's public CAs", autocomplete="off",
    )  # fmt: skip
    spec = _code("Whole spec (YAML or JSON)", "endpoints (or kubernetesService: cluster, "
                 "namespace, name, port), appProtocol, tls (sni, caCertificateRefs)",
                 rows=12)  # fmt: skip
    resource_version = forms.CharField(required=False, widget=forms.HiddenInput())

    @staticmethod
    def initial_for(spec: dict) -> dict:
        endpoints = []
        for endpoint in spec.get("endpoints", []):
            value = endpoint.get("ip") or endpoint.get("fqdn") or {}
            host = value.get("address") or value.get("hostname", "")
            endpoints.append(f"[{host}]:{value.get('port')}" if ":" in host else
                             f"{host}:{value.get('port')}")  # fmt: skip
        tls = spec.get("tls")
        return {
            "endpoints": "\n".join(endpoints),
            "app_protocol": spec.get("appProtocol", "HTTP/1.1"),
            "tls": "on" if tls is not None else "",
            "sni": (tls or {}).get("sni", ""),
            "ca_refs": ", ".join(ref["name"] for ref in (tls or {}).get("caCertificateRefs", [])),
            "spec": structured_input.dump(spec) if spec else "",
        }

    def spec_from_fields(self) -> dict:
        data = self.cleaned_data
        spec = {"endpoints": [_endpoint(line) for line in data["endpoints"].splitlines()
                              if line.strip()]}  # fmt: skip
        if data["app_protocol"]:
            spec["appProtocol"] = data["app_protocol"]
        if data["tls"] or data["sni"].strip() or data["ca_refs"].strip():
            tls = {}
            if data["sni"].strip():
                tls["sni"] = data["sni"].strip()
            if data["ca_refs"].strip():
                tls["caCertificateRefs"] = [{"name": name} for name in _lines(data["ca_refs"])]
            spec["tls"] = tls
        return spec

    def spec_from_text(self) -> dict:
        return structured_input.parse(self.cleaned_data["spec"], "spec", empty={})


class SecretTextarea(forms.Textarea):
    """A textarea that never renders a value: a private key typed into it is not sent back
    in the page, not even when the form is shown again with errors."""

    def format_value(self, value):
        return None


class CertificateForm(forms.Form):
    """A certificate chain and, to serve TLS, its private key (write-only)."""

    FIELDS = {
        "name": "name",
        "certificate_pem": "spec.certificatePem",
        "private_key_pem": "spec.privateKeyPem",
    }
    name = _text("Name", "lowercase letters, digits and '-', e.g. example-cert",
                 autocomplete="off")  # fmt: skip
    certificate_pem = _code("Certificate chain (PEM)", "the leaf first, then intermediates")
    private_key_pem = _text(
        "Private key (PEM)",
        "of the leaf, unencrypted; RSA of 2048 bits or more, or ECDSA P-256/384/521. Stored "
        "encrypted and never shown again, not even here. Empty: a CA bundle on create; the "
        "stored key kept on replace",
        SecretTextarea(attrs={"rows": 6, "class": "code", "spellcheck": "false",
                              "autocomplete": "off"}),
    )  # fmt: skip
    resource_version = forms.CharField(required=False, widget=forms.HiddenInput())

    def spec(self) -> dict:
        data = self.cleaned_data
        spec = {"certificatePem": data["certificate_pem"]}
        if data["private_key_pem"].strip():
            spec["privateKeyPem"] = data["private_key_pem"]
        return spec


class ConsumerForm(forms.Form):
    FIELDS = {"name": "name", "description": "spec.description"}
    name = _text("Name", "what SecurityPolicies name it by, e.g. mobile-app", autocomplete="off")
    description = _text("Description", "optional; shown to every member")
    resource_version = forms.CharField(required=False, widget=forms.HiddenInput())

    def spec(self) -> dict:
        description = self.cleaned_data["description"]
        return {"description": description} if description else {}


class CredentialForm(forms.Form):
    """A new credential: an API key (Gantry makes it, shown once) or the basic-auth password."""

    FIELDS = {"type": "type", "password": "password", "username": "username"}
    type = _text("Kind", "", forms.HiddenInput())
    password = _text(
        "Password", "8 to 256 characters; only its hash is kept",
        forms.PasswordInput(attrs={"autocomplete": "new-password"}),
    )  # fmt: skip

    def body(self) -> dict:
        data = self.cleaned_data
        return {
            "type": data["type"],
            **({"password": data["password"]} if data["password"] else {}),
        }


class PolicyForm(forms.Form):
    """A policy of a gateway: its kind (fixed once made) and its spec as YAML or JSON."""

    FIELDS = {"name": "name", "kind": "kind", "spec": "spec"}
    name = _text("Name", "lowercase letters, digits and '-', e.g. require-jwt", autocomplete="off")
    kind = _choice("Kind", ["SecurityPolicy", "BackendTrafficPolicy", "ClientTrafficPolicy"])
    spec = _code(
        "Spec (YAML or JSON)",
        "Envoy Gateway's spec for the kind: targetRefs (the gateway, a listener or a route) and "
        "what to apply; see docs/policies.md",
        rows=16,
    )
    resource_version = forms.CharField(required=False, widget=forms.HiddenInput())

    def spec_value(self) -> dict:
        return structured_input.parse(self.cleaned_data["spec"], "spec", empty={})


ROLES = ["viewer", "editor", "admin", "owner"]


def checked_member(username: str, role: str) -> tuple[str, str]:
    """(username, role) if the API's member serializer accepts them; else ValidationFailed at
    ``user`` or ``role`` with its messages (who may be added, and by whom, the service says)."""
    body = MemberSerializer(data={"user": username, "role": role})
    if not body.is_valid():
        raise failed(body.errors, prefix="")
    return body.validated_data["user"]["username"], body.validated_data["role"]


class MemberForm(forms.Form):
    FIELDS = {"user": "user", "role": "role"}
    user = _text("Username", "someone who already shares a tenant with you; a platform "
                 "operator adds anyone else", autocomplete="off")  # fmt: skip
    role = _choice(
        "Role", ROLES, "viewer reads; editor manages gateways and what they use; admin also "
        "members, tokens and the audit log; owner also the tenant itself",
    )  # fmt: skip

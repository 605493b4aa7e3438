"""Validation of route specs: a Gateway API ``HTTPRoute`` spec, same field names and semantics.

Limits are Gateway API's (16 rules, 64 matches a rule and 128 in all, 16 hostnames, filters and
backendRefs), and the whole spec is at most 64 KiB of JSON. Regular expressions must compile
under RE2 — the engine Envoy uses — within the program size Envoy accepts by default, so that
no accepted route is refused by Envoy later. A backendRef naming a backend that does not exist
is valid: the route's status reports it.
"""

import json
import re

import re2
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from config.errors import ValidationFailed
from gateways.validation.common import (
    control_problem,
    duplicate_errors,
    header_name_field,
    hostname_field,
    is_ip_address,
    pattern_field,
    port_field,
    run_spec_serializer,
    text_field,
)
from gateways.validation.route_filters import (
    BACKEND_FILTERS,
    FilterSerializer,
    path_problem,
    rule_filter_errors,
)
from provisioning.ir.durations import to_ms
from tenants.serializers import StrictSerializer, dns_label_field

PATH_TYPES = ["Exact", "PathPrefix", "RegularExpression"]
VALUE_TYPES = ["Exact", "RegularExpression"]
METHODS = ["GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"]
# Envoy refuses a regex whose RE2 program is larger (runtime re2.max_program_size.error_level).
MAX_REGEX_PROGRAM_SIZE = 100
MAX_MATCHES_PER_ROUTE = 128
# A route's spec as compact JSON, defaults included. Gateway API's counts alone still allow
# megabytes (128 matches of 16 headers of 4 KiB each), and each route is compiled into every
# listener it attaches to: a 594 KB route made a 13 MB revision. Real routes stay far below.
MAX_ROUTE_SPEC_BYTES = 64 * 1024
DURATION = re.compile(r"(?:[0-9]{1,5}(?:h|m|s|ms)){1,4}")


def regex_problem(pattern: str) -> str | None:
    """Why Envoy's RE2 would refuse ``pattern``, or None."""
    options = re2.Options()
    options.log_errors = False
    try:
        compiled = re2.compile(pattern, options)
    except re2.error as error:
        reason = error.args[0] if error.args else error
        if isinstance(reason, bytes):
            reason = reason.decode(errors="replace")
        return f"is not a valid RE2 regular expression: {reason}"
    except UnicodeError:
        return "is not valid UTF-8 text"
    if compiled.programsize > MAX_REGEX_PROGRAM_SIZE:
        return (
            f"is too complex for Envoy: its RE2 program size is {compiled.programsize}, "
            f"at most {MAX_REGEX_PROGRAM_SIZE} is allowed"
        )
    return None


def _default_path() -> dict:
    return {"type": "PathPrefix", "value": "/"}


def _default_matches() -> list[dict]:
    return [{"path": _default_path()}]


def _default_rules() -> list[dict]:
    return [{"matches": _default_matches()}]


class PathMatchSerializer(StrictSerializer):
    type = serializers.ChoiceField(choices=PATH_TYPES, default="PathPrefix")
    value = serializers.CharField(max_length=1024, default="/", trim_whitespace=False)

    def validate(self, data):
        if data["type"] == "RegularExpression":
            problem = control_problem(data["value"]) or regex_problem(data["value"])
        else:
            problem = path_problem(data["value"])
        if problem:
            raise serializers.ValidationError({"value": [problem]})
        return data


@extend_schema_field({"allOf": [{"type": "string", "enum": VALUE_TYPES}], "default": "Exact"})
class ValueMatchTypeField(serializers.ChoiceField):
    """Exact or RegularExpression. Documented inline: header and query parameter matches share
    it, and a shared enum component would get a hashed name (TypeAc5Enum)."""

    def __init__(self, **kwargs):
        super().__init__(choices=VALUE_TYPES, default="Exact", **kwargs)


class HeaderMatchSerializer(StrictSerializer):
    type = ValueMatchTypeField()
    name = header_name_field()
    value = text_field(max_length=4096)

    def validate(self, data):
        if data["type"] == "RegularExpression":
            problem = regex_problem(data["value"])
            if problem:
                raise serializers.ValidationError({"value": [problem]})
        return data


class QueryParamMatchSerializer(HeaderMatchSerializer):
    value = text_field(max_length=1024)


def _duplicates(names: list[str], what: str, field: str = "name") -> dict:
    return duplicate_errors(names, what, field)


class MatchSerializer(StrictSerializer):
    path = PathMatchSerializer(default=_default_path)
    headers = HeaderMatchSerializer(many=True, required=False, max_length=16)
    queryParams = QueryParamMatchSerializer(many=True, required=False, max_length=16)
    method = serializers.ChoiceField(choices=METHODS, required=False)

    def validate_headers(self, headers):
        # Header names are case-insensitive: "Foo" and "foo" are the same header.
        errors = _duplicates([header["name"].lower() for header in headers], "headers")
        if errors:
            raise serializers.ValidationError(errors)
        return headers

    def validate_queryParams(self, params):
        errors = _duplicates([param["name"] for param in params], "queryParams")
        if errors:
            raise serializers.ValidationError(errors)
        return params


# What a backendRef may name: a Backend of the tenant (Envoy Gateway's kind), the default.
BACKEND_GROUP, BACKEND_KIND = "gateway.envoyproxy.io", "Backend"
KIND = re.compile(r"[A-Za-z]([-A-Za-z0-9]{0,61}[A-Za-z0-9])?")
GROUP = re.compile(r"([a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?)(\.[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?)*")


def is_backend_kind(ref: dict) -> bool:
    """Whether a backendRef names a Gantry Backend (any other kind is ``InvalidKind``)."""
    return ref.get("kind", BACKEND_KIND) == BACKEND_KIND and ref.get("group", BACKEND_GROUP) in (
        BACKEND_GROUP,
        "",
    )


class BackendRefSerializer(StrictSerializer):
    group = pattern_field(GROUP, "must be an API group such as gateway.envoyproxy.io",
                          max_length=253, required=False, allow_blank=True)  # fmt: skip
    kind = pattern_field(KIND, "must be a kind such as Backend", max_length=63, required=False)
    name = dns_label_field(help_text="a backend of the tenant; a missing one answers 500")
    port = port_field(
        required=False, help_text="accepted for Gateway API compatibility; endpoints carry ports"
    )
    weight = serializers.IntegerField(min_value=0, max_value=1_000_000, default=1)
    filters = FilterSerializer(many=True, required=False, max_length=16)

    def validate_filters(self, filters):
        errors: dict = {}
        seen: dict[str, int] = {}
        for index, item in enumerate(filters):
            if item["type"] not in BACKEND_FILTERS:
                errors[index] = {"type": [
                    f"a backendRef's filters may be {' or '.join(BACKEND_FILTERS)}"
                ]}  # fmt: skip
            elif item["type"] in seen:
                errors[index] = {"type": [
                    f"{item['type']} cannot be repeated (filters[{seen[item['type']]}] is one)"
                ]}  # fmt: skip
            seen.setdefault(item["type"], index)
        if errors:
            raise serializers.ValidationError(errors)
        return filters


class RetrySerializer(StrictSerializer):
    """Gateway API's HTTPRouteRetry."""

    codes = serializers.ListField(
        child=serializers.IntegerField(min_value=400, max_value=599), max_length=16,
        required=False, help_text="statuses retried; none: only failed connections and resets",
    )  # fmt: skip
    attempts = serializers.IntegerField(min_value=0, max_value=10, default=2,
                                        help_text="retries after the first try")  # fmt: skip
    backoff = pattern_field(
        DURATION, "must be a Gateway API duration such as 25ms or 1s", required=False
    )

    def validate_codes(self, codes):
        errors = duplicate_errors(codes, "codes")
        if errors:
            raise serializers.ValidationError(errors)
        return codes

    def validate_backoff(self, value):
        if to_ms(value) < 1:
            raise serializers.ValidationError("must be at least 1ms")
        return value


class TimeoutsSerializer(StrictSerializer):
    request = pattern_field(
        DURATION, "must be a Gateway API duration such as 10s, 500ms or 1m30s", required=False
    )
    backendRequest = pattern_field(
        DURATION, "must be a Gateway API duration such as 10s, 500ms or 1m30s", required=False
    )

    def validate(self, data):
        request, backend = data.get("request"), data.get("backendRequest")
        if request and backend and to_ms(request) and to_ms(backend) > to_ms(request):
            raise serializers.ValidationError(
                {"backendRequest": [f"must not be longer than request ({request})"]}
            )
        return data


SESSION_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]{1,128}")  # a cookie or header name
DEFAULT_SESSION_NAMES = {"Cookie": "gantry-session", "Header": "x-gantry-session"}


class CookieConfigSerializer(StrictSerializer):
    lifetimeType = serializers.ChoiceField(choices=["Session", "Permanent"], default="Session")


class SessionPersistenceSerializer(StrictSerializer):
    """Gateway API's SessionPersistence, as Envoy's stateful sessions can keep it."""

    sessionName = pattern_field(
        SESSION_TOKEN, "must be a cookie or header name (RFC 9110 token characters)",
        required=False, help_text="default gantry-session (Cookie) or x-gantry-session (Header)",
    )  # fmt: skip
    type = serializers.ChoiceField(choices=["Cookie", "Header"], default="Cookie")
    absoluteTimeout = pattern_field(
        DURATION, "must be a Gateway API duration such as 1h or 30m", required=False
    )
    idleTimeout = pattern_field(
        DURATION, "must be a Gateway API duration such as 1h or 30m", required=False
    )
    cookieConfig = CookieConfigSerializer(required=False)

    def validate(self, data):
        errors = {}
        lifetime = data.get("cookieConfig", {}).get("lifetimeType", "Session")
        if "idleTimeout" in data:
            errors["idleTimeout"] = ["is not supported: Envoy's sessions have no idle timeout"]
        if data["type"] == "Header":
            if "cookieConfig" in data:
                errors["cookieConfig"] = ["only allowed when type is Cookie"]
            if "absoluteTimeout" in data:
                errors["absoluteTimeout"] = ["only allowed when type is Cookie"]
        elif lifetime == "Permanent" and "absoluteTimeout" not in data:
            errors["absoluteTimeout"] = ["required when cookieConfig.lifetimeType is Permanent"]
        elif lifetime == "Session" and "absoluteTimeout" in data:
            errors["absoluteTimeout"] = [
                "needs cookieConfig.lifetimeType Permanent (a session cookie lasts as long "
                "as the browser keeps it)"
            ]
        elif "absoluteTimeout" in data and to_ms(data["absoluteTimeout"]) < 1000:
            errors["absoluteTimeout"] = ["must be at least 1s (cookies count whole seconds)"]
        if errors:
            raise serializers.ValidationError(errors)
        return data


class RuleSerializer(StrictSerializer):
    name = dns_label_field(required=False)
    matches = MatchSerializer(many=True, max_length=64, default=_default_matches)
    filters = FilterSerializer(many=True, required=False, max_length=16)
    backendRefs = BackendRefSerializer(many=True, required=False, max_length=16)
    timeouts = TimeoutsSerializer(required=False)
    retry = RetrySerializer(required=False)
    sessionPersistence = SessionPersistenceSerializer(required=False)

    def validate_matches(self, matches):
        return matches or _default_matches()  # no matches: every request, as Gateway API says

    def validate(self, data):
        errors = rule_filter_errors(data)
        if any(errors):
            raise serializers.ValidationError({"filters": errors})
        return data


class ParentRefSerializer(StrictSerializer):
    sectionName = dns_label_field(help_text="the name of one of the gateway's listeners")


class RouteSpecSerializer(StrictSerializer):
    parentRefs = ParentRefSerializer(
        many=True,
        required=False,
        max_length=32,
        help_text="listeners to attach to; omitted: every listener whose hostname matches",
    )
    hostnames = serializers.ListField(child=hostname_field(), required=False, max_length=16)
    rules = RuleSerializer(many=True, allow_empty=False, max_length=16, default=_default_rules)

    def validate_parentRefs(self, refs):
        listeners = self.context.get("listeners")
        names = [ref["sectionName"] for ref in refs]
        errors = _duplicates(names, "parentRefs", "sectionName")
        for index, name in enumerate(names):
            if listeners is not None and name not in listeners and index not in errors:
                errors[index] = {
                    "sectionName": [
                        f"the gateway has no listener {name!r} "
                        f"(it has: {', '.join(listeners) or 'none'})"
                    ]
                }
        if errors:
            raise serializers.ValidationError(errors)
        return refs

    def validate_hostnames(self, hostnames):
        errors = {}
        for index, hostname in enumerate(hostnames):
            if is_ip_address(hostname):
                errors[index] = ["must be a DNS name, not an IP address"]
            elif hostname in hostnames[:index]:
                errors[index] = [f"duplicates hostnames[{hostnames.index(hostname)}]"]
        if errors:
            raise serializers.ValidationError(errors)
        return hostnames

    def validate_rules(self, rules):
        errors: list = [{} for _ in rules]
        total, names = 0, {}
        for index, rule in enumerate(rules):
            total += len(rule["matches"])
            if total > MAX_MATCHES_PER_ROUTE:
                errors[index]["matches"] = [
                    f"the route's rules have {total} matches so far; "
                    f"at most {MAX_MATCHES_PER_ROUTE} in all"
                ]
                break
            name = rule.get("name")
            if name and name in names:
                errors[index]["name"] = [f"duplicates rules[{names[name]}].name"]
            if name:
                names.setdefault(name, index)
        if any(errors):
            raise serializers.ValidationError(errors)
        return rules


def validate_route_spec(raw, listeners: list[str] | None = None) -> dict:
    """The spec with Gateway API's defaults filled in, or ValidationFailed naming each bad field.

    ``listeners``: names of the gateway's listeners, which ``parentRefs`` may name.
    """
    _check_size(raw)  # before validating: a huge spec is refused without the work
    spec = run_spec_serializer(RouteSpecSerializer, raw, {"listeners": listeners})
    _check_size(spec)  # defaults filled in count too
    return spec


def _check_size(spec) -> None:
    size = len(json.dumps(spec, separators=(",", ":"), ensure_ascii=False).encode())
    if size > MAX_ROUTE_SPEC_BYTES:
        raise ValidationFailed.one(
            "spec",
            f"the route's spec is {size} bytes of JSON; at most {MAX_ROUTE_SPEC_BYTES} "
            "(64 KiB) are allowed: split it into several routes",
            "too_large",
        )


def referenced_backends(spec: dict) -> list[tuple[str, str]]:
    """(JSON path, backend name) of every backend the route sends or mirrors requests to."""
    refs = []
    for rule_index, rule in enumerate(spec.get("rules", [])):
        for index, ref in enumerate(rule.get("backendRefs", [])):
            if is_backend_kind(ref):  # another kind is no backend of the tenant: InvalidKind
                refs.append((f"spec.rules[{rule_index}].backendRefs[{index}]", ref["name"]))
        for index, item in enumerate(rule.get("filters", [])):
            mirror = item.get("requestMirror")
            if mirror:
                path = f"spec.rules[{rule_index}].filters[{index}].requestMirror.backendRef"
                refs.append((path, mirror["backendRef"]["name"]))
    return refs


def invalid_kinds(spec: dict) -> list[tuple[str, str]]:
    """(JSON path, "group/kind") of every backendRef naming something other than a Backend."""
    found = []
    for rule_index, rule in enumerate(spec.get("rules", [])):
        for index, ref in enumerate(rule.get("backendRefs", [])):
            if not is_backend_kind(ref):
                kind = f"{ref.get('group', '') or 'core'}/{ref.get('kind', BACKEND_KIND)}"
                found.append((f"spec.rules[{rule_index}].backendRefs[{index}]", kind))
    return found

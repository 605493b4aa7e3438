"""Config revisions: hashing, storing (with retention and a size limit), showing (secrets
redacted, large ones bounded) and diffing. Rollbacks are in ``provisioning.rollback``.

The "current" revision of a gateway is the one with ``current=True`` (at most one, enforced by
the database): the newest valid revision, or the one a rollback stored until the desired state
changes again. Nothing an Envoy replica reports changes which one it is.

Secrets never leave a revision for people as themselves nor as a plain hash: API keys,
basic-auth hashes and private keys are shown as a keyed HMAC-SHA256 whose key is derived from
the server's ``SECRET_KEY``, so a fingerprint cannot be checked against a guessed password.
The revision's content hash (over the whole config, secrets included) is keyed the same way.
"""

import difflib
import hashlib
import json
import zlib
from bisect import bisect_right
from dataclasses import fields
from itertools import compress, count
from operator import is_not
from typing import NamedTuple

from django.conf import settings
from django.core.cache import cache
from django.utils import timezone
from django.utils.crypto import salted_hmac

from config.errors import GantryError
from config.fields import EncodedJSON
from config.recent import RecentlyUsed
from config.statements import Arg, Statement
from gateways.models import Gateway
from provisioning import yaml_text
from provisioning.canonical_json import array_text, dumps, object_text
from provisioning.ir.build import DesiredState
from provisioning.models import ConfigPart, ConfigRevision, GatewayOperation
from provisioning.translate import Resources
from provisioning.xds.notify import notify_changed

# The labels keys are derived with (never change them: every fingerprint or hash would).
FINGERPRINT_LABEL = "gantry.provisioning.revisions.secret-fingerprint"
CONTENT_HASH_LABEL = "gantry.provisioning.revisions.content-hash"
YAML_CACHE_SECONDS = 3600


class TooLarge(GantryError):
    """A revision too large for what was asked (compiling, showing or diffing it)."""

    status = 422
    code = "too_large"

    def __init__(self, message: str, *, size: int, limit: int, setting: str):
        super().__init__(message)
        self.size, self.limit, self.setting = size, limit, setting

    def extra(self) -> dict:
        return {"size": self.size, "limit": self.limit, "setting": self.setting}


def canonical_json(value) -> str:
    return dumps(value)


def content_hash(resources: Resources) -> str:
    """A revision's hash of compiled resources (secrets included: rotating a key is a
    change): ``compiled(...).content_hash``."""
    return compiled(resources.as_dict()).content_hash


def hash_of(encoded: str) -> str:
    """HMAC-SHA256 keyed from SECRET_KEY, not a plain hash: the compiled config holds secrets
    and the rest of it can be read as YAML, so a plain hash (shown as ``hash``, sent to Envoy
    as the version) would let anyone test a guessed password against it."""
    return salted_hmac(CONTENT_HASH_LABEL, encoded, algorithm="sha256").hexdigest()


def fingerprint(text: str) -> str:
    """Of public data (a certificate chain): a plain sha256 anyone can recompute."""
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


def secret_fingerprint(text: str) -> str:
    """Of a secret: HMAC-SHA256 keyed from SECRET_KEY. Equal secrets show equal fingerprints
    (a change is visible), but without the server's key nothing can be checked against one."""
    digest = salted_hmac(FINGERPRINT_LABEL, text, algorithm="sha256").hexdigest()
    return "hmac-sha256:" + digest[:32]


def desired_snapshot(state: DesiredState) -> dict:
    """The desired state as stored in a revision: certificates by fingerprint, never the key;
    credentials by keyed fingerprint. Built field by field, not with ``asdict``: its deep copy
    of every route spec took over a second on a gateway of 10,000 routes, and the snapshot is
    only encoded as JSON (nothing mutates it)."""
    snapshot = {item.name: getattr(state, item.name) for item in fields(state)}
    # The operator's egress policy is no tenant's business (platform ranges and hosts).
    snapshot.pop("egress", None)
    snapshot.pop("resolved", None)  # addresses of the moment; a rollback resolves again
    snapshot["certificates"] = {
        name: {
            "certificateSha256": fingerprint(cert["certificatePem"]),
            "hasPrivateKey": bool(cert.get("privateKeyPem")),
            "dnsNames": cert.get("dnsNames", []),
        }
        for name, cert in state.certificates.items()
    }
    snapshot["consumers"] = {
        name: {
            "apiKeys": [secret_fingerprint(key) for key in consumer.get("apiKeys", [])],
            "basicAuth": [secret_fingerprint(u["hash"]) for u in consumer.get("basicAuth", [])],
        }
        for name, consumer in state.consumers.items()
    }
    snapshot["policy_secrets"] = {
        name: {key: secret_fingerprint(value) for key, value in sorted(secrets.items())}
        for name, secrets in state.policy_secrets.items()
    }
    return snapshot


# The manifest's key for the parts of the desired state's routes (``_RouteTexts``).
DESIRED_ROUTES = "desiredRoutes"
# Routes per part of the desired state, on average: a part ends after a route whose name
# hashes to a multiple of it, so adding or deleting a route changes one part, not every
# part after it.
ROUTES_PER_PART = 64


def _ends_part(name: str) -> bool:
    return zlib.crc32(name.encode()) % ROUTES_PER_PART == 0


def _part_of(text: str) -> tuple[str, str]:
    return text, hash_of(text)


class _Texts(NamedTuple):
    """What ``_RouteTexts`` kept of one gateway's last store."""

    items: list  # the snapshot's routes, as given
    entries: list  # per route: (its spec, the item, its JSON text, whether it ends a part)
    runs: list  # (start, end) of each part's routes
    keys: list  # per run: its routes' texts
    made: dict  # each part's texts → (its text, its digest)


class _RouteTexts:
    """The desired state's routes as parts: runs of about ``ROUTES_PER_PART`` routes, each a
    JSON array stored as a ``ConfigPart`` (the rest of the snapshot stays in the row). A
    one-route change on a gateway of 10,000 routes writes one part of ~60 routes instead of
    compressing and writing every spec (~30 ms). Per process, for the gateways stored most
    recently: each route's JSON text, reused while its stored route is the same (the very
    spec object: decoded specs are shared and never change, ``gateways.json_texts``), and
    each part's text and digest by its routes' texts. With as many routes as last time, only
    the routes that are not the very same objects as last time's are looked at, and only the
    runs holding them gather their texts again."""

    def __init__(self):
        self._by_gateway = RecentlyUsed(lambda: settings.GANTRY_INCREMENTAL_GATEWAYS)

    def encode(self, gateway_id: int, snapshot: dict) -> tuple[EncodedJSON, list, dict]:
        """(the snapshot without its routes, the digests of their parts, digest → text)."""
        items = snapshot["routes"]
        last: _Texts | None = self._by_gateway.get(gateway_id)
        keys = None
        if last is not None and len(last.items) == len(items):
            entries, runs = list(last.entries), last.runs
            moved = list(compress(count(), map(is_not, items, last.items)))
            for index in moved:
                entries[index] = _entry(items[index], last.entries[index])
                if entries[index][3] != last.entries[index][3]:  # a renamed route
                    runs = None
            if runs is None:
                runs = _runs(entries)
            else:  # the same runs: only those holding a moved route get their texts again
                keys, starts = list(last.keys), [start for start, _ in runs]
                for index in moved:
                    run = bisect_right(starts, index) - 1
                    keys[run] = _texts(entries, *runs[run])
        else:
            by_name = {entry[1].get("name", ""): entry for entry in last.entries} if last else {}
            entries = [_entry(item, by_name.get(item.get("name", ""))) for item in items]
            runs = _runs(entries)
        if keys is None:
            keys = [_texts(entries, start, end) for start, end in runs]
        # A run of the very texts of the last store is the same part: not joined, nor hashed.
        made = {}
        known = last.made if last else {}
        for key in keys:
            made[key] = known.get(key) or _part_of("[" + ",".join(key) + "]")
        texts = [text for text, _ in made.values()]
        digests = [digest for _, digest in made.values()]
        self._by_gateway.put(gateway_id, _Texts(items, entries, runs, keys, made))
        # "routes" stays in its place, null: a reader that skipped the parts fails loudly.
        stored = {name: None if name == "routes" else value for name, value in snapshot.items()}
        text = "{" + ",".join(f"{_json(name)}:{_json(value)}" for name, value in stored.items())
        return EncodedJSON.of(stored, text + "}"), digests, dict(zip(digests, texts, strict=True))


def _entry(item: dict, known: tuple | None) -> tuple:
    """(spec, item, JSON text, ends a part) of one route; ``known`` when it is the same."""
    if known is not None and known[0] is item.get("spec") and known[1] == item:
        return known
    return (item.get("spec"), item, _json(item), _ends_part(item.get("name", "")))


def _texts(entries: list, start: int, end: int) -> tuple[str, ...]:
    return tuple(entry[2] for entry in entries[start:end])


def _runs(entries: list) -> list[tuple[int, int]]:
    """(start, end) of each part: a part ends after a route whose name ends one."""
    runs, start = [], 0
    for index, entry in enumerate(entries):
        if entry[3]:
            runs.append((start, index + 1))
            start = index + 1
    if start < len(entries):
        runs.append((start, len(entries)))
    return runs


def _json(value) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


_route_texts = _RouteTexts()


def _mask(text: str) -> str:
    return f"<redacted {secret_fingerprint(text)}>"


def redacted(value):
    """A copy of compiled resources with every secret replaced by its fingerprint: inline
    private keys, API keys (api_key_auth ``credentials``), htpasswd users (basic_auth), SDS
    generic secrets (oidc's client secrets and HMAC keys) and the rate limit service token
    (gRPC ``initial_metadata``)."""
    if isinstance(value, dict):
        result = {}
        for key, item in value.items():
            if (
                key in ("private_key", "users", "secret")
                and isinstance(item, dict)
                and "inline_string" in item
            ):
                item = {"inline_string": _mask(item["inline_string"])}
            elif key == "initial_metadata" and isinstance(item, list):
                item = [{**m, "value": _mask(m["value"])} if isinstance(m, dict) and "value" in m
                        else m for m in item]  # fmt: skip
            elif key == "credentials" and isinstance(item, list):
                item = [{**c, "key": _mask(c["key"])} if isinstance(c, dict) and "key" in c
                        else c for c in item]  # fmt: skip
            result[key] = redacted(item)
        return result
    if isinstance(value, list):
        return [redacted(item) for item in value]
    return value


class Incomplete(GantryError):
    """A revision whose stored parts are not all there (pruned while it was being read)."""

    status = 409
    code = "incomplete_revision"


# Per process, for the gateways stored most recently: each part's text → (its digest, its size
# in bytes). A text a compile memo reused is the very string of the last store, so its lookup
# costs nothing (the string's hash is kept in it) where hashing the 2.6 MB of a big gateway's
# parts took ~8 ms.
_digests = RecentlyUsed(lambda: settings.GANTRY_INCREMENTAL_GATEWAYS)


def split(resources: dict, text=dumps, gateway_id=None) -> tuple[dict, dict[str, str], dict]:
    """(manifest, digest → canonical JSON, digest → its size in bytes) of compiled resources
    (``Resources.as_dict()``): one part per listener, cluster, secret, route configuration
    without its virtual hosts, and virtual host. ``text``: how a virtual host's JSON is
    written (a compile memo reuses the text of unchanged ones); ``gateway_id``: whose digests
    of unchanged texts to reuse."""
    parts: dict[str, str] = {}
    sizes: dict[str, int] = {}
    known = {} if gateway_id is None else _digests.get(gateway_id, {})

    def part(body: str) -> str:
        found = known.get(body)
        digest, size = found if found is not None else (hash_of(body), len(body.encode()))
        parts[digest], sizes[digest] = body, size
        return digest

    manifest: dict = {}
    for kind, items in resources.items():
        if kind != "routes":
            manifest[kind] = [part(dumps(item)) for item in items]
            continue
        manifest[kind] = []
        for config in items:
            shell = {key: value for key, value in config.items() if key != "virtual_hosts"}
            entry = {"config": part(dumps(shell))}
            if "virtual_hosts" in config:
                entry["virtual_hosts"] = [part(text(vhost)) for vhost in config["virtual_hosts"]]
            manifest[kind].append(entry)
    if gateway_id is not None:
        _digests.put(gateway_id, {body: (d, sizes[d]) for d, body in parts.items()})
    return manifest, parts, sizes


class Compiled(NamedTuple):
    """Compiled resources as a revision stores them."""

    manifest: dict  # the parts by digest (``split``)
    parts: dict[str, str]  # digest → canonical JSON
    size: int  # bytes of the whole config's canonical JSON (``joined_text``)
    content_hash: str


def manifest_hash(manifest: dict) -> str:
    """A revision's ``content_hash``: the keyed HMAC of its compiled resources' manifest. Each
    part's digest is the keyed HMAC of its canonical JSON, so the hash changes exactly when
    the config does, without hashing the whole config's text (2.6 MB at 10,000 routes) on
    every change."""
    return hash_of(dumps(_resources(manifest)))


def _whole_size(manifest: dict, parts: dict[str, str], sizes: dict[str, int]) -> int:
    """The byte length of ``joined_text(manifest, parts)``, without writing it: the text of
    the manifest's skeleton (the route configurations' shells as they are, every other part
    empty) plus the sizes of the parts left out."""
    skeleton = dict.fromkeys(parts, "")
    left_out = 0
    for kind, entries in _resources(manifest).items():
        for entry in entries:
            if kind != "routes":
                left_out += sizes[entry]
                continue
            skeleton[entry["config"]] = parts[entry["config"]]
            left_out += sum(sizes[d] for d in entry.get("virtual_hosts", ()))
    return len(joined_text(manifest, skeleton).encode()) + left_out


def compiled(resources: dict, text=dumps, gateway_id=None) -> Compiled:
    """``resources`` (``Resources.as_dict()``) split into parts, with their size and hash."""
    manifest, parts, sizes = split(resources, text, gateway_id)
    return Compiled(manifest, parts, _whole_size(manifest, parts, sizes), manifest_hash(manifest))


def _resources(manifest: dict) -> dict:
    """The manifest's compiled resources (without the desired state's parts)."""
    return {kind: entries for kind, entries in manifest.items() if kind != DESIRED_ROUTES}


def digests(manifest: dict) -> set[str]:
    """Every part of the compiled config a manifest names."""
    found: set[str] = set()
    for kind, entries in _resources(manifest).items():
        for entry in entries:
            if kind != "routes":
                found.add(entry)
                continue
            found.add(entry["config"])
            found.update(entry.get("virtual_hosts", ()))
    return found


def joined_text(manifest: dict, texts: dict[str, str]) -> str:
    """The canonical JSON of the whole config, from its parts' texts (exactly what was hashed
    as the revision's ``content_hash``)."""

    def config(entry: dict) -> str:
        shell = json.loads(texts[entry["config"]])
        if "virtual_hosts" not in entry:
            return dumps(shell)
        hosts = entry["virtual_hosts"]
        write = {"virtual_hosts": lambda _: "[" + ",".join(texts[d] for d in hosts) + "]"}
        return object_text({**shell, "virtual_hosts": None}, write)

    def kind(name: str):
        if name == "routes":
            return lambda entries: array_text(entries, config)
        return lambda entries: "[" + ",".join(texts[d] for d in entries) + "]"

    resources = _resources(manifest)
    return object_text(resources, {name: kind(name) for name in resources})


def joined(manifest: dict, values: dict[str, dict]) -> dict:
    """``Resources.as_dict()`` from its parts' decoded values (each used as it is: the route
    configurations are new dicts, their virtual hosts are ``values``' own)."""
    data: dict = {}
    for kind, entries in _resources(manifest).items():
        if kind != "routes":
            data[kind] = [values[d] for d in entries]
            continue
        data[kind] = []
        for entry in entries:
            config = dict(values[entry["config"]])
            if "virtual_hosts" in entry:
                config["virtual_hosts"] = [values[d] for d in entry["virtual_hosts"]]
            data[kind].append(config)
    return data


def part_texts(gateway_id: int, wanted) -> dict[str, str]:
    """Digest → text of the gateway's parts among ``wanted`` (decrypted); Incomplete when one
    is missing."""
    wanted = set(wanted)
    rows = ConfigPart.objects.filter(gateway_id=gateway_id, digest__in=wanted)
    texts = dict(rows.values_list("digest", "body"))
    if len(texts) != len(wanted):
        raise Incomplete(f"{len(wanted) - len(texts)} parts of the revision are gone")
    return texts


def text_of(revision: ConfigRevision) -> str:
    """The compiled resources of a revision as canonical JSON, secrets included (for the xDS
    server and the server's own reads only, never shown as is)."""
    if revision.manifest is None:  # stored whole, before revisions were stored in parts
        return revision.resources
    manifest = revision.manifest
    return joined_text(manifest, part_texts(revision.gateway_id, digests(manifest)))


def desired_state_of(revision: ConfigRevision) -> dict:
    """The desired state a revision was compiled from, its routes read from their parts."""
    snapshot = revision.desired_state or {}
    wanted = (revision.manifest or {}).get(DESIRED_ROUTES)
    if wanted is None:  # stored whole, before parts
        return snapshot
    texts = part_texts(revision.gateway_id, wanted)
    routes = [route for digest in wanted for route in json.loads(texts[digest])]
    return {name: routes if name == "routes" else value for name, value in snapshot.items()}


def resources_of(revision: ConfigRevision) -> dict:
    """The compiled resources of a revision, keys included (never shown as they are)."""
    return json.loads(text_of(revision))


def _store_parts(gateway: Gateway, parts: dict[str, str], known: set[str] | None = None) -> None:
    """Stores the parts the gateway does not have yet (under its lock: nobody else adds any).
    ``known``: digests of parts it is known to have (those of its latest compiled revision,
    which is never pruned): the rest are inserted, skipping any already there, without a
    query to find which are."""
    if known is not None:
        ConfigPart.objects.bulk_create(
            [ConfigPart(gateway=gateway, digest=d, body=b) for d, b in parts.items()
             if d not in known],
            ignore_conflicts=True,
        )  # fmt: skip
        return
    have = set(
        ConfigPart.objects.filter(gateway=gateway, digest__in=list(parts)).values_list(
            "digest", flat=True
        )
    )
    ConfigPart.objects.bulk_create(
        ConfigPart(gateway=gateway, digest=digest, body=body)
        for digest, body in parts.items()
        if digest not in have
    )


def parts_named(manifest: dict) -> set[str]:
    """Every part a revision's manifest names: its compiled config's and its desired routes'."""
    return digests(manifest) | set(manifest.get(DESIRED_ROUTES, ()))


def size_of(revision: ConfigRevision) -> int:
    if revision.size is None:  # stored before sizes were kept (and before parts)
        return len(revision.resources.encode())
    return revision.size


def check_readable(*shown: ConfigRevision) -> None:
    """TooLarge unless the revisions together are small enough to render for a request: YAML
    and diffs are built in the web process, and a huge one would stall other requests."""
    limit = settings.GANTRY_REVISION_READ_MAX_BYTES
    size = sum(size_of(revision) for revision in shown)
    if size > limit:
        numbers = " and ".join(str(revision.number) for revision in shown)
        raise TooLarge(
            f"revision {numbers} holds {size} bytes of compiled config, over the {limit} bytes "
            f"shown or compared per request (GANTRY_REVISION_READ_MAX_BYTES)",
            size=size, limit=limit, setting="GANTRY_REVISION_READ_MAX_BYTES",
        )  # fmt: skip


def rendering_key(revision: ConfigRevision) -> str:
    """What a rendering of the revision for people depends on: the revision and the server
    secret its fingerprints are keyed with (a cache key part)."""
    key_id = salted_hmac(FINGERPRINT_LABEL, "cache").hexdigest()[:12]
    return f"{revision.pk}:{revision.content_hash}:{key_id}"


def as_yaml(revision: ConfigRevision) -> str:
    """The compiled resources for people: YAML, secrets redacted. A revision never changes, so
    its YAML is rendered once and cached (per server secret: the fingerprints depend on it)."""
    key = f"revision-yaml:{rendering_key(revision)}"
    text = cache.get(key)
    if text is None:
        text = yaml_text.dump(redacted(resources_of(revision)))
        cache.set(key, text, YAML_CACHE_SECONDS)
    return text


def unified_diff(old: ConfigRevision, new: ConfigRevision) -> str:
    check_readable(old, new)
    return "".join(
        difflib.unified_diff(
            as_yaml(old).splitlines(keepends=True),
            as_yaml(new).splitlines(keepends=True),
            fromfile=f"revision {old.number}",
            tofile=f"revision {new.number}",
        )
    )


def current_revision(gateway: Gateway) -> ConfigRevision | None:
    return (
        ConfigRevision.objects.filter(gateway=gateway, current=True)
        .defer("resources", "desired_state", "manifest")
        .first()
    )


# Asked on every reconcile: compiled once per process (config/statements.py).
_LATEST_COMPILED = Statement(
    lambda: (
        ConfigRevision.objects.filter(gateway_id=Arg("gateway"), restored_from__isnull=True)
        # With its gateway's id: code that follows ``revision.gateway`` loads it by that id.
        .only("pk", "number", "content_hash", "state", "gateway")
        .order_by("-number")[:1]
    )
)
_LATEST_NUMBER = Statement(
    lambda: (
        ConfigRevision.objects.filter(gateway_id=Arg("gateway"))
        .order_by("-number")
        .values_list("number")[:1]
    )
)


def latest_compiled(gateway: Gateway) -> ConfigRevision | None:
    """The newest revision compiled from the desired state (rollbacks aside): reconcile
    compares with it, so a rollback sticks until the desired state changes."""
    return _LATEST_COMPILED.first(gateway=gateway.pk)


def check_size(gateway: Gateway, size: int) -> int:
    """``size`` (the compiled config's, in bytes), or TooLarge over
    ``GANTRY_MAX_COMPILED_BYTES``."""
    limit = settings.GANTRY_MAX_COMPILED_BYTES
    if size > limit:
        raise TooLarge(
            f"the compiled config of gateway {gateway.name!r} is {size} bytes, over the limit "
            f"of {limit} bytes (GANTRY_MAX_COMPILED_BYTES); nothing was stored",
            size=size, limit=limit, setting="GANTRY_MAX_COMPILED_BYTES",
        )  # fmt: skip
    return size


class Prepared(NamedTuple):
    """What ``prepare`` wrote and read for a revision to come (``store`` finishes it)."""

    manifest: dict
    desired: dict
    number: int
    size: int


def prepare(gateway: Gateway, made: Compiled, state: DesiredState,
            known_parts: set[str] | None = None) -> Prepared:  # fmt: skip
    """Under the gateway's lock, what a revision of ``made`` needs whatever Envoy's verdict:
    its parts the gateway lacks stored (``known_parts``: ``_store_parts``), its number read.
    A reconcile does this while Envoy validates."""
    size = check_size(gateway, made.size)
    manifest, parts = dict(made.manifest), made.parts
    desired, manifest[DESIRED_ROUTES], routes = _route_texts.encode(
        gateway.pk, desired_snapshot(state)
    )
    _store_parts(gateway, {**parts, **routes}, known_parts)
    latest = _LATEST_NUMBER.rows(gateway=gateway.pk)
    return Prepared(manifest, desired, (latest[0][0] if latest else 0) + 1, size)


def store(
    gateway: Gateway,
    made: Compiled,
    state: DesiredState,
    *,
    valid: bool,
    message: str,
    actor: str,
    restored_from: int | None = None,
    requested_at=None,
    prepared: Prepared | None = None,
) -> ConfigRevision:
    """Under the gateway's lock: revision n+1 of the compiled resources ``made``
    (``compiled``), current when valid, stored in parts (only those the gateway lacks are
    new). The caller prunes the old ones past retention (``prune``) once the new one is on
    its way. ``prepared``: what ``prepare`` did for it already (done here otherwise)."""
    if prepared is None:
        prepared = prepare(gateway, made, state)
    if valid:  # the one current before steps down first (one current revision per gateway)
        ConfigRevision.objects.filter(gateway=gateway, current=True).update(current=False)
    revision = ConfigRevision.objects.create(
        gateway=gateway,
        number=prepared.number,
        content_hash=made.content_hash,
        manifest=prepared.manifest,
        size=prepared.size,
        desired_state=prepared.desired,
        state=ConfigRevision.State.VALID if valid else ConfigRevision.State.REJECTED,
        message=message,
        created_by=actor,
        restored_from=restored_from,
        current=valid,
        requested_at=requested_at or timezone.now(),
    )
    if valid:
        notify_changed(f"{gateway.tenant.slug}/{gateway.name}")
    return revision


def prune(gateway: Gateway) -> int:
    """Deletes revisions past the newest ``GANTRY_REVISIONS_KEEP``, always keeping the current
    one and the newest compiled from the desired state (what reconcile compares with).
    Operations that named a deleted revision keep their entry (the reference becomes null)."""
    rows = ConfigRevision.objects.filter(gateway=gateway)
    keep = set(
        rows.order_by("-number").values_list("pk", flat=True)[: settings.GANTRY_REVISIONS_KEEP]
    )
    keep.update(rows.filter(current=True).values_list("pk", flat=True))
    compiled = latest_compiled(gateway)
    if compiled is not None:
        keep.add(compiled.pk)
    doomed = list(rows.exclude(pk__in=keep).values_list("pk", flat=True))
    if not doomed:
        return 0
    # Only their ids are loaded: a revision is not decrypted only to be deleted.
    GatewayOperation.objects.filter(revision_id__in=doomed).update(revision=None)
    ConfigRevision.objects.filter(pk__in=doomed).only("pk").delete()
    kept: set[str] = set()
    for manifest in rows.filter(manifest__isnull=False).values_list("manifest", flat=True):
        kept |= parts_named(manifest)
    ConfigPart.objects.filter(gateway=gateway).exclude(digest__in=kept).only("pk").delete()
    return len(doomed)

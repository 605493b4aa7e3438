"""Revisions stored per resource: a change stores only the resources it changed, every revision
reads back as exactly the config it hashed, pruning deletes only parts no kept revision names,
and the xDS server reads only the parts it does not hold. Parts never cross gateways."""

import json

import pytest

from gateways import services
from gateways.models import Route
from provisioning import envoy, revisions
from provisioning.models import ConfigPart
from provisioning.reconcile import reconcile
from provisioning.xds import db_source
from tests.delivery.helpers import ACTOR, gateway_with_route, route_spec

KEY = "acme/edge"


def hosted(prefix: str, host: str) -> dict:
    return {**route_spec(prefix), "hostnames": [host]}


@pytest.fixture
def big(org):
    """A gateway with routes over three hostnames (three virtual hosts)."""
    gateway = gateway_with_route(org.tenant)
    for index, host in enumerate(("a.test", "b.test", "c.test")):
        services.create_route(ACTOR, gateway, f"r{index}", hosted(f"/r{index}", host))
    assert reconcile(gateway.pk).result == "created"
    return gateway


def test_a_one_route_change_stores_one_virtual_host_and_every_revision_reads_back_whole(big):
    parts = ConfigPart.objects.filter(gateway=big)
    before = set(parts.values_list("digest", flat=True))
    route = Route.objects.get(gateway=big, name="r1")
    services.patch_route_spec(ACTOR, route, hosted("/changed", "b.test"))
    revision = reconcile(big.pk).revision
    added = set(parts.values_list("digest", flat=True)) - before
    compiled = added & revisions.digests(revision.manifest)
    assert len(compiled) == 1  # the virtual host of b.test, nothing else
    (text,) = revisions.part_texts(big.pk, compiled).values()
    assert '"b.test"' in text and "/changed" in text
    # And one part of the desired state's routes: the run holding r1.
    (desired,) = added - compiled
    assert desired in revision.manifest[revisions.DESIRED_ROUTES]
    assert "/changed" in revisions.part_texts(big.pk, [desired])[desired]
    for stored in big.revisions.all():
        # The whole config, joined from its parts, is exactly what was hashed.
        assert _rehashed(stored) == stored.content_hash
    assert revision.size == len(revisions.text_of(revision).encode())


def _rehashed(revision) -> str:
    """The hash of the config read back from the revision's parts, split again as a compile
    would be (each part re-hashed from its text)."""
    return revisions.compiled(json.loads(revisions.text_of(revision))).content_hash


def test_pruning_deletes_the_parts_no_kept_revision_names(big, settings):
    settings.GANTRY_REVISIONS_KEEP = 2
    route = Route.objects.get(gateway=big, name="r0")
    for prefix in ("/v2", "/v3", "/v4"):
        route = services.patch_route_spec(ACTOR, route, hosted(prefix, "a.test"))
        assert reconcile(big.pk).result == "created"
    kept = list(big.revisions.all())
    assert [r.number for r in kept] == [4, 3]
    named = set().union(
        *(revisions.digests(r.manifest) | set(r.manifest[revisions.DESIRED_ROUTES]) for r in kept)
    )
    assert set(ConfigPart.objects.filter(gateway=big).values_list("digest", flat=True)) == named
    for revision in kept:
        assert _rehashed(revision) == revision.content_hash


def test_a_rejected_revision_keeps_its_parts_until_it_is_pruned(big, monkeypatch):
    monkeypatch.setattr(envoy, "validate", lambda resources, **_: envoy.Validation(False, "no"))
    route = Route.objects.get(gateway=big, name="r2")
    services.patch_route_spec(ACTOR, route, hosted("/refused", "c.test"))
    rejected = reconcile(big.pk).revision
    assert rejected.state == "rejected"
    assert "/refused" in revisions.text_of(rejected)  # what Envoy refused stays readable


def test_equal_configs_of_two_tenants_share_no_part(org, other_org):
    mine = gateway_with_route(org.tenant)
    theirs = gateway_with_route(other_org.tenant)
    reconcile(mine.pk)
    reconcile(theirs.pk)
    own = revisions.digests(mine.revisions.get().manifest)
    other = revisions.digests(theirs.revisions.get().manifest)
    desired = set(mine.revisions.get().manifest[revisions.DESIRED_ROUTES])
    assert ConfigPart.objects.filter(gateway=mine).count() == len(own | desired)
    # A manifest naming another gateway's part (a forged or corrupted row) reads nothing of it.
    revision = mine.revisions.get()
    revision.manifest = {**revision.manifest, "clusters": sorted(other - own)}
    with pytest.raises(revisions.Incomplete):
        revisions.text_of(revision)
    ConfigPart.objects.filter(gateway=theirs).delete()
    assert _rehashed(mine.revisions.get()) == mine.revisions.get().content_hash


def test_the_xds_server_reads_only_the_parts_it_does_not_hold(big, monkeypatch):
    content_hash, resources, held = db_source._read(KEY, None, {})
    assert resources.routes and held.keys() == revisions.digests(big.revisions.get().manifest)
    # a poll that finds the hash it holds decrypts no part
    asked_first: list[set] = []
    monkeypatch.setattr(revisions, "part_texts", lambda *args: asked_first.append(args))
    assert db_source._read(KEY, content_hash, held) == (content_hash, None, {}) and not asked_first
    monkeypatch.undo()
    route = Route.objects.get(gateway=big, name="r1")
    services.patch_route_spec(ACTOR, route, hosted("/next", "b.test"))
    reconcile(big.pk)
    asked: list[set] = []
    real = revisions.part_texts

    def counted(gateway_id, wanted):
        asked.append(set(wanted))
        return real(gateway_id, wanted)

    monkeypatch.setattr(revisions, "part_texts", counted)
    new_hash, changed, parts = db_source._read(KEY, content_hash, held)
    assert new_hash != content_hash and [len(wanted) for wanted in asked] == [1]
    # Unchanged virtual hosts are the very objects held (the snapshot reuses their encoding).
    (config,) = changed.routes
    (old_config,) = resources.routes
    same = [
        new for new, old in zip(config["virtual_hosts"], old_config["virtual_hosts"], strict=True)
        if new is old
    ]  # fmt: skip
    assert len(same) == len(config["virtual_hosts"]) - 1
    assert '"/next"' in revisions.canonical_json(changed.as_dict())
    assert revisions.content_hash(changed) == new_hash


def test_adding_a_route_to_many_writes_one_or_two_parts_of_the_desired_state(org):
    gateway = gateway_with_route(org.tenant)
    Route.objects.bulk_create(
        Route(gateway=gateway, name=f"bulk-{i}", spec=route_spec(f"/b{i}")) for i in range(400)
    )
    first = reconcile(gateway.pk).revision
    services.create_route(ACTOR, gateway, "added", route_spec("/added"))
    second = reconcile(gateway.pk).revision
    old = first.manifest[revisions.DESIRED_ROUTES]
    new = second.manifest[revisions.DESIRED_ROUTES]
    assert len(old) > 3  # several parts: runs of about ROUTES_PER_PART routes
    assert 1 <= len(set(new) - set(old)) <= 2  # the run it joined (split in two at most)
    routes = revisions.desired_state_of(second)["routes"]
    assert [r["name"] for r in routes][-1] == "added" and len(routes) == 402
    assert revisions.desired_state_of(first)["routes"] == routes[:-1]


def test_routes_changed_in_place_read_back_from_the_desired_state_as_they_are(org):
    """Two routes of a big gateway changed in place, in different parts of the desired state:
    each change gathers only its part's texts again, and every revision's desired routes read
    back as the routes were when it was stored."""
    gateway = gateway_with_route(org.tenant)
    Route.objects.bulk_create(
        Route(gateway=gateway, name=f"bulk-{i}", spec=route_spec(f"/b{i}")) for i in range(300)
    )
    reconcile(gateway.pk)
    names = [route["name"] for route in revisions.desired_state_of(
        gateway.revisions.latest("number"))["routes"]]  # fmt: skip
    for name, prefix in (("bulk-3", "/x"), ("bulk-290", "/y"), ("bulk-3", "/z")):
        services.patch_route_spec(ACTOR, Route.objects.get(gateway=gateway, name=name),
                                  route_spec(prefix))  # fmt: skip
        revision = reconcile(gateway.pk).revision
        stored = Route.objects.filter(gateway=gateway).values_list("name", "spec")
        expected = dict(stored)
        routes = revisions.desired_state_of(revision)["routes"]
        assert [route["name"] for route in routes] == names
        assert all(route["spec"] == expected[route["name"]] for route in routes)


def _part_lookups(run) -> int:
    """SELECTs of stored parts while ``run()`` runs (what a store asks before inserting)."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as captured:
        run()
    table = ConfigPart._meta.db_table
    return sum(
        1 for q in captured if q["sql"].startswith("SELECT") and f'FROM "{table}"' in q["sql"]
    )


def test_a_store_asks_which_parts_exist_only_when_it_did_not_store_the_latest_revision(
    big, settings
):
    from provisioning.compile_memo import memos

    route = Route.objects.get(gateway=big, name="r1")

    def change(prefix: str):
        services.patch_route_spec(ACTOR, route, hosted(prefix, "b.test"))
        return reconcile(big.pk).revision

    # This process stored the latest revision: its parts are known, none is looked up.
    assert _part_lookups(lambda: change("/one")) == 0
    # A memo from before another worker stored a revision (and the parts only the older one
    # named were pruned since): the store looks them up again, and stores what is missing.
    memo = memos.get(big.pk)
    older = memo.stored
    change("/two")
    settings.GANTRY_REVISIONS_KEEP = 1
    revisions.prune(big)
    memo.stored = older
    revision = None

    def third():
        nonlocal revision
        revision = change("/one")  # the virtual host of revision "/one" again: pruned, re-stored

    assert _part_lookups(third) == 1
    assert _rehashed(revision) == revision.content_hash

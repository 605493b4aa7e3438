"""Golden files: ``testdata/<case>.in.yaml`` (a gateway's desired state) → ``<case>.out.yaml``
(the Envoy resources). ``pytest --update-golden`` rewrites them; review their diffs like code.

Every output is also loaded by real Envoy (``--mode validate``, and a warm Envoy over xDS).
Certificates in the inputs name only their DNS names: the golden text shows placeholders, and
Envoy validates the same resources with real certificates made for the run.
"""

from pathlib import Path

import pytest
import yaml

from provisioning.envoy import validate_cold, validate_warm
from provisioning.ir.build import DesiredState, gateway_ir
from provisioning.translate import Resources, _http_filters, jwt_authn, translate
from provisioning.xds.resources import encode
from tests.provisioning.certs import self_signed

TESTDATA = Path(__file__).parent / "testdata"
CASES = sorted(p.name.removesuffix(".in.yaml") for p in TESTDATA.glob("*.in.yaml"))


def load_state(case: str, real_certificates: bool) -> DesiredState:
    raw = yaml.safe_load((TESTDATA / f"{case}.in.yaml").read_text())
    certificates = {}
    for name, cert in (raw.get("certificates") or {}).items():
        names = cert["dnsNames"]
        chain, key = (
            self_signed(names)
            if real_certificates
            else (f"<certificate {names[0]}>", "<private key>")
        )
        certificates[name] = {"certificatePem": chain, "privateKeyPem": key, "dnsNames": names}
    return DesiredState(
        tenant=raw.get("tenant", "acme"),
        gateway=raw.get("gateway", "edge"),
        spec=raw["gateway_spec"],
        routes=raw.get("routes") or [],
        backends=raw.get("backends") or {},
        certificates=certificates,
        policies=raw.get("policies") or [],
        consumers=raw.get("consumers") or {},
    )


def render(resources: Resources) -> str:
    return yaml.safe_dump(resources.as_dict(), sort_keys=False, width=100)


@pytest.mark.parametrize("case", CASES)
def test_golden(case, request):
    output = render(translate(gateway_ir(load_state(case, real_certificates=False))))
    golden = TESTDATA / f"{case}.out.yaml"
    if request.config.getoption("--update-golden"):
        golden.write_text(output)
    assert golden.exists(), f"no golden output for {case}: run pytest --update-golden"
    assert output == golden.read_text()


@pytest.mark.parametrize("validate", [validate_cold, validate_warm], ids=["cold", "warm"])
@pytest.mark.parametrize("case", CASES)
def test_golden_output_is_accepted_by_envoy(case, validate):
    """Both ways of asking Envoy (``--mode validate``, and a push to a warm Envoy) accept it."""
    resources = translate(gateway_ir(load_state(case, real_certificates=True)))
    result = validate(resources)
    assert result.ok, result.message


@pytest.mark.parametrize("case", CASES)
def test_golden_output_encodes_for_the_xds_server(case):
    """Every type the output names is one the xDS server can turn into protobuf."""
    encoded = encode(translate(gateway_ir(load_state(case, real_certificates=False))))
    assert sum(len(resources) for resources in encoded.values()) > 0


def test_no_orphan_golden_outputs(request):
    orphans = [
        p for p in TESTDATA.glob("*.out.yaml") if p.name.removesuffix(".out.yaml") not in CASES
    ]
    if request.config.getoption("--update-golden"):
        for path in orphans:
            path.unlink()
        orphans = []
    assert not orphans, f"golden outputs without inputs: {orphans} (pytest --update-golden)"


@pytest.mark.parametrize("case", CASES)
def test_http_filters_depend_only_on_filter_routes(case):
    """Listeners' HTTP filters are built from each virtual host's ``filter_routes`` (what an
    incremental compile keeps per virtual host): every route of the listener gives the same
    filters, so no translator reads a field ``FILTER_FIELDS`` leaves out."""
    ir = gateway_ir(load_state(case, real_certificates=False))
    for listener in ir.listeners:
        every = [route for vhost in listener.virtual_hosts for route in vhost.routes]
        kept = [route for vhost in listener.virtual_hosts for route in vhost.filter_routes]
        assert _http_filters(ir, kept) == _http_filters(ir, every)
        assert jwt_authn.local_reply_mappers(kept) == jwt_authn.local_reply_mappers(every)

"""The other kinds' whole flows in real Chromium against a real platform (the fixtures and
steps of test_console_flow_browser.py): a backend and a certificate created in the console,
served by real Envoy, changed, compared, rolled back and deleted; a consumer and its API key
(shown once) let through by Envoy until the key is deleted; a gateway scaled up and down."""

import re
import socket
import ssl

import pytest
import requests
from cryptography import x509

from gateways import services
from gateways.models import Gateway
from provisioning.models import ConfigRevision
from provisioning.reconcile import reconcile
from tenants.roles import Role
from tests.api.pki import certificate
from tests.console.test_console_browser import page  # noqa: F401 (a fixture)
from tests.console.test_console_flow_browser import (
    answers,
    applied,
    compare_and_roll_back,
    served,  # noqa: F401 (a fixture)
    serving,
    url_of,
)
from tests.console.test_console_resources_browser import sign_in_as
from tests.delivery.helpers import ACTOR
from tests.provisioning.harness import Upstream
from tests.xds.harness import wait_for

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def answered_by(gateway, name: str) -> None:
    """Waits until the gateway's answer to / comes from the upstream called ``name``."""

    def check():
        try:
            response = requests.get(url_of(gateway), timeout=5)
        except requests.ConnectionError:
            return False
        return response.status_code == 200 and response.json().get("backend") == name

    wait_for(check, timeout=30, interval=0.2, message=f"/ answered by {name}")


def test_a_backend_created_changed_compared_rolled_back_and_deleted(page, live_server, served):  # noqa: F811
    org, gateway = served, served.gateway
    blue, green = Upstream("blue"), Upstream("green")
    try:
        services.create_route(ACTOR, gateway, "all",
                              {"rules": [{"backendRefs": [{"name": "svc"}]}]})  # fmt: skip
        reconcile(gateway.pk)
        answers(gateway, "/", 500)  # its backend does not exist yet
        sign_in_as(page, live_server, org, Role.EDITOR)

        # Create: svc is the blue server.
        page.goto(f"{live_server.url}/t/acme/backends/")
        page.get_by_role("link", name="New backend").click()
        page.get_by_label("Name", exact=True).fill("svc")
        page.get_by_label("Endpoints").fill(f"127.0.0.1:{blue.port}")
        page.get_by_role("button", name="Create from fields").click()
        page.wait_for_url(f"{live_server.url}/t/acme/backends/svc/")
        applied(page, org)
        answered_by(gateway, "blue")
        created = serving(org)

        # Change: the green server instead.
        page.goto(f"{live_server.url}/t/acme/backends/svc/edit/")
        page.get_by_label("Endpoints").fill(f"127.0.0.1:{green.port}")
        page.get_by_role("button", name="Save fields").click()
        page.wait_for_url(f"{live_server.url}/t/acme/backends/svc/")
        applied(page, org)
        answered_by(gateway, "green")
        changed = serving(org)
        assert changed == created + 1

        compare_and_roll_back(page, live_server, org, created, changed,
                              f"port_value: {blue.port}", f"port_value: {green.port}")  # fmt: skip
        answered_by(gateway, "blue")

        # Delete (after confirming): the route's requests answer 500 again.
        page.goto(f"{live_server.url}/t/acme/backends/svc/")
        page.get_by_role("link", name="Delete").click()
        page.get_by_role("button", name="Delete backend svc").click()
        page.wait_for_url(f"{live_server.url}/t/acme/backends/")
        applied(page, org)
        answers(gateway, "/", 500)
    finally:
        blue.close()
        green.close()


def served_names(gateway) -> list[str]:
    """The DNS names of the certificate the gateway's HTTPS listener presents."""
    listener = next(
        item for item in Gateway.objects.get(pk=gateway.pk).status["listeners"]
        if item["name"] == "https"
    )  # fmt: skip
    port = int(listener["url"].rsplit(":", 1)[1].strip("/"))
    context = ssl.create_default_context()
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:  # noqa: SIM117
        with context.wrap_socket(raw, server_hostname="app.example.com") as tls:
            cert = x509.load_der_x509_certificate(tls.getpeercert(binary_form=True))
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    return names.value.get_values_for_type(x509.DNSName)


def presents(gateway, names: list[str]) -> None:
    seen = []

    def check():
        try:
            seen.append(served_names(gateway))
        except (OSError, StopIteration, KeyError, ValueError) as error:
            seen.append(repr(error))
        return seen[-1] == names

    def message() -> str:
        listeners = Gateway.objects.get(pk=gateway.pk).status.get("listeners")
        return f"the HTTPS listener presenting {names}; last seen {seen[-1:]}; {listeners}"

    wait_for(check, timeout=30, interval=0.2, message=message)


def test_a_certificate_uploaded_replaced_compared_rolled_back_deleted(page, live_server, served):  # noqa: F811
    org, gateway = served, served.gateway
    first_chain, first_key = certificate(("app.example.com",))
    second_chain, second_key = certificate(("app.example.com", "www.example.com"))
    sign_in_as(page, live_server, org, Role.EDITOR)

    # Upload: the key is never shown again, not even on the page the upload answers with.
    page.goto(f"{live_server.url}/t/acme/certificates/")
    page.get_by_role("link", name="New certificate").click()
    page.get_by_label("Name", exact=True).fill("site")
    page.get_by_label("Certificate chain (PEM)").fill(first_chain)
    page.get_by_label("Private key (PEM)").fill(first_key)
    page.get_by_role("button", name="Upload certificate").click()
    page.wait_for_url(f"{live_server.url}/t/acme/certificates/site/")
    key_body = first_key.splitlines()[1]
    assert key_body not in page.content()

    listeners = [*gateway.spec["listeners"], {
        "name": "https", "protocol": "HTTPS", "port": 443,
        "tls": {"certificateRefs": [{"name": "site"}]},
    }]  # fmt: skip
    services.patch_gateway_spec(ACTOR, Gateway.objects.get(pk=gateway.pk),
                                {"listeners": listeners})  # fmt: skip
    applied(page, org)
    presents(gateway, ["app.example.com"])
    created = serving(org)

    # Replace (a renewal): the new chain and key.
    page.goto(f"{live_server.url}/t/acme/certificates/site/edit/")
    page.get_by_label("Certificate chain (PEM)").fill(second_chain)
    page.get_by_label("Private key (PEM)").fill(second_key)
    page.get_by_role("button", name="Replace certificate").click()
    page.wait_for_url(f"{live_server.url}/t/acme/certificates/site/")
    assert second_key.splitlines()[1] not in page.content()
    applied(page, org)
    presents(gateway, ["app.example.com", "www.example.com"])
    changed = serving(org)

    # The chains differ in the comparison (the keys show as fingerprints only).
    compare_and_roll_back(page, live_server, org, created, changed,
                          first_chain.splitlines()[1][:40],
                          second_chain.splitlines()[1][:40])  # fmt: skip
    # A rollback compiles the old revision again with today's certificates (docs/delivery.md):
    # it never brings back a replaced key, so the renewed certificate is still the one served.
    presents(gateway, ["app.example.com", "www.example.com"])
    page.goto(f"{live_server.url}/t/acme/gateways/edge/revisions/{changed + 1}/")
    text = page.content()
    assert key_body not in text and second_key.splitlines()[1] not in text

    # Delete, once no listener needs it.
    services.patch_gateway_spec(ACTOR, Gateway.objects.get(pk=gateway.pk),
                                {"listeners": listeners[:-1]})  # fmt: skip
    applied(page, org)
    page.goto(f"{live_server.url}/t/acme/certificates/site/")
    page.get_by_role("link", name="Delete").click()
    page.get_by_role("button", name="Delete certificate site").click()
    page.wait_for_url(f"{live_server.url}/t/acme/certificates/")
    assert page.get_by_role("link", name="site", exact=True).count() == 0


def test_a_consumer_and_its_api_key_through_envoy(page, live_server, served):  # noqa: F811
    org, gateway = served, served.gateway
    services.create_route(ACTOR, gateway, "all", {"rules": [{"backendRefs": [{"name": "app"}]}]})
    sign_in_as(page, live_server, org, Role.EDITOR)

    page.goto(f"{live_server.url}/t/acme/consumers/")
    page.get_by_role("link", name="New consumer").click()
    page.get_by_label("Name", exact=True).fill("mobile")
    page.get_by_label("Description").fill("the iOS app")
    page.get_by_role("button", name="Create consumer").click()
    page.wait_for_url(f"{live_server.url}/t/acme/consumers/mobile/")
    services.create_policy(ACTOR, gateway, "keys", "SecurityPolicy", {
        "targetRefs": [{"kind": "Gateway", "name": "edge"}],
        "apiKeyAuth": {"credentialRefs": [{"kind": "Consumer", "name": "mobile"}],
                       "extractFrom": [{"headers": ["x-api-key"]}]},
    })  # fmt: skip
    applied(page, org)
    answers(gateway, "/", 401)

    # A key, shown once: a reload of the consumer's page does not show it again.
    page.goto(f"{live_server.url}/t/acme/consumers/mobile/")
    with page.expect_navigation():
        page.get_by_role("button", name="Create API key").click()
    key = page.get_by_role("textbox", name="new API key").input_value()
    assert len(key) >= 32
    page.goto(f"{live_server.url}/t/acme/consumers/mobile/")
    assert key not in page.content()
    applied(page, org)
    answers(gateway, "/", 200, {"x-api-key": key})
    seen = requests.get(url_of(gateway), headers={"x-api-key": key}, timeout=5).json()
    assert seen["headers"]["x-gantry-consumer"] == "mobile"

    # The key deleted: Envoy refuses it.
    page.goto(f"{live_server.url}/t/acme/consumers/mobile/")
    page.get_by_role("link", name=re.compile(r"^Delete credential")).click()
    page.get_by_role("button", name=re.compile(r"^Delete credential")).click()
    page.wait_for_url(f"{live_server.url}/t/acme/consumers/mobile/")
    applied(page, org)
    answers(gateway, "/", 401, {"x-api-key": key})


def test_a_gateway_scaled_up_and_down(page, live_server, served):  # noqa: F811
    org, gateway = served, served.gateway
    sign_in_as(page, live_server, org, Role.EDITOR)
    for replicas in (2, 1):
        page.goto(f"{live_server.url}/t/acme/gateways/edge/scale/")
        page.get_by_label("Replicas").fill(str(replicas))
        page.get_by_role("button", name="Scale").click()
        page.wait_for_url(f"{live_server.url}/t/acme/gateways/edge/")
        applied(page, org)
        wait_for(
            lambda n=replicas: Gateway.objects.get(pk=gateway.pk).status.get("replicas", {})
            == {"desired": n, "ready": n},
            timeout=30, interval=0.1, message=f"{replicas} replicas ready",
        )  # fmt: skip
        page.reload()
        page.wait_for_selector('#gateway-status[data-settled="true"]', timeout=30_000)
        assert re.search(rf"\b{replicas}\s*/\s*{replicas}\b|{replicas} of {replicas}",
                         page.locator("#gateway-status").inner_text()), \
            page.locator("#gateway-status").inner_text()  # fmt: skip
    assert ConfigRevision.objects.filter(gateway=gateway).exists()


def test_a_grpc_route_created_changed_and_deleted_with_real_grpc_calls(page, live_server, served):  # noqa: F811
    """A GRPCRoute written in the console as its spec: real grpcio calls through the gateway go
    where it says, follow its change, and are refused once it is deleted."""
    import grpc

    from tests.provisioning.grpc_servers import EchoServer, backend_of, call

    org, gateway = served, served.gateway
    first, second = EchoServer("first"), EchoServer("second")
    try:
        services.create_backend(ACTOR, org.tenant, "rpc-first", first.backend())
        services.create_backend(ACTOR, org.tenant, "rpc-second", second.backend())
        port = int(url_of(gateway).rsplit(":", 1)[1].strip("/"))
        sign_in_as(page, live_server, org, Role.EDITOR)

        page.goto(f"{live_server.url}/t/acme/gateways/edge/routes/")
        page.get_by_role("link", name="New gRPC route").click()
        page.get_by_label("Name", exact=True).fill("greeter")
        page.get_by_label("Whole spec (YAML or JSON)").fill(
            "hostnames: [rpc.example.com]\n"
            "rules:\n"
            "- matches:\n  - method: {service: gantry.test.Echo, method: Say}\n"
            "  backendRefs: [{name: rpc-first}]\n"
        )
        page.get_by_role("button", name="Create from spec").click()
        page.wait_for_url(f"{live_server.url}/t/acme/gateways/edge/routes/greeter/")
        assert "GRPCRoute" in page.locator("header.object-header").inner_text()
        applied(page, org)

        def answered_by(name: str) -> None:
            def check():
                try:
                    answer, _ = call(port, "rpc.example.com", "/gantry.test.Echo/Say")
                except grpc.RpcError:
                    return False
                return backend_of(answer) == name

            wait_for(check, timeout=30, interval=0.2, message=f"Say answered by {name}")

        answered_by("first")
        with pytest.raises(grpc.RpcError) as unmatched:
            call(port, "rpc.example.com", "/gantry.test.Echo/Shout")
        assert unmatched.value.code() == grpc.StatusCode.UNIMPLEMENTED

        page.goto(f"{live_server.url}/t/acme/gateways/edge/routes/greeter/edit/")
        spec = page.get_by_label("Whole spec (YAML or JSON)")
        spec.fill(spec.input_value().replace("rpc-first", "rpc-second"))
        page.get_by_role("button", name="Save spec").click()
        page.wait_for_url(f"{live_server.url}/t/acme/gateways/edge/routes/greeter/")
        applied(page, org)
        answered_by("second")

        page.goto(f"{live_server.url}/t/acme/gateways/edge/routes/greeter/")
        page.get_by_role("link", name="Delete").click()
        page.get_by_role("button", name="Delete route greeter").click()
        page.wait_for_url(f"{live_server.url}/t/acme/gateways/edge/routes/")
        applied(page, org)

        def refused():
            try:
                call(port, "rpc.example.com", "/gantry.test.Echo/Say")
            except grpc.RpcError:
                return True
            return False

        wait_for(refused, timeout=30, interval=0.2, message="Say refused once deleted")
    finally:
        first.close()
        second.close()

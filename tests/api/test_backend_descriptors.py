"""A backend's gRPC descriptor set (for gRPC-JSON transcoding): checked by building it, size
limited, only on HTTP/2 backends; each refusal names ``spec.grpcDescriptorSet``, nothing saved."""

import base64

import pytest
from google.protobuf import descriptor_pb2

from gateways.models import Backend
from tenants.roles import Role
from tests.provisioning.test_grpc_json import descriptor_set, shop_file

URL = "/api/v1/tenants/acme/backends/"
ENDPOINTS = [{"ip": {"address": "10.0.0.1", "port": 50051}}]


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def without_imports() -> str:
    files = descriptor_pb2.FileDescriptorSet()
    files.file.append(shop_file())  # imports google/api/annotations.proto, not included
    return b64(files.SerializeToString())


def no_service() -> str:
    files = descriptor_pb2.FileDescriptorSet()
    files.file.add(name="empty.proto", package="x")
    return b64(files.SerializeToString())


@pytest.fixture
def editor(org):
    return org.client(Role.EDITOR)


def test_a_descriptor_set_is_stored_on_a_grpc_backend(editor):
    spec = {"endpoints": ENDPOINTS, "appProtocol": "gRPC", "grpcDescriptorSet": descriptor_set()}
    response = editor.post(URL, {"name": "shop", "spec": spec}, format="json")
    assert response.status_code == 202, response.content
    assert response.json()["spec"]["grpcDescriptorSet"] == spec["grpcDescriptorSet"]


@pytest.mark.parametrize(
    ("value", "protocol", "message"),
    [
        ("not base64!", "gRPC", "must be base64"),
        (b64(b"\xff\xff\xff"), "gRPC", "is not a serialized protobuf FileDescriptorSet"),
        (without_imports(), "gRPC", "does not build"),
        (no_service(), "gRPC", "defines no service"),
        (b64(b"\x00" * 70_000), "gRPC", "no more than"),
        (descriptor_set(), "HTTP/1.1", "needs appProtocol gRPC"),
    ],
)
def test_bad_descriptor_sets_are_refused_at_their_field(editor, value, protocol, message):
    spec = {"endpoints": ENDPOINTS, "appProtocol": protocol, "grpcDescriptorSet": value}
    response = editor.post(URL, {"name": "shop", "spec": spec}, format="json")
    assert response.status_code == 400, response.content
    fields = {f["path"]: f["message"] for f in response.json()["error"]["fields"]}
    assert message in fields.get("spec.grpcDescriptorSet", ""), fields
    assert not Backend.objects.exists()

"""gRPC-JSON transcoding through a real Envoy: a REST client calls a real grpcio server by the
method's google.api.http annotation (through an HTTPRoute) and by the default
``POST /<service>/<method>`` mapping (through a GRPCRoute), and gets JSON back; gRPC errors come
back as HTTP statuses. The descriptor set is built in code, imports included."""

import base64

import grpc
import pytest
import requests
from google.api import annotations_pb2, http_pb2
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

from provisioning.envoy import validate_warm
from provisioning.ir.build import DesiredState, gateway_ir
from provisioning.translate import translate
from tests.provisioning.harness import running_envoy

pytestmark = pytest.mark.slow


def shop_file() -> descriptor_pb2.FileDescriptorProto:
    file = descriptor_pb2.FileDescriptorProto(
        name="gantry/shop.proto", package="gantry.shop", syntax="proto3",
        dependency=["google/api/annotations.proto"],
    )  # fmt: skip
    string, int32 = (descriptor_pb2.FieldDescriptorProto.TYPE_STRING,
                     descriptor_pb2.FieldDescriptorProto.TYPE_INT32)  # fmt: skip
    optional = descriptor_pb2.FieldDescriptorProto.LABEL_OPTIONAL
    request = file.message_type.add(name="GetItemRequest")
    request.field.add(name="id", number=1, type=string, label=optional, json_name="id")
    item = file.message_type.add(name="Item")
    item.field.add(name="id", number=1, type=string, label=optional, json_name="id")
    item.field.add(name="name", number=2, type=string, label=optional, json_name="name")
    item.field.add(name="stock", number=3, type=int32, label=optional, json_name="stock")
    service = file.service.add(name="Shop")
    method = service.method.add(name="GetItem", input_type=".gantry.shop.GetItemRequest",
                                output_type=".gantry.shop.Item")  # fmt: skip
    method.options.Extensions[annotations_pb2.http].CopyFrom(
        http_pb2.HttpRule(get="/v1/items/{id}")
    )
    # No annotation: REST clients call it as POST /gantry.shop.Shop/Peek with a JSON body.
    service.method.add(name="Peek", input_type=".gantry.shop.GetItemRequest",
                       output_type=".gantry.shop.Item")  # fmt: skip
    return file


def descriptor_set() -> str:
    files = descriptor_pb2.FileDescriptorSet()
    for module in (descriptor_pb2, http_pb2, annotations_pb2):
        files.file.add().MergeFromString(module.DESCRIPTOR.serialized_pb)
    files.file.append(shop_file())
    return base64.b64encode(files.SerializeToString()).decode()


class ShopServer:
    def __init__(self):
        from concurrent import futures

        pool = descriptor_pool.DescriptorPool()
        for module in (descriptor_pb2, http_pb2, annotations_pb2):
            pool.AddSerializedFile(module.DESCRIPTOR.serialized_pb)
        pool.Add(shop_file())
        self.request = message_factory.GetMessageClass(
            pool.FindMessageTypeByName("gantry.shop.GetItemRequest"))  # fmt: skip
        self.item = message_factory.GetMessageClass(pool.FindMessageTypeByName("gantry.shop.Item"))

        def get_item(request, context):
            if request.id == "missing":
                context.abort(grpc.StatusCode.NOT_FOUND, "no such item")
            return self.item(id=request.id, name=f"item {request.id}", stock=7)

        unary = grpc.unary_unary_rpc_method_handler(
            get_item, request_deserializer=self.request.FromString,
            response_serializer=self.item.SerializeToString)  # fmt: skip
        handler = grpc.method_handlers_generic_handler(
            "gantry.shop.Shop", {"GetItem": unary, "Peek": unary}
        )
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        self.server.add_generic_rpc_handlers((handler,))
        self.port = self.server.add_insecure_port("127.0.0.1:0")
        self.server.start()


def state(port: int) -> DesiredState:
    backend = {"appProtocol": "gRPC", "grpcDescriptorSet": descriptor_set(),
               "endpoints": [{"ip": {"address": "127.0.0.1", "port": port}}]}  # fmt: skip
    return DesiredState(
        tenant="acme",
        gateway="edge",
        spec={"listeners": [{"name": "http", "protocol": "HTTP", "port": 80}]},
        routes=[
            {"name": "rest", "spec": {"hostnames": ["rest.test"], "rules": [{
                "matches": [{"path": {"type": "PathPrefix", "value": "/v1/items"}}],
                "backendRefs": [{"name": "shop"}]}]}},
            {"name": "rpc", "kind": "GRPCRoute", "spec": {"hostnames": ["rpc.test"], "rules": [{
                "matches": [{"method": {"service": "gantry.shop.Shop"}}],
                "backendRefs": [{"name": "shop"}]}]}},
        ],
        backends={"shop": backend},
    )  # fmt: skip


def test_the_xds_server_can_send_it():
    """The transcoder's config (descriptor bytes included) goes through the xDS encoding: a
    warm Envoy fed over ADS accepts it."""
    assert validate_warm(translate(gateway_ir(state(50051)))).ok


@pytest.fixture(scope="module")
def gateway():
    shop = ShopServer()
    with running_envoy(state(shop.port)) as ports:
        yield f"http://127.0.0.1:{ports[80]}"
    shop.server.stop(None)


def test_rest_call_by_its_http_annotation(gateway):
    answer = requests.get(f"{gateway}/v1/items/42", headers={"Host": "rest.test"}, timeout=5)
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("application/json")
    assert answer.json() == {"id": "42", "name": "item 42", "stock": 7}


def test_rest_call_by_the_default_mapping(gateway):
    """A method without an annotation: POST /<service>/<method> with its request as JSON."""
    answer = requests.post(f"{gateway}/gantry.shop.Shop/Peek", json={"id": "9"},
                           headers={"Host": "rpc.test"}, timeout=5)  # fmt: skip
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"id": "9", "name": "item 9", "stock": 7}


def test_grpc_errors_become_http_statuses(gateway):
    answer = requests.get(f"{gateway}/v1/items/missing", headers={"Host": "rest.test"}, timeout=5)
    assert answer.status_code == 404
    assert answer.json() == {"code": 5, "message": "no such item", "details": []}


def test_grpc_clients_still_reach_the_backend(gateway):
    port = int(gateway.rsplit(":", 1)[1])
    options = [("grpc.default_authority", "rpc.test")]
    shop = ShopServer.__new__(ShopServer)  # only for its message classes
    ShopServer.__init__(shop)
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}", options=options) as channel:
            call = channel.unary_unary("/gantry.shop.Shop/GetItem",
                                       request_serializer=shop.request.SerializeToString,
                                       response_deserializer=shop.item.FromString)  # fmt: skip
            assert call(shop.request(id="5"), timeout=5).name == "item 5"
    finally:
        shop.server.stop(None)

"""A gRPC client that knows no .proto of Tandem's, as grpcurl would be:
grpc.health.v1 Check (its two messages are one varint field each, encoded
here by hand) and server reflection (grpc.reflection.v1alpha), which hands
over the API's file descriptors; the API's messages are then built from them
with python3-protobuf, and a method is called by its reflected name.

Debian's python3-grpcio has the channel; neither grpcio-health-checking nor
grpcio-reflection is packaged, hence the hand-made wire bytes below.
"""
import grpc
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

HEALTH = {0: "UNKNOWN", 1: "SERVING", 2: "NOT_SERVING", 3: "SERVICE_UNKNOWN"}


def _varint(n):
    out = b""
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out += bytes([b | 0x80])
        else:
            return out + bytes([b])


def _field(num, payload):
    """A length-delimited field."""
    return _varint(num << 3 | 2) + _varint(len(payload)) + payload


def _fields(data):
    """(number, value) of each field of a message: bytes for length-delimited, int for varints."""
    i = 0
    while i < len(data):
        key, i = _read_varint(data, i)
        num, wire = key >> 3, key & 7
        if wire == 0:
            v, i = _read_varint(data, i)
        elif wire == 2:
            n, i = _read_varint(data, i)
            v, i = data[i:i + n], i + n
        else:
            raise ValueError(f"wire type {wire}")
        yield num, v


def _read_varint(data, i):
    n = shift = 0
    while True:
        b = data[i]
        i += 1
        n |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            return n, i


def channel(api):
    """api: 'unix:/path' as the daemon's [api] listen."""
    return grpc.insecure_channel(api)


def health(api, service="", timeout=5):
    with channel(api) as ch:
        call = ch.unary_unary("/grpc.health.v1.Health/Check",
                              request_serializer=lambda x: x, response_deserializer=lambda x: x)
        reply = call(_field(1, service.encode()) if service else b"", timeout=timeout)
    status = dict(_fields(reply)).get(1, 0)
    return HEALTH[status]


def _reflect(ch, request, timeout):
    call = ch.stream_stream("/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
                            request_serializer=lambda x: x, response_deserializer=lambda x: x)
    return [dict(_fields(r)) for r in call(iter([request]), timeout=timeout)][0]


def list_services(api, timeout=5):
    with channel(api) as ch:
        r = _reflect(ch, _field(7, b"*"), timeout)  # list_services
    services = []
    for num, v in _fields(r[6]):  # list_services_response
        if num == 1:
            services.append(dict(_fields(v))[1].decode())
    return sorted(services)


def call_by_reflection(api, method, timeout=5, **fields):
    """Calls '<package>.<Service>/<Method>' with a request built from the
    descriptors the server hands over; returns the reply as a message."""
    service, name = method.split("/")
    with channel(api) as ch:
        r = _reflect(ch, _field(4, service.encode()), timeout)  # file_containing_symbol
        files = [descriptor_pb2.FileDescriptorProto.FromString(v)
                 for num, v in _fields(r[4]) if num == 1]  # file_descriptor_response
        pool = descriptor_pool.DescriptorPool()
        pending = list(files)
        for _ in range(len(files) + 1):  # dependencies first, in as many rounds as files
            for f in list(pending):
                try:
                    pool.Add(f)
                    pending.remove(f)
                except Exception:  # a dependency not added yet
                    continue
        assert not pending, [f.name for f in pending]
        sd = pool.FindServiceByName(service)
        md = sd.methods_by_name[name]
        factory = message_factory.MessageFactory(pool)
        req_cls = factory.GetPrototype(md.input_type)
        resp_cls = factory.GetPrototype(md.output_type)
        call = ch.unary_unary(f"/{service}/{name}", request_serializer=lambda m: m.SerializeToString(),
                              response_deserializer=resp_cls.FromString)
        return call(req_cls(**fields), timeout=timeout)

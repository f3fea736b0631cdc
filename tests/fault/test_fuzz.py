"""Fuzzing the public RPCs of a real head node: random bytes as requests, and random
well-formed messages with hostile values (huge, negative, NUL, unicode, unknown enums).

The head node must answer every call with a status, never crash, never answer with our
"internal error" (a bug that escaped validation), and keep its store sound: after the run
it is restarted and must load everything back. `make test` runs a short form;
`make fuzz` a long one (SHOAL_FUZZ_EXAMPLES inputs per kind, default 3000 there).
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import grpc
import pytest
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shoal.client import Client, task_spec
from shoal.local import LocalCluster
from shoal.v1 import admin_pb2, jobs_pb2, templates_pb2

pytestmark = pytest.mark.cluster

EXAMPLES = int(os.environ.get("SHOAL_FUZZ_EXAMPLES", "120"))
SERVICES = [jobs_pb2.DESCRIPTOR.services_by_name["JobService"], admin_pb2.DESCRIPTOR.services_by_name["AdminService"],
            templates_pb2.DESCRIPTOR.services_by_name["TemplateService"]]
UNARY = [(f"/{s.full_name}/{m.name}", m) for s in SERVICES for m in s.methods
         if not m.client_streaming and not m.server_streaming]
STREAMING = [(f"/{s.full_name}/{m.name}", m) for s in SERVICES for m in s.methods if m.server_streaming]
# Node management would drain the fuzzing cluster's only node: fuzz those as a non-admin.
USER_METADATA = (("shoal-user", "fuzzer"),)
COUNTS = {"bytes": 0, "messages": 0}

TEXT = st.one_of(st.text(max_size=40), st.sampled_from(["", "\0", "a" * 5000, "../../etc/passwd", "*", "💥", " "]))
INTS = st.one_of(st.integers(-3, 3), st.integers(-(2 ** 31), 2 ** 31 - 1), st.sampled_from([0, 1, 2 ** 31 - 1]))
INTS64 = st.one_of(INTS, st.integers(-(2 ** 63), 2 ** 63 - 1))


def message(descriptor, depth: int = 0) -> st.SearchStrategy[Message]:  # type: ignore[no-untyped-def]
    """Random messages of a type: each field set or not, to values hostile or plain."""
    from google.protobuf import message_factory

    cls = message_factory.GetMessageClass(descriptor)

    @st.composite
    def build(draw) -> Message:  # type: ignore[no-untyped-def]
        msg = cls()
        for f in descriptor.fields:
            if not draw(st.booleans()):
                continue
            repeated = f.is_repeated
            if f.message_type is not None and f.message_type.GetOptions().map_entry:
                for _ in range(draw(st.integers(0, 3))):
                    key, value = f.message_type.fields_by_name["key"], f.message_type.fields_by_name["value"]
                    k, v = draw(_scalar(key)), draw(_scalar(value))
                    getattr(msg, f.name)[k] = v
                continue
            if f.message_type is not None:
                if depth > 3:
                    continue
                count = draw(st.integers(0, 3)) if repeated else 1
                for _ in range(count):
                    sub = draw(message(f.message_type, depth + 1))
                    (getattr(msg, f.name).add() if repeated else getattr(msg, f.name)).CopyFrom(sub)
                continue
            values = draw(st.lists(_scalar(f), max_size=3)) if repeated else [draw(_scalar(f))]
            if repeated:
                getattr(msg, f.name).extend(values)
            else:
                setattr(msg, f.name, values[0])
        return msg

    return build()


def _scalar(f: FieldDescriptor) -> st.SearchStrategy:
    t = f.type
    if t == FieldDescriptor.TYPE_STRING:
        return TEXT
    if t == FieldDescriptor.TYPE_BYTES:
        return st.binary(max_size=64)
    if t == FieldDescriptor.TYPE_BOOL:
        return st.booleans()
    if t in (FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FLOAT):
        return st.floats(allow_nan=False, width=32)
    if t == FieldDescriptor.TYPE_ENUM:
        return st.integers(-2, 12)
    if t in (FieldDescriptor.TYPE_UINT32, FieldDescriptor.TYPE_FIXED32):
        return st.integers(0, 2 ** 32 - 1)
    if t in (FieldDescriptor.TYPE_UINT64, FieldDescriptor.TYPE_FIXED64):
        return st.integers(0, 2 ** 64 - 1)
    if t in (FieldDescriptor.TYPE_INT64, FieldDescriptor.TYPE_SINT64, FieldDescriptor.TYPE_SFIXED64):
        return INTS64
    return INTS


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    c = LocalCluster(tmp_path_factory.mktemp("fuzz"), nodes=1, cores=2, head_args=["--admin", "someone-else"])
    with c:
        yield c


def answered(call, request: object, streaming: bool = False) -> None:  # type: ignore[no-untyped-def]
    try:
        # A watch or a followed output may rightly wait for ever: give streams a short deadline.
        result = call(request, timeout=0.5 if streaming else 15, metadata=USER_METADATA)
        if hasattr(result, "__iter__") and not isinstance(result, (bytes, Message)):
            for _ in zip(range(3), result):  # a stream: a few items are enough
                pass
            result.cancel()
    except grpc.RpcError as e:
        code = e.code()  # type: ignore[attr-defined]
        assert code not in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.UNKNOWN), e
        assert not (code == grpc.StatusCode.INTERNAL and "internal error in" in (e.details() or "")), \
            f"a bug escaped: {e.details()}"  # type: ignore[attr-defined]
        if code == grpc.StatusCode.DEADLINE_EXCEEDED:
            return  # a follow=True stream that waits for output that never comes: fine


def test_random_bytes_get_a_status(cluster: LocalCluster) -> None:
    channel = grpc.insecure_channel(cluster.address)
    calls = [(channel.unary_unary(path, request_serializer=None, response_deserializer=None)) for path, _ in UNARY]

    @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
    @given(st.sampled_from(range(len(calls))), st.binary(max_size=512))
    def run(i: int, data: bytes) -> None:
        COUNTS["bytes"] += 1
        answered(calls[i], data)

    run()
    channel.close()
    assert cluster.head is not None and cluster.head.poll() is None, "the head node died"


def test_random_messages_get_a_status_and_the_store_stays_sound(cluster: LocalCluster) -> None:
    with Client(cluster.address) as client:
        seeds = [client.submit(jobs_pb2.JobSpec(name="seed", tasks=[task_spec("true")])) for _ in range(2)]
    channel = grpc.insecure_channel(cluster.address)
    methods = UNARY + STREAMING
    calls = [channel.unary_unary(path, request_serializer=m.input_type._concrete_class.SerializeToString,
                                 response_deserializer=None) if not m.server_streaming else
             channel.unary_stream(path, request_serializer=m.input_type._concrete_class.SerializeToString,
                                  response_deserializer=None)
             for path, m in methods]

    @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
    @given(st.data())
    def run(data: st.DataObject) -> None:
        i = data.draw(st.integers(0, len(methods) - 1))
        request = data.draw(message(methods[i][1].input_type))
        if data.draw(st.booleans()) and "job_id" in request.DESCRIPTOR.fields_by_name:
            request.job_id = data.draw(st.sampled_from(seeds))  # aim at jobs that exist, too
        COUNTS["messages"] += 1
        answered(calls[i], request, methods[i][1].server_streaming)

    run()
    channel.close()
    assert cluster.head is not None and cluster.head.poll() is None, "the head node died"
    print(f"\nfuzz: {COUNTS['bytes']} random byte strings and {COUNTS['messages']} random messages, no crash")
    # The store is sound: a restarted head node loads everything back and answers.
    with Client(cluster.address) as client:
        before = sorted((j.id, j.state) for j in client.list_jobs())
    cluster.kill_head(0)
    cluster.start_head(0)
    with Client(cluster.address) as client:
        after = sorted((j.id, j.state) for j in client.list_jobs())
        assert [j for j, _ in after] == [j for j, _ in before]
        assert client.wait_job(client.submit(jobs_pb2.JobSpec(tasks=[task_spec("true")]))).state == \
            jobs_pb2.JOB_STATE_FINISHED

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
from pathlib import Path

import grpc
import pytest
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shoal.client import Client, task_spec
from shoal.local import LocalCluster
from shoal.v1 import admin_pb2, jobs_pb2, nodes_pb2, templates_pb2

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


# -- oversized and deeply nested inputs against a TLS head (issue 33, item 4) ----------------------

BIG = 3 << 20  # a multi-MiB string (within every method's bound)
HUGE = 12 << 20  # past the bound of methods that carry no job or template (4 MiB)
ALL_SERVICES = [*SERVICES, nodes_pb2.DESCRIPTOR.services_by_name["NodeService"]]


def _rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError(f"no VmRSS for process {pid}")


def _fill(msg: Message, how: str, size: int, depth: int = 0) -> None:
    """Set every field of `msg` (and of its messages, a few levels down) hostile: a `size`
    string in each string and bytes field ("strings": in the nested ones 64 KiB), or huge
    repeated fields ("repeated")."""
    if depth:
        size = min(size, 64 << 10)
    else:  # a request of at most ~12 MiB: past every small method's bound (4 MiB), within the head's
        strings = sum(f.type in (FieldDescriptor.TYPE_STRING, FieldDescriptor.TYPE_BYTES) for f in msg.DESCRIPTOR.fields)
        size = min(size, (12 << 20) // max(1, strings))
    for f in msg.DESCRIPTOR.fields:
        if f.message_type is not None and f.message_type.GetOptions().map_entry:
            if how == "repeated":
                m = getattr(msg, f.name)
                for i in range(20_000 if depth == 0 else 10):
                    key = f"k{i}" if f.message_type.fields_by_name["key"].type == FieldDescriptor.TYPE_STRING else i
                    value = f.message_type.fields_by_name["value"]
                    if value.message_type is None:
                        m[key] = "v" if value.type == FieldDescriptor.TYPE_STRING else 1
            continue
        if f.message_type is not None:
            if depth > 3 or f.message_type.full_name.startswith("google.protobuf."):
                continue
            if f.is_repeated:
                count = 2_000 if how == "repeated" and depth == 0 else 1  # past every list limit (1,000)
                items = getattr(msg, f.name)
                first = items.add()
                _fill(first, how, size, depth + 1)
                if count > 1:
                    items.extend([first] * (count - 1))
            else:
                _fill(getattr(msg, f.name), how, size, depth + 1)
            continue
        if f.type == FieldDescriptor.TYPE_STRING:
            value: object = "s" * size if how == "strings" else "r"
        elif f.type == FieldDescriptor.TYPE_BYTES:
            value = b"b" * size if how == "strings" else b"r"
        elif f.type == FieldDescriptor.TYPE_BOOL:
            value = True
        elif f.type == FieldDescriptor.TYPE_ENUM:
            value = 1
        elif f.type in (FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FLOAT):
            value = 1.0
        else:
            value = 1
        if f.is_repeated:
            getattr(msg, f.name).extend([value] * ((200_000 if depth == 0 else 10) if how == "repeated" else 1))
        else:
            setattr(msg, f.name, value)


def _nested(depth: int) -> bytes:
    """An unknown field nested `depth` groups deep (the parser recurses into groups)."""
    start, end = bytes([0xC3, 0x3E]), bytes([0xC4, 0x3E])  # field 1000, start and end group
    return start * depth + end * depth


def _inputs(method) -> Iterator[tuple[str, bytes]]:  # type: ignore[no-untyped-def]
    from google.protobuf import message_factory

    cls = message_factory.GetMessageClass(method.input_type)
    for how, size in (("strings", BIG), ("strings", HUGE), ("repeated", 1)):
        msg = cls()
        _fill(msg, how, size)
        yield f"{how}-{size}", msg.SerializeToString()
    yield "nested", _nested(5000)


@pytest.fixture(scope="module")
def secure_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    c = LocalCluster(tmp_path_factory.mktemp("fuzz-tls"), nodes=1, cores=2, secure=True,
                     head_args=["--admin", "someone-else"])
    with c:
        yield c


def _secure_channel(cluster: LocalCluster, files: object) -> grpc.Channel:
    ca, cert, key = files.read()  # type: ignore[attr-defined]
    return grpc.secure_channel(cluster.address, grpc.ssl_channel_credentials(ca, key, cert),
                               options=[("grpc.max_send_message_length", 64 << 20)])


# Rounds of every method after the first (a round is ~18 s here): one in the suite, ten for
# `make fuzz` (SHOAL_FUZZ_EXAMPLES=3000).
OVERSIZED_ROUNDS = max(1, min(10, EXAMPLES // 300))


@pytest.mark.timeout(90 + 40 * OVERSIZED_ROUNDS)
def test_oversized_and_nested_inputs_keep_a_tls_head_flat_and_sound(secure_cluster: LocalCluster) -> None:
    """Every method of every service, anonymous and as a User: multi-MiB strings, huge repeated
    fields, deeply nested messages. Each gets a status; the head's RSS stays within 100 MiB of
    its start; it still answers; what it stored is intact."""
    import time

    from common import tls
    from shoal.v1 import templates_pb2

    cluster = secure_cluster
    rounds = OVERSIZED_ROUNDS
    user_files = cluster.user_tls("fuzzer")
    admin_files = cluster.user_tls("fuzz-admin", "Admin")
    with Client(cluster.address, tls=user_files) as user:  # type: ignore[arg-type]
        seed = user.submit(jobs_pb2.JobSpec(name="seed", tasks=[task_spec("true")]))
        user.wait_job(seed)
        seed_before = user.get_job(seed)
    with Client(cluster.address, tls=admin_files) as admin:  # type: ignore[arg-type]
        admin.create_template(templates_pb2.Template(name="seed-template", task=task_spec("", cores=1)))
        template_before = admin.get_template("seed-template")
    callers = {"anonymous": _secure_channel(cluster, tls.Files(cluster.tls_dir / tls.CA_CERT)),
               "user": _secure_channel(cluster, user_files)}
    methods = [(f"/{s.full_name}/{m.name}", m) for s in ALL_SERVICES for m in s.methods]
    pid = cluster.head.pid  # type: ignore[union-attr]
    cold = _rss_mib(pid)
    calls, codes = 0, {}  # type: ignore[var-annotated]
    began = time.monotonic()
    start = peak = 0.0
    # The first round (not held to the bound) takes the head to its working size: gRPC's and
    # glibc's buffers for a 12 MiB request, upb's for a parsed one (~+115 MiB here). Every
    # round after it must stay within 100 MiB of where the first left it: flat under the loop.
    for i in range(rounds + 1):
        if i == 1:
            start = peak = _rss_mib(pid)
        for who, channel in callers.items():
            for path, m in methods:
                kinds = (m.client_streaming, m.server_streaming)
                for kind, data in _inputs(m):
                    if kinds == (False, False):
                        call = channel.unary_unary(path, request_serializer=None, response_deserializer=None)
                        request: object = data
                    elif kinds == (False, True):
                        call = channel.unary_stream(path, request_serializer=None, response_deserializer=None)
                        request = data
                    else:
                        call = channel.stream_stream(path, request_serializer=None, response_deserializer=None)
                        request = iter([data])
                    try:
                        result = call(request, timeout=0.5 if m.server_streaming else 20)
                        if m.server_streaming:
                            for _ in zip(range(3), result):
                                pass
                            result.cancel()
                        code = "OK"
                    except grpc.RpcError as e:
                        status, details = e.code(), e.details() or ""  # type: ignore[attr-defined]
                        code = status.name
                        assert status not in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.UNKNOWN), \
                            (who, path, kind, details[:300])
                        assert "internal error in" not in details, (who, path, kind, details[:300])
                        assert len(details) <= 1001, (who, path, kind, len(details), details[:300])
                        assert "s" * 201 not in details and "b" * 201 not in details, (who, path, kind, details[:300])
                        if who == "anonymous":
                            # A stream's short deadline may pass while 12 MiB are still on the way in.
                            late = m.server_streaming and status == grpc.StatusCode.DEADLINE_EXCEEDED
                            assert late or status in (grpc.StatusCode.UNAUTHENTICATED,
                                                      grpc.StatusCode.RESOURCE_EXHAUSTED), (path, kind, code, details[:300])
                    calls += 1
                    codes[code] = codes.get(code, 0) + 1
                    if i:
                        peak = max(peak, _rss_mib(pid))
    duration = time.monotonic() - began
    end = _rss_mib(pid)

    for channel in callers.values():
        channel.close()
    print(f"\nfuzz (oversized, TLS): {calls} calls in {duration:.1f}s ({rounds + 1} rounds of {len(methods)} methods"
          f", 2 callers); head RSS cold {cold:.0f} MiB, after the first round {start:.0f}, peak after it {peak:.0f}, "
          f"end {end:.0f}; codes {codes}")
    assert cluster.head is not None and cluster.head.poll() is None, "the head node died"
    assert peak - start < 100 and end - start < 100, f"head RSS went from {start:.0f} MiB to {peak:.0f} (end {end:.0f})"
    with Client(cluster.address, tls=user_files) as user:  # type: ignore[arg-type]
        after = user.get_job(seed)
        assert (after.id, after.state, after.owner, after.name) == \
            (seed_before.id, seed_before.state, seed_before.owner, seed_before.name)
        # A request that happened to be valid may have made a job: each is whole and readable.
        for job in user.list_jobs():
            assert user.get_job(job.id).owner == "fuzzer"
        assert user.wait_job(user.submit(jobs_pb2.JobSpec(tasks=[task_spec("true")]))).state == \
            jobs_pb2.JOB_STATE_FINISHED, "the head still schedules"
    with Client(cluster.address, tls=admin_files) as admin:  # type: ignore[arg-type]
        assert admin.get_template("seed-template") == template_before
        assert [t.name for t in admin.list_templates()] == ["seed-template"]
        assert {n.name for n in admin.list_nodes()} == {"node1"}

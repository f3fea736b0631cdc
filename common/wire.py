"""Protobuf conversions of the types every side shares (task ids, resources, times)."""

from __future__ import annotations

from google.protobuf.timestamp_pb2 import Timestamp

from common.errors import InvalidArgument
from common.ids import TaskId
from common.resources import Resources, generic_of
from shoal.v1 import common_pb2

STREAM_NAMES = {common_pb2.OUTPUT_STREAM_STDOUT: "stdout", common_pb2.OUTPUT_STREAM_STDERR: "stderr",
                common_pb2.OUTPUT_STREAM_UNSPECIFIED: "stdout"}
STREAM_VALUES = {"stdout": common_pb2.OUTPUT_STREAM_STDOUT, "stderr": common_pb2.OUTPUT_STREAM_STDERR}


def task_ref(task: TaskId) -> common_pb2.TaskRef:
    return common_pb2.TaskRef(job_id=task.job, task_id=task.task, instance_id=task.instance)


def task_id(ref: common_pb2.TaskRef) -> TaskId:
    return TaskId(ref.job_id, ref.task_id, ref.instance_id)


def resources_msg(r: Resources) -> common_pb2.Resources:
    return common_pb2.Resources(cores=r.cores, memory_mb=r.memory_mb, generic=dict(r.generic))


def resources(msg: common_pb2.Resources) -> Resources:
    return Resources(msg.cores, msg.memory_mb, generic_of(dict(msg.generic)))


def timestamp(seconds: float | None) -> Timestamp | None:
    if seconds is None:
        return None
    ts = Timestamp()
    ts.FromNanoseconds(int(seconds * 1e9))
    return ts


def seconds(ts: Timestamp, what: str = "timestamp") -> float:
    """`ts` in seconds since the epoch; InvalidArgument if it is malformed.

    protobuf raises ValueError for nanos outside 0..999,999,999 or a date outside years 1-9999;
    whoever sent the message made it, so it is their argument that is wrong, not our bug."""
    try:
        return ts.ToNanoseconds() / 1e9
    except ValueError:
        raise InvalidArgument(f"{what} is not a valid timestamp (seconds {ts.seconds}, nanos {ts.nanos}): "
                              "nanos must be 0..999999999 and the date within years 1-9999") from None

import datetime

from google.protobuf import duration_pb2 as _duration_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from shoal.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class TaskPhase(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    TASK_PHASE_UNSPECIFIED: _ClassVar[TaskPhase]
    TASK_PHASE_RUNNING: _ClassVar[TaskPhase]
    TASK_PHASE_EXITED: _ClassVar[TaskPhase]
    TASK_PHASE_QUEUED: _ClassVar[TaskPhase]
TASK_PHASE_UNSPECIFIED: TaskPhase
TASK_PHASE_RUNNING: TaskPhase
TASK_PHASE_EXITED: TaskPhase
TASK_PHASE_QUEUED: TaskPhase

class TaskReport(_message.Message):
    __slots__ = ("task", "attempt", "phase", "exit_code", "signal", "error", "stdout_bytes", "stderr_bytes", "runtime_exceeded", "out_of_memory", "fenced")
    TASK_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    PHASE_FIELD_NUMBER: _ClassVar[int]
    EXIT_CODE_FIELD_NUMBER: _ClassVar[int]
    SIGNAL_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    STDOUT_BYTES_FIELD_NUMBER: _ClassVar[int]
    STDERR_BYTES_FIELD_NUMBER: _ClassVar[int]
    RUNTIME_EXCEEDED_FIELD_NUMBER: _ClassVar[int]
    OUT_OF_MEMORY_FIELD_NUMBER: _ClassVar[int]
    FENCED_FIELD_NUMBER: _ClassVar[int]
    task: _common_pb2.TaskRef
    attempt: int
    phase: TaskPhase
    exit_code: int
    signal: int
    error: str
    stdout_bytes: int
    stderr_bytes: int
    runtime_exceeded: bool
    out_of_memory: bool
    fenced: bool
    def __init__(self, task: _Optional[_Union[_common_pb2.TaskRef, _Mapping]] = ..., attempt: _Optional[int] = ..., phase: _Optional[_Union[TaskPhase, str]] = ..., exit_code: _Optional[int] = ..., signal: _Optional[int] = ..., error: _Optional[str] = ..., stdout_bytes: _Optional[int] = ..., stderr_bytes: _Optional[int] = ..., runtime_exceeded: _Optional[bool] = ..., out_of_memory: _Optional[bool] = ..., fenced: _Optional[bool] = ...) -> None: ...

class Hello(_message.Message):
    __slots__ = ("node_name", "instance_id", "capacity", "agent_version", "hostname", "tasks", "groups", "labels", "fresh_state", "condition")
    NODE_NAME_FIELD_NUMBER: _ClassVar[int]
    INSTANCE_ID_FIELD_NUMBER: _ClassVar[int]
    CAPACITY_FIELD_NUMBER: _ClassVar[int]
    AGENT_VERSION_FIELD_NUMBER: _ClassVar[int]
    HOSTNAME_FIELD_NUMBER: _ClassVar[int]
    TASKS_FIELD_NUMBER: _ClassVar[int]
    GROUPS_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    FRESH_STATE_FIELD_NUMBER: _ClassVar[int]
    CONDITION_FIELD_NUMBER: _ClassVar[int]
    node_name: str
    instance_id: str
    capacity: _common_pb2.Resources
    agent_version: str
    hostname: str
    tasks: _containers.RepeatedCompositeFieldContainer[TaskReport]
    groups: _containers.RepeatedScalarFieldContainer[str]
    labels: _containers.RepeatedScalarFieldContainer[str]
    fresh_state: bool
    condition: str
    def __init__(self, node_name: _Optional[str] = ..., instance_id: _Optional[str] = ..., capacity: _Optional[_Union[_common_pb2.Resources, _Mapping]] = ..., agent_version: _Optional[str] = ..., hostname: _Optional[str] = ..., tasks: _Optional[_Iterable[_Union[TaskReport, _Mapping]]] = ..., groups: _Optional[_Iterable[str]] = ..., labels: _Optional[_Iterable[str]] = ..., fresh_state: _Optional[bool] = ..., condition: _Optional[str] = ...) -> None: ...

class Heartbeat(_message.Message):
    __slots__ = ("acked_seq", "tasks", "number", "condition")
    ACKED_SEQ_FIELD_NUMBER: _ClassVar[int]
    TASKS_FIELD_NUMBER: _ClassVar[int]
    NUMBER_FIELD_NUMBER: _ClassVar[int]
    CONDITION_FIELD_NUMBER: _ClassVar[int]
    acked_seq: int
    tasks: _containers.RepeatedCompositeFieldContainer[TaskReport]
    number: int
    condition: str
    def __init__(self, acked_seq: _Optional[int] = ..., tasks: _Optional[_Iterable[_Union[TaskReport, _Mapping]]] = ..., number: _Optional[int] = ..., condition: _Optional[str] = ...) -> None: ...

class HeartbeatAck(_message.Message):
    __slots__ = ("number",)
    NUMBER_FIELD_NUMBER: _ClassVar[int]
    number: int
    def __init__(self, number: _Optional[int] = ...) -> None: ...

class TaskStarted(_message.Message):
    __slots__ = ("task", "attempt", "pid", "time")
    TASK_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    PID_FIELD_NUMBER: _ClassVar[int]
    TIME_FIELD_NUMBER: _ClassVar[int]
    task: _common_pb2.TaskRef
    attempt: int
    pid: int
    time: _timestamp_pb2.Timestamp
    def __init__(self, task: _Optional[_Union[_common_pb2.TaskRef, _Mapping]] = ..., attempt: _Optional[int] = ..., pid: _Optional[int] = ..., time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class TaskOutput(_message.Message):
    __slots__ = ("task", "attempt", "stream", "offset", "data")
    TASK_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    STREAM_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    task: _common_pb2.TaskRef
    attempt: int
    stream: _common_pb2.OutputStream
    offset: int
    data: bytes
    def __init__(self, task: _Optional[_Union[_common_pb2.TaskRef, _Mapping]] = ..., attempt: _Optional[int] = ..., stream: _Optional[_Union[_common_pb2.OutputStream, str]] = ..., offset: _Optional[int] = ..., data: _Optional[bytes] = ...) -> None: ...

class TaskExited(_message.Message):
    __slots__ = ("task", "attempt", "exit_code", "signal", "error", "time", "stdout_bytes", "stderr_bytes", "runtime_exceeded", "out_of_memory", "fenced")
    TASK_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    EXIT_CODE_FIELD_NUMBER: _ClassVar[int]
    SIGNAL_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    TIME_FIELD_NUMBER: _ClassVar[int]
    STDOUT_BYTES_FIELD_NUMBER: _ClassVar[int]
    STDERR_BYTES_FIELD_NUMBER: _ClassVar[int]
    RUNTIME_EXCEEDED_FIELD_NUMBER: _ClassVar[int]
    OUT_OF_MEMORY_FIELD_NUMBER: _ClassVar[int]
    FENCED_FIELD_NUMBER: _ClassVar[int]
    task: _common_pb2.TaskRef
    attempt: int
    exit_code: int
    signal: int
    error: str
    time: _timestamp_pb2.Timestamp
    stdout_bytes: int
    stderr_bytes: int
    runtime_exceeded: bool
    out_of_memory: bool
    fenced: bool
    def __init__(self, task: _Optional[_Union[_common_pb2.TaskRef, _Mapping]] = ..., attempt: _Optional[int] = ..., exit_code: _Optional[int] = ..., signal: _Optional[int] = ..., error: _Optional[str] = ..., time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., stdout_bytes: _Optional[int] = ..., stderr_bytes: _Optional[int] = ..., runtime_exceeded: _Optional[bool] = ..., out_of_memory: _Optional[bool] = ..., fenced: _Optional[bool] = ...) -> None: ...

class AgentMessage(_message.Message):
    __slots__ = ("hello", "heartbeat", "started", "output", "exited", "batch")
    HELLO_FIELD_NUMBER: _ClassVar[int]
    HEARTBEAT_FIELD_NUMBER: _ClassVar[int]
    STARTED_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_FIELD_NUMBER: _ClassVar[int]
    EXITED_FIELD_NUMBER: _ClassVar[int]
    BATCH_FIELD_NUMBER: _ClassVar[int]
    hello: Hello
    heartbeat: Heartbeat
    started: TaskStarted
    output: TaskOutput
    exited: TaskExited
    batch: AgentBatch
    def __init__(self, hello: _Optional[_Union[Hello, _Mapping]] = ..., heartbeat: _Optional[_Union[Heartbeat, _Mapping]] = ..., started: _Optional[_Union[TaskStarted, _Mapping]] = ..., output: _Optional[_Union[TaskOutput, _Mapping]] = ..., exited: _Optional[_Union[TaskExited, _Mapping]] = ..., batch: _Optional[_Union[AgentBatch, _Mapping]] = ...) -> None: ...

class AgentBatch(_message.Message):
    __slots__ = ("items",)
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    items: _containers.RepeatedCompositeFieldContainer[AgentMessage]
    def __init__(self, items: _Optional[_Iterable[_Union[AgentMessage, _Mapping]]] = ...) -> None: ...

class OutputResume(_message.Message):
    __slots__ = ("task", "attempt", "stdout_offset", "stderr_offset")
    TASK_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    STDOUT_OFFSET_FIELD_NUMBER: _ClassVar[int]
    STDERR_OFFSET_FIELD_NUMBER: _ClassVar[int]
    task: _common_pb2.TaskRef
    attempt: int
    stdout_offset: int
    stderr_offset: int
    def __init__(self, task: _Optional[_Union[_common_pb2.TaskRef, _Mapping]] = ..., attempt: _Optional[int] = ..., stdout_offset: _Optional[int] = ..., stderr_offset: _Optional[int] = ...) -> None: ...

class Welcome(_message.Message):
    __slots__ = ("heartbeat_interval", "resume", "node_token", "task_lease", "kill_grace", "stall_grace")
    HEARTBEAT_INTERVAL_FIELD_NUMBER: _ClassVar[int]
    RESUME_FIELD_NUMBER: _ClassVar[int]
    NODE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    TASK_LEASE_FIELD_NUMBER: _ClassVar[int]
    KILL_GRACE_FIELD_NUMBER: _ClassVar[int]
    STALL_GRACE_FIELD_NUMBER: _ClassVar[int]
    heartbeat_interval: _duration_pb2.Duration
    resume: _containers.RepeatedCompositeFieldContainer[OutputResume]
    node_token: str
    task_lease: _duration_pb2.Duration
    kill_grace: _duration_pb2.Duration
    stall_grace: _duration_pb2.Duration
    def __init__(self, heartbeat_interval: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., resume: _Optional[_Iterable[_Union[OutputResume, _Mapping]]] = ..., node_token: _Optional[str] = ..., task_lease: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., kill_grace: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., stall_grace: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ...) -> None: ...

class LaunchTask(_message.Message):
    __slots__ = ("task", "attempt", "command_line", "environment", "working_directory", "resources", "owner", "stdin_path", "stdout_path", "stderr_path", "runtime_limit")
    class EnvironmentEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    TASK_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    COMMAND_LINE_FIELD_NUMBER: _ClassVar[int]
    ENVIRONMENT_FIELD_NUMBER: _ClassVar[int]
    WORKING_DIRECTORY_FIELD_NUMBER: _ClassVar[int]
    RESOURCES_FIELD_NUMBER: _ClassVar[int]
    OWNER_FIELD_NUMBER: _ClassVar[int]
    STDIN_PATH_FIELD_NUMBER: _ClassVar[int]
    STDOUT_PATH_FIELD_NUMBER: _ClassVar[int]
    STDERR_PATH_FIELD_NUMBER: _ClassVar[int]
    RUNTIME_LIMIT_FIELD_NUMBER: _ClassVar[int]
    task: _common_pb2.TaskRef
    attempt: int
    command_line: str
    environment: _containers.ScalarMap[str, str]
    working_directory: str
    resources: _common_pb2.Resources
    owner: str
    stdin_path: str
    stdout_path: str
    stderr_path: str
    runtime_limit: _duration_pb2.Duration
    def __init__(self, task: _Optional[_Union[_common_pb2.TaskRef, _Mapping]] = ..., attempt: _Optional[int] = ..., command_line: _Optional[str] = ..., environment: _Optional[_Mapping[str, str]] = ..., working_directory: _Optional[str] = ..., resources: _Optional[_Union[_common_pb2.Resources, _Mapping]] = ..., owner: _Optional[str] = ..., stdin_path: _Optional[str] = ..., stdout_path: _Optional[str] = ..., stderr_path: _Optional[str] = ..., runtime_limit: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ...) -> None: ...

class KillTask(_message.Message):
    __slots__ = ("task", "attempt", "reason")
    TASK_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    task: _common_pb2.TaskRef
    attempt: int
    reason: str
    def __init__(self, task: _Optional[_Union[_common_pb2.TaskRef, _Mapping]] = ..., attempt: _Optional[int] = ..., reason: _Optional[str] = ...) -> None: ...

class ExitAck(_message.Message):
    __slots__ = ("task", "attempt")
    TASK_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    task: _common_pb2.TaskRef
    attempt: int
    def __init__(self, task: _Optional[_Union[_common_pb2.TaskRef, _Mapping]] = ..., attempt: _Optional[int] = ...) -> None: ...

class HeadMessage(_message.Message):
    __slots__ = ("seq", "welcome", "launch", "kill", "exit_ack", "batch", "heartbeat_ack")
    SEQ_FIELD_NUMBER: _ClassVar[int]
    WELCOME_FIELD_NUMBER: _ClassVar[int]
    LAUNCH_FIELD_NUMBER: _ClassVar[int]
    KILL_FIELD_NUMBER: _ClassVar[int]
    EXIT_ACK_FIELD_NUMBER: _ClassVar[int]
    BATCH_FIELD_NUMBER: _ClassVar[int]
    HEARTBEAT_ACK_FIELD_NUMBER: _ClassVar[int]
    seq: int
    welcome: Welcome
    launch: LaunchTask
    kill: KillTask
    exit_ack: ExitAck
    batch: HeadBatch
    heartbeat_ack: HeartbeatAck
    def __init__(self, seq: _Optional[int] = ..., welcome: _Optional[_Union[Welcome, _Mapping]] = ..., launch: _Optional[_Union[LaunchTask, _Mapping]] = ..., kill: _Optional[_Union[KillTask, _Mapping]] = ..., exit_ack: _Optional[_Union[ExitAck, _Mapping]] = ..., batch: _Optional[_Union[HeadBatch, _Mapping]] = ..., heartbeat_ack: _Optional[_Union[HeartbeatAck, _Mapping]] = ...) -> None: ...

class HeadBatch(_message.Message):
    __slots__ = ("items",)
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    items: _containers.RepeatedCompositeFieldContainer[HeadMessage]
    def __init__(self, items: _Optional[_Iterable[_Union[HeadMessage, _Mapping]]] = ...) -> None: ...

import datetime

from google.protobuf import duration_pb2 as _duration_pb2
from google.protobuf import field_mask_pb2 as _field_mask_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from shoal.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class JobState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    JOB_STATE_UNSPECIFIED: _ClassVar[JobState]
    JOB_STATE_CONFIGURING: _ClassVar[JobState]
    JOB_STATE_QUEUED: _ClassVar[JobState]
    JOB_STATE_RUNNING: _ClassVar[JobState]
    JOB_STATE_FINISHED: _ClassVar[JobState]
    JOB_STATE_FAILED: _ClassVar[JobState]
    JOB_STATE_CANCELLED: _ClassVar[JobState]

class TaskState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    TASK_STATE_UNSPECIFIED: _ClassVar[TaskState]
    TASK_STATE_CONFIGURING: _ClassVar[TaskState]
    TASK_STATE_QUEUED: _ClassVar[TaskState]
    TASK_STATE_RUNNING: _ClassVar[TaskState]
    TASK_STATE_FINISHED: _ClassVar[TaskState]
    TASK_STATE_FAILED: _ClassVar[TaskState]
    TASK_STATE_CANCELLED: _ClassVar[TaskState]

class Priority(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PRIORITY_UNSPECIFIED: _ClassVar[Priority]
    PRIORITY_LOWEST: _ClassVar[Priority]
    PRIORITY_BELOW_NORMAL: _ClassVar[Priority]
    PRIORITY_NORMAL: _ClassVar[Priority]
    PRIORITY_ABOVE_NORMAL: _ClassVar[Priority]
    PRIORITY_HIGHEST: _ClassVar[Priority]

class DependencyKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    DEPENDENCY_KIND_UNSPECIFIED: _ClassVar[DependencyKind]
    DEPENDENCY_KIND_AFTER_OK: _ClassVar[DependencyKind]
    DEPENDENCY_KIND_AFTER_ANY: _ClassVar[DependencyKind]
    DEPENDENCY_KIND_AFTER_NOT_OK: _ClassVar[DependencyKind]

class ReservationUnit(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    RESERVATION_UNIT_UNSPECIFIED: _ClassVar[ReservationUnit]
    RESERVATION_UNIT_CORES: _ClassVar[ReservationUnit]
    RESERVATION_UNIT_NODES: _ClassVar[ReservationUnit]

class JobView(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    JOB_VIEW_UNSPECIFIED: _ClassVar[JobView]
    JOB_VIEW_SUMMARY: _ClassVar[JobView]
    JOB_VIEW_FULL: _ClassVar[JobView]

class UsageGrouping(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    USAGE_GROUPING_UNSPECIFIED: _ClassVar[UsageGrouping]
    USAGE_GROUPING_OWNER: _ClassVar[UsageGrouping]
    USAGE_GROUPING_PROJECT: _ClassVar[UsageGrouping]
    USAGE_GROUPING_JOB: _ClassVar[UsageGrouping]
JOB_STATE_UNSPECIFIED: JobState
JOB_STATE_CONFIGURING: JobState
JOB_STATE_QUEUED: JobState
JOB_STATE_RUNNING: JobState
JOB_STATE_FINISHED: JobState
JOB_STATE_FAILED: JobState
JOB_STATE_CANCELLED: JobState
TASK_STATE_UNSPECIFIED: TaskState
TASK_STATE_CONFIGURING: TaskState
TASK_STATE_QUEUED: TaskState
TASK_STATE_RUNNING: TaskState
TASK_STATE_FINISHED: TaskState
TASK_STATE_FAILED: TaskState
TASK_STATE_CANCELLED: TaskState
PRIORITY_UNSPECIFIED: Priority
PRIORITY_LOWEST: Priority
PRIORITY_BELOW_NORMAL: Priority
PRIORITY_NORMAL: Priority
PRIORITY_ABOVE_NORMAL: Priority
PRIORITY_HIGHEST: Priority
DEPENDENCY_KIND_UNSPECIFIED: DependencyKind
DEPENDENCY_KIND_AFTER_OK: DependencyKind
DEPENDENCY_KIND_AFTER_ANY: DependencyKind
DEPENDENCY_KIND_AFTER_NOT_OK: DependencyKind
RESERVATION_UNIT_UNSPECIFIED: ReservationUnit
RESERVATION_UNIT_CORES: ReservationUnit
RESERVATION_UNIT_NODES: ReservationUnit
JOB_VIEW_UNSPECIFIED: JobView
JOB_VIEW_SUMMARY: JobView
JOB_VIEW_FULL: JobView
USAGE_GROUPING_UNSPECIFIED: UsageGrouping
USAGE_GROUPING_OWNER: UsageGrouping
USAGE_GROUPING_PROJECT: UsageGrouping
USAGE_GROUPING_JOB: UsageGrouping

class JobDependency(_message.Message):
    __slots__ = ("kind", "job_id")
    KIND_FIELD_NUMBER: _ClassVar[int]
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    kind: DependencyKind
    job_id: int
    def __init__(self, kind: _Optional[_Union[DependencyKind, str]] = ..., job_id: _Optional[int] = ...) -> None: ...

class ParametricSweep(_message.Message):
    __slots__ = ("start", "end", "step")
    START_FIELD_NUMBER: _ClassVar[int]
    END_FIELD_NUMBER: _ClassVar[int]
    STEP_FIELD_NUMBER: _ClassVar[int]
    start: int
    end: int
    step: int
    def __init__(self, start: _Optional[int] = ..., end: _Optional[int] = ..., step: _Optional[int] = ...) -> None: ...

class TaskSpec(_message.Message):
    __slots__ = ("name", "command_line", "resources", "environment", "working_directory", "max_cores", "stdin_path", "stdout_path", "stderr_path", "depends_on", "runtime_limit", "valid_exit_codes", "rerunnable", "max_retries", "exclusive", "sweep", "instances", "placement", "nodes")
    class EnvironmentEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    NAME_FIELD_NUMBER: _ClassVar[int]
    COMMAND_LINE_FIELD_NUMBER: _ClassVar[int]
    RESOURCES_FIELD_NUMBER: _ClassVar[int]
    ENVIRONMENT_FIELD_NUMBER: _ClassVar[int]
    WORKING_DIRECTORY_FIELD_NUMBER: _ClassVar[int]
    MAX_CORES_FIELD_NUMBER: _ClassVar[int]
    STDIN_PATH_FIELD_NUMBER: _ClassVar[int]
    STDOUT_PATH_FIELD_NUMBER: _ClassVar[int]
    STDERR_PATH_FIELD_NUMBER: _ClassVar[int]
    DEPENDS_ON_FIELD_NUMBER: _ClassVar[int]
    RUNTIME_LIMIT_FIELD_NUMBER: _ClassVar[int]
    VALID_EXIT_CODES_FIELD_NUMBER: _ClassVar[int]
    RERUNNABLE_FIELD_NUMBER: _ClassVar[int]
    MAX_RETRIES_FIELD_NUMBER: _ClassVar[int]
    EXCLUSIVE_FIELD_NUMBER: _ClassVar[int]
    SWEEP_FIELD_NUMBER: _ClassVar[int]
    INSTANCES_FIELD_NUMBER: _ClassVar[int]
    PLACEMENT_FIELD_NUMBER: _ClassVar[int]
    NODES_FIELD_NUMBER: _ClassVar[int]
    name: str
    command_line: str
    resources: _common_pb2.Resources
    environment: _containers.ScalarMap[str, str]
    working_directory: str
    max_cores: int
    stdin_path: str
    stdout_path: str
    stderr_path: str
    depends_on: _containers.RepeatedScalarFieldContainer[str]
    runtime_limit: _duration_pb2.Duration
    valid_exit_codes: str
    rerunnable: bool
    max_retries: int
    exclusive: bool
    sweep: ParametricSweep
    instances: int
    placement: _common_pb2.PlacementConstraints
    nodes: int
    def __init__(self, name: _Optional[str] = ..., command_line: _Optional[str] = ..., resources: _Optional[_Union[_common_pb2.Resources, _Mapping]] = ..., environment: _Optional[_Mapping[str, str]] = ..., working_directory: _Optional[str] = ..., max_cores: _Optional[int] = ..., stdin_path: _Optional[str] = ..., stdout_path: _Optional[str] = ..., stderr_path: _Optional[str] = ..., depends_on: _Optional[_Iterable[str]] = ..., runtime_limit: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., valid_exit_codes: _Optional[str] = ..., rerunnable: _Optional[bool] = ..., max_retries: _Optional[int] = ..., exclusive: _Optional[bool] = ..., sweep: _Optional[_Union[ParametricSweep, _Mapping]] = ..., instances: _Optional[int] = ..., placement: _Optional[_Union[_common_pb2.PlacementConstraints, _Mapping]] = ..., nodes: _Optional[int] = ...) -> None: ...

class JobReservation(_message.Message):
    __slots__ = ("unit", "min", "max")
    UNIT_FIELD_NUMBER: _ClassVar[int]
    MIN_FIELD_NUMBER: _ClassVar[int]
    MAX_FIELD_NUMBER: _ClassVar[int]
    unit: ReservationUnit
    min: int
    max: int
    def __init__(self, unit: _Optional[_Union[ReservationUnit, str]] = ..., min: _Optional[int] = ..., max: _Optional[int] = ...) -> None: ...

class JobSpec(_message.Message):
    __slots__ = ("name", "tasks", "project", "priority", "priority_offset", "runtime_limit", "fail_on_task_failure", "dependencies", "cancel_on_unsatisfiable_dependency", "run_dependents_after_failure", "hold", "template", "placement", "exclusive", "reservation")
    NAME_FIELD_NUMBER: _ClassVar[int]
    TASKS_FIELD_NUMBER: _ClassVar[int]
    PROJECT_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_OFFSET_FIELD_NUMBER: _ClassVar[int]
    RUNTIME_LIMIT_FIELD_NUMBER: _ClassVar[int]
    FAIL_ON_TASK_FAILURE_FIELD_NUMBER: _ClassVar[int]
    DEPENDENCIES_FIELD_NUMBER: _ClassVar[int]
    CANCEL_ON_UNSATISFIABLE_DEPENDENCY_FIELD_NUMBER: _ClassVar[int]
    RUN_DEPENDENTS_AFTER_FAILURE_FIELD_NUMBER: _ClassVar[int]
    HOLD_FIELD_NUMBER: _ClassVar[int]
    TEMPLATE_FIELD_NUMBER: _ClassVar[int]
    PLACEMENT_FIELD_NUMBER: _ClassVar[int]
    EXCLUSIVE_FIELD_NUMBER: _ClassVar[int]
    RESERVATION_FIELD_NUMBER: _ClassVar[int]
    name: str
    tasks: _containers.RepeatedCompositeFieldContainer[TaskSpec]
    project: str
    priority: Priority
    priority_offset: int
    runtime_limit: _duration_pb2.Duration
    fail_on_task_failure: bool
    dependencies: _containers.RepeatedCompositeFieldContainer[JobDependency]
    cancel_on_unsatisfiable_dependency: bool
    run_dependents_after_failure: bool
    hold: bool
    template: str
    placement: _common_pb2.PlacementConstraints
    exclusive: bool
    reservation: JobReservation
    def __init__(self, name: _Optional[str] = ..., tasks: _Optional[_Iterable[_Union[TaskSpec, _Mapping]]] = ..., project: _Optional[str] = ..., priority: _Optional[_Union[Priority, str]] = ..., priority_offset: _Optional[int] = ..., runtime_limit: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., fail_on_task_failure: _Optional[bool] = ..., dependencies: _Optional[_Iterable[_Union[JobDependency, _Mapping]]] = ..., cancel_on_unsatisfiable_dependency: _Optional[bool] = ..., run_dependents_after_failure: _Optional[bool] = ..., hold: _Optional[bool] = ..., template: _Optional[str] = ..., placement: _Optional[_Union[_common_pb2.PlacementConstraints, _Mapping]] = ..., exclusive: _Optional[bool] = ..., reservation: _Optional[_Union[JobReservation, _Mapping]] = ...) -> None: ...

class JobUpdate(_message.Message):
    __slots__ = ("time", "state", "reason", "seq")
    TIME_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    SEQ_FIELD_NUMBER: _ClassVar[int]
    time: _timestamp_pb2.Timestamp
    state: JobState
    reason: str
    seq: int
    def __init__(self, time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., state: _Optional[_Union[JobState, str]] = ..., reason: _Optional[str] = ..., seq: _Optional[int] = ...) -> None: ...

class TaskUpdate(_message.Message):
    __slots__ = ("time", "state", "reason", "seq", "instance_id")
    TIME_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    SEQ_FIELD_NUMBER: _ClassVar[int]
    INSTANCE_ID_FIELD_NUMBER: _ClassVar[int]
    time: _timestamp_pb2.Timestamp
    state: TaskState
    reason: str
    seq: int
    instance_id: int
    def __init__(self, time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., state: _Optional[_Union[TaskState, str]] = ..., reason: _Optional[str] = ..., seq: _Optional[int] = ..., instance_id: _Optional[int] = ...) -> None: ...

class TaskCounts(_message.Message):
    __slots__ = ("configuring", "queued", "running", "finished", "failed", "cancelled")
    CONFIGURING_FIELD_NUMBER: _ClassVar[int]
    QUEUED_FIELD_NUMBER: _ClassVar[int]
    RUNNING_FIELD_NUMBER: _ClassVar[int]
    FINISHED_FIELD_NUMBER: _ClassVar[int]
    FAILED_FIELD_NUMBER: _ClassVar[int]
    CANCELLED_FIELD_NUMBER: _ClassVar[int]
    configuring: int
    queued: int
    running: int
    finished: int
    failed: int
    cancelled: int
    def __init__(self, configuring: _Optional[int] = ..., queued: _Optional[int] = ..., running: _Optional[int] = ..., finished: _Optional[int] = ..., failed: _Optional[int] = ..., cancelled: _Optional[int] = ...) -> None: ...

class Task(_message.Message):
    __slots__ = ("ref", "spec", "state", "reason", "pending_reason", "node", "attempt", "exit_code", "signal", "start_time", "end_time", "history", "stdout_bytes", "stderr_bytes", "instance_count", "instance_counts", "other_nodes", "redacted")
    REF_FIELD_NUMBER: _ClassVar[int]
    SPEC_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    PENDING_REASON_FIELD_NUMBER: _ClassVar[int]
    NODE_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    EXIT_CODE_FIELD_NUMBER: _ClassVar[int]
    SIGNAL_FIELD_NUMBER: _ClassVar[int]
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    END_TIME_FIELD_NUMBER: _ClassVar[int]
    HISTORY_FIELD_NUMBER: _ClassVar[int]
    STDOUT_BYTES_FIELD_NUMBER: _ClassVar[int]
    STDERR_BYTES_FIELD_NUMBER: _ClassVar[int]
    INSTANCE_COUNT_FIELD_NUMBER: _ClassVar[int]
    INSTANCE_COUNTS_FIELD_NUMBER: _ClassVar[int]
    OTHER_NODES_FIELD_NUMBER: _ClassVar[int]
    REDACTED_FIELD_NUMBER: _ClassVar[int]
    ref: _common_pb2.TaskRef
    spec: TaskSpec
    state: TaskState
    reason: str
    pending_reason: str
    node: str
    attempt: int
    exit_code: int
    signal: int
    start_time: _timestamp_pb2.Timestamp
    end_time: _timestamp_pb2.Timestamp
    history: _containers.RepeatedCompositeFieldContainer[TaskUpdate]
    stdout_bytes: int
    stderr_bytes: int
    instance_count: int
    instance_counts: TaskCounts
    other_nodes: _containers.RepeatedScalarFieldContainer[str]
    redacted: bool
    def __init__(self, ref: _Optional[_Union[_common_pb2.TaskRef, _Mapping]] = ..., spec: _Optional[_Union[TaskSpec, _Mapping]] = ..., state: _Optional[_Union[TaskState, str]] = ..., reason: _Optional[str] = ..., pending_reason: _Optional[str] = ..., node: _Optional[str] = ..., attempt: _Optional[int] = ..., exit_code: _Optional[int] = ..., signal: _Optional[int] = ..., start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., end_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., history: _Optional[_Iterable[_Union[TaskUpdate, _Mapping]]] = ..., stdout_bytes: _Optional[int] = ..., stderr_bytes: _Optional[int] = ..., instance_count: _Optional[int] = ..., instance_counts: _Optional[_Union[TaskCounts, _Mapping]] = ..., other_nodes: _Optional[_Iterable[str]] = ..., redacted: _Optional[bool] = ...) -> None: ...

class Instance(_message.Message):
    __slots__ = ("ref", "state", "reason", "pending_reason", "node", "attempt", "exit_code", "signal", "start_time", "end_time", "parametric_value", "command_line", "stdout_bytes", "stderr_bytes", "retries", "other_nodes", "stdout_path", "stderr_path", "redacted")
    REF_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    PENDING_REASON_FIELD_NUMBER: _ClassVar[int]
    NODE_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    EXIT_CODE_FIELD_NUMBER: _ClassVar[int]
    SIGNAL_FIELD_NUMBER: _ClassVar[int]
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    END_TIME_FIELD_NUMBER: _ClassVar[int]
    PARAMETRIC_VALUE_FIELD_NUMBER: _ClassVar[int]
    COMMAND_LINE_FIELD_NUMBER: _ClassVar[int]
    STDOUT_BYTES_FIELD_NUMBER: _ClassVar[int]
    STDERR_BYTES_FIELD_NUMBER: _ClassVar[int]
    RETRIES_FIELD_NUMBER: _ClassVar[int]
    OTHER_NODES_FIELD_NUMBER: _ClassVar[int]
    STDOUT_PATH_FIELD_NUMBER: _ClassVar[int]
    STDERR_PATH_FIELD_NUMBER: _ClassVar[int]
    REDACTED_FIELD_NUMBER: _ClassVar[int]
    ref: _common_pb2.TaskRef
    state: TaskState
    reason: str
    pending_reason: str
    node: str
    attempt: int
    exit_code: int
    signal: int
    start_time: _timestamp_pb2.Timestamp
    end_time: _timestamp_pb2.Timestamp
    parametric_value: int
    command_line: str
    stdout_bytes: int
    stderr_bytes: int
    retries: int
    other_nodes: _containers.RepeatedScalarFieldContainer[str]
    stdout_path: str
    stderr_path: str
    redacted: bool
    def __init__(self, ref: _Optional[_Union[_common_pb2.TaskRef, _Mapping]] = ..., state: _Optional[_Union[TaskState, str]] = ..., reason: _Optional[str] = ..., pending_reason: _Optional[str] = ..., node: _Optional[str] = ..., attempt: _Optional[int] = ..., exit_code: _Optional[int] = ..., signal: _Optional[int] = ..., start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., end_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., parametric_value: _Optional[int] = ..., command_line: _Optional[str] = ..., stdout_bytes: _Optional[int] = ..., stderr_bytes: _Optional[int] = ..., retries: _Optional[int] = ..., other_nodes: _Optional[_Iterable[str]] = ..., stdout_path: _Optional[str] = ..., stderr_path: _Optional[str] = ..., redacted: _Optional[bool] = ...) -> None: ...

class Job(_message.Message):
    __slots__ = ("id", "name", "owner", "state", "reason", "pending_reason", "create_time", "submit_time", "start_time", "end_time", "task_counts", "tasks", "history", "spec", "held", "task_total", "allocated", "allocated_nodes", "redacted")
    ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    OWNER_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    PENDING_REASON_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    SUBMIT_TIME_FIELD_NUMBER: _ClassVar[int]
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    END_TIME_FIELD_NUMBER: _ClassVar[int]
    TASK_COUNTS_FIELD_NUMBER: _ClassVar[int]
    TASKS_FIELD_NUMBER: _ClassVar[int]
    HISTORY_FIELD_NUMBER: _ClassVar[int]
    SPEC_FIELD_NUMBER: _ClassVar[int]
    HELD_FIELD_NUMBER: _ClassVar[int]
    TASK_TOTAL_FIELD_NUMBER: _ClassVar[int]
    ALLOCATED_FIELD_NUMBER: _ClassVar[int]
    ALLOCATED_NODES_FIELD_NUMBER: _ClassVar[int]
    REDACTED_FIELD_NUMBER: _ClassVar[int]
    id: int
    name: str
    owner: str
    state: JobState
    reason: str
    pending_reason: str
    create_time: _timestamp_pb2.Timestamp
    submit_time: _timestamp_pb2.Timestamp
    start_time: _timestamp_pb2.Timestamp
    end_time: _timestamp_pb2.Timestamp
    task_counts: TaskCounts
    tasks: _containers.RepeatedCompositeFieldContainer[Task]
    history: _containers.RepeatedCompositeFieldContainer[JobUpdate]
    spec: JobSpec
    held: bool
    task_total: int
    allocated: _common_pb2.Resources
    allocated_nodes: _containers.RepeatedScalarFieldContainer[str]
    redacted: bool
    def __init__(self, id: _Optional[int] = ..., name: _Optional[str] = ..., owner: _Optional[str] = ..., state: _Optional[_Union[JobState, str]] = ..., reason: _Optional[str] = ..., pending_reason: _Optional[str] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., submit_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., end_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., task_counts: _Optional[_Union[TaskCounts, _Mapping]] = ..., tasks: _Optional[_Iterable[_Union[Task, _Mapping]]] = ..., history: _Optional[_Iterable[_Union[JobUpdate, _Mapping]]] = ..., spec: _Optional[_Union[JobSpec, _Mapping]] = ..., held: _Optional[bool] = ..., task_total: _Optional[int] = ..., allocated: _Optional[_Union[_common_pb2.Resources, _Mapping]] = ..., allocated_nodes: _Optional[_Iterable[str]] = ..., redacted: _Optional[bool] = ...) -> None: ...

class SubmitJobsRequest(_message.Message):
    __slots__ = ("specs",)
    SPECS_FIELD_NUMBER: _ClassVar[int]
    specs: _containers.RepeatedCompositeFieldContainer[JobSpec]
    def __init__(self, specs: _Optional[_Iterable[_Union[JobSpec, _Mapping]]] = ...) -> None: ...

class SubmitJobsResponse(_message.Message):
    __slots__ = ("job_ids",)
    JOB_IDS_FIELD_NUMBER: _ClassVar[int]
    job_ids: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, job_ids: _Optional[_Iterable[int]] = ...) -> None: ...

class SubmitJobRequest(_message.Message):
    __slots__ = ("spec", "job_id")
    SPEC_FIELD_NUMBER: _ClassVar[int]
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    spec: JobSpec
    job_id: int
    def __init__(self, spec: _Optional[_Union[JobSpec, _Mapping]] = ..., job_id: _Optional[int] = ...) -> None: ...

class SubmitJobResponse(_message.Message):
    __slots__ = ("job_id",)
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    job_id: int
    def __init__(self, job_id: _Optional[int] = ...) -> None: ...

class SubmitJobStreamResponse(_message.Message):
    __slots__ = ("job_ids",)
    JOB_IDS_FIELD_NUMBER: _ClassVar[int]
    job_ids: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, job_ids: _Optional[_Iterable[int]] = ...) -> None: ...

class GetJobRequest(_message.Message):
    __slots__ = ("job_id", "view")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    VIEW_FIELD_NUMBER: _ClassVar[int]
    job_id: int
    view: JobView
    def __init__(self, job_id: _Optional[int] = ..., view: _Optional[_Union[JobView, str]] = ...) -> None: ...

class GetTaskRequest(_message.Message):
    __slots__ = ("task",)
    TASK_FIELD_NUMBER: _ClassVar[int]
    task: _common_pb2.TaskRef
    def __init__(self, task: _Optional[_Union[_common_pb2.TaskRef, _Mapping]] = ...) -> None: ...

class ListJobsRequest(_message.Message):
    __slots__ = ("states", "owner", "page_size", "page_token", "name", "newest_first", "count_total")
    STATES_FIELD_NUMBER: _ClassVar[int]
    OWNER_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    NEWEST_FIRST_FIELD_NUMBER: _ClassVar[int]
    COUNT_TOTAL_FIELD_NUMBER: _ClassVar[int]
    states: _containers.RepeatedScalarFieldContainer[JobState]
    owner: str
    page_size: int
    page_token: str
    name: str
    newest_first: bool
    count_total: bool
    def __init__(self, states: _Optional[_Iterable[_Union[JobState, str]]] = ..., owner: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., name: _Optional[str] = ..., newest_first: _Optional[bool] = ..., count_total: _Optional[bool] = ...) -> None: ...

class ListJobsResponse(_message.Message):
    __slots__ = ("jobs", "next_page_token", "total")
    JOBS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    jobs: _containers.RepeatedCompositeFieldContainer[Job]
    next_page_token: str
    total: int
    def __init__(self, jobs: _Optional[_Iterable[_Union[Job, _Mapping]]] = ..., next_page_token: _Optional[str] = ..., total: _Optional[int] = ...) -> None: ...

class CancelJobRequest(_message.Message):
    __slots__ = ("job_id", "reason")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    job_id: int
    reason: str
    def __init__(self, job_id: _Optional[int] = ..., reason: _Optional[str] = ...) -> None: ...

class CreateJobRequest(_message.Message):
    __slots__ = ("spec",)
    SPEC_FIELD_NUMBER: _ClassVar[int]
    spec: JobSpec
    def __init__(self, spec: _Optional[_Union[JobSpec, _Mapping]] = ...) -> None: ...

class AddTasksRequest(_message.Message):
    __slots__ = ("job_id", "tasks")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    TASKS_FIELD_NUMBER: _ClassVar[int]
    job_id: int
    tasks: _containers.RepeatedCompositeFieldContainer[TaskSpec]
    def __init__(self, job_id: _Optional[int] = ..., tasks: _Optional[_Iterable[_Union[TaskSpec, _Mapping]]] = ...) -> None: ...

class AddTasksResponse(_message.Message):
    __slots__ = ("task_ids",)
    TASK_IDS_FIELD_NUMBER: _ClassVar[int]
    task_ids: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, task_ids: _Optional[_Iterable[int]] = ...) -> None: ...

class ModifyTaskRequest(_message.Message):
    __slots__ = ("task", "spec", "update_mask")
    TASK_FIELD_NUMBER: _ClassVar[int]
    SPEC_FIELD_NUMBER: _ClassVar[int]
    UPDATE_MASK_FIELD_NUMBER: _ClassVar[int]
    task: _common_pb2.TaskRef
    spec: TaskSpec
    update_mask: _field_mask_pb2.FieldMask
    def __init__(self, task: _Optional[_Union[_common_pb2.TaskRef, _Mapping]] = ..., spec: _Optional[_Union[TaskSpec, _Mapping]] = ..., update_mask: _Optional[_Union[_field_mask_pb2.FieldMask, _Mapping]] = ...) -> None: ...

class ModifyJobRequest(_message.Message):
    __slots__ = ("job_id", "spec", "update_mask")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    SPEC_FIELD_NUMBER: _ClassVar[int]
    UPDATE_MASK_FIELD_NUMBER: _ClassVar[int]
    job_id: int
    spec: JobSpec
    update_mask: _field_mask_pb2.FieldMask
    def __init__(self, job_id: _Optional[int] = ..., spec: _Optional[_Union[JobSpec, _Mapping]] = ..., update_mask: _Optional[_Union[_field_mask_pb2.FieldMask, _Mapping]] = ...) -> None: ...

class CancelTaskRequest(_message.Message):
    __slots__ = ("task", "reason")
    TASK_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    task: _common_pb2.TaskRef
    reason: str
    def __init__(self, task: _Optional[_Union[_common_pb2.TaskRef, _Mapping]] = ..., reason: _Optional[str] = ...) -> None: ...

class RequeueJobRequest(_message.Message):
    __slots__ = ("job_id", "tasks")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    TASKS_FIELD_NUMBER: _ClassVar[int]
    job_id: int
    tasks: _containers.RepeatedCompositeFieldContainer[_common_pb2.TaskRef]
    def __init__(self, job_id: _Optional[int] = ..., tasks: _Optional[_Iterable[_Union[_common_pb2.TaskRef, _Mapping]]] = ...) -> None: ...

class JobRequest(_message.Message):
    __slots__ = ("job_id", "reason")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    job_id: int
    reason: str
    def __init__(self, job_id: _Optional[int] = ..., reason: _Optional[str] = ...) -> None: ...

class ListTasksRequest(_message.Message):
    __slots__ = ("job_id", "task_id", "states", "instances", "page_size", "page_token")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    STATES_FIELD_NUMBER: _ClassVar[int]
    INSTANCES_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    job_id: int
    task_id: int
    states: _containers.RepeatedScalarFieldContainer[TaskState]
    instances: bool
    page_size: int
    page_token: str
    def __init__(self, job_id: _Optional[int] = ..., task_id: _Optional[int] = ..., states: _Optional[_Iterable[_Union[TaskState, str]]] = ..., instances: _Optional[bool] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListTasksResponse(_message.Message):
    __slots__ = ("tasks", "instances", "next_page_token")
    TASKS_FIELD_NUMBER: _ClassVar[int]
    INSTANCES_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    tasks: _containers.RepeatedCompositeFieldContainer[Task]
    instances: _containers.RepeatedCompositeFieldContainer[Instance]
    next_page_token: str
    def __init__(self, tasks: _Optional[_Iterable[_Union[Task, _Mapping]]] = ..., instances: _Optional[_Iterable[_Union[Instance, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class WatchJobRequest(_message.Message):
    __slots__ = ("job_id", "job_events_only")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    JOB_EVENTS_ONLY_FIELD_NUMBER: _ClassVar[int]
    job_id: int
    job_events_only: bool
    def __init__(self, job_id: _Optional[int] = ..., job_events_only: _Optional[bool] = ...) -> None: ...

class WatchJobsRequest(_message.Message):
    __slots__ = ("owner", "batched", "job_events_only", "ends_only")
    OWNER_FIELD_NUMBER: _ClassVar[int]
    BATCHED_FIELD_NUMBER: _ClassVar[int]
    JOB_EVENTS_ONLY_FIELD_NUMBER: _ClassVar[int]
    ENDS_ONLY_FIELD_NUMBER: _ClassVar[int]
    owner: str
    batched: bool
    job_events_only: bool
    ends_only: bool
    def __init__(self, owner: _Optional[str] = ..., batched: _Optional[bool] = ..., job_events_only: _Optional[bool] = ..., ends_only: _Optional[bool] = ...) -> None: ...

class JobEvent(_message.Message):
    __slots__ = ("time", "job_id", "job_state", "task", "task_state", "reason", "task_counts", "seq", "more")
    TIME_FIELD_NUMBER: _ClassVar[int]
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    JOB_STATE_FIELD_NUMBER: _ClassVar[int]
    TASK_FIELD_NUMBER: _ClassVar[int]
    TASK_STATE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    TASK_COUNTS_FIELD_NUMBER: _ClassVar[int]
    SEQ_FIELD_NUMBER: _ClassVar[int]
    MORE_FIELD_NUMBER: _ClassVar[int]
    time: _timestamp_pb2.Timestamp
    job_id: int
    job_state: JobState
    task: _common_pb2.TaskRef
    task_state: TaskState
    reason: str
    task_counts: TaskCounts
    seq: int
    more: _containers.RepeatedCompositeFieldContainer[JobEvent]
    def __init__(self, time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., job_id: _Optional[int] = ..., job_state: _Optional[_Union[JobState, str]] = ..., task: _Optional[_Union[_common_pb2.TaskRef, _Mapping]] = ..., task_state: _Optional[_Union[TaskState, str]] = ..., reason: _Optional[str] = ..., task_counts: _Optional[_Union[TaskCounts, _Mapping]] = ..., seq: _Optional[int] = ..., more: _Optional[_Iterable[_Union[JobEvent, _Mapping]]] = ...) -> None: ...

class ReadOutputRequest(_message.Message):
    __slots__ = ("task", "stream", "offset", "follow")
    TASK_FIELD_NUMBER: _ClassVar[int]
    STREAM_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    FOLLOW_FIELD_NUMBER: _ClassVar[int]
    task: _common_pb2.TaskRef
    stream: _common_pb2.OutputStream
    offset: int
    follow: bool
    def __init__(self, task: _Optional[_Union[_common_pb2.TaskRef, _Mapping]] = ..., stream: _Optional[_Union[_common_pb2.OutputStream, str]] = ..., offset: _Optional[int] = ..., follow: _Optional[bool] = ...) -> None: ...

class OutputChunk(_message.Message):
    __slots__ = ("offset", "data")
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    offset: int
    data: bytes
    def __init__(self, offset: _Optional[int] = ..., data: _Optional[bytes] = ...) -> None: ...

class UsageReportRequest(_message.Message):
    __slots__ = ("by", "since", "until", "owner", "project", "limit")
    BY_FIELD_NUMBER: _ClassVar[int]
    SINCE_FIELD_NUMBER: _ClassVar[int]
    UNTIL_FIELD_NUMBER: _ClassVar[int]
    OWNER_FIELD_NUMBER: _ClassVar[int]
    PROJECT_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    by: UsageGrouping
    since: _timestamp_pb2.Timestamp
    until: _timestamp_pb2.Timestamp
    owner: str
    project: str
    limit: int
    def __init__(self, by: _Optional[_Union[UsageGrouping, str]] = ..., since: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., until: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., owner: _Optional[str] = ..., project: _Optional[str] = ..., limit: _Optional[int] = ...) -> None: ...

class UsageRow(_message.Message):
    __slots__ = ("key", "jobs", "tasks", "failed", "core_seconds", "wall_seconds", "max_memory_mb", "nonzero_exits", "owner", "project", "name", "state", "submit_time", "start_time", "end_time", "exit_codes")
    KEY_FIELD_NUMBER: _ClassVar[int]
    JOBS_FIELD_NUMBER: _ClassVar[int]
    TASKS_FIELD_NUMBER: _ClassVar[int]
    FAILED_FIELD_NUMBER: _ClassVar[int]
    CORE_SECONDS_FIELD_NUMBER: _ClassVar[int]
    WALL_SECONDS_FIELD_NUMBER: _ClassVar[int]
    MAX_MEMORY_MB_FIELD_NUMBER: _ClassVar[int]
    NONZERO_EXITS_FIELD_NUMBER: _ClassVar[int]
    OWNER_FIELD_NUMBER: _ClassVar[int]
    PROJECT_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    SUBMIT_TIME_FIELD_NUMBER: _ClassVar[int]
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    END_TIME_FIELD_NUMBER: _ClassVar[int]
    EXIT_CODES_FIELD_NUMBER: _ClassVar[int]
    key: str
    jobs: int
    tasks: int
    failed: int
    core_seconds: float
    wall_seconds: float
    max_memory_mb: int
    nonzero_exits: int
    owner: str
    project: str
    name: str
    state: JobState
    submit_time: _timestamp_pb2.Timestamp
    start_time: _timestamp_pb2.Timestamp
    end_time: _timestamp_pb2.Timestamp
    exit_codes: str
    def __init__(self, key: _Optional[str] = ..., jobs: _Optional[int] = ..., tasks: _Optional[int] = ..., failed: _Optional[int] = ..., core_seconds: _Optional[float] = ..., wall_seconds: _Optional[float] = ..., max_memory_mb: _Optional[int] = ..., nonzero_exits: _Optional[int] = ..., owner: _Optional[str] = ..., project: _Optional[str] = ..., name: _Optional[str] = ..., state: _Optional[_Union[JobState, str]] = ..., submit_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., end_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., exit_codes: _Optional[str] = ...) -> None: ...

class UsageReport(_message.Message):
    __slots__ = ("rows", "total", "truncated")
    ROWS_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    TRUNCATED_FIELD_NUMBER: _ClassVar[int]
    rows: _containers.RepeatedCompositeFieldContainer[UsageRow]
    total: UsageRow
    truncated: bool
    def __init__(self, rows: _Optional[_Iterable[_Union[UsageRow, _Mapping]]] = ..., total: _Optional[_Union[UsageRow, _Mapping]] = ..., truncated: _Optional[bool] = ...) -> None: ...

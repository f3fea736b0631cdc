from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional

DESCRIPTOR: _descriptor.FileDescriptor

class OutputStream(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    OUTPUT_STREAM_UNSPECIFIED: _ClassVar[OutputStream]
    OUTPUT_STREAM_STDOUT: _ClassVar[OutputStream]
    OUTPUT_STREAM_STDERR: _ClassVar[OutputStream]
OUTPUT_STREAM_UNSPECIFIED: OutputStream
OUTPUT_STREAM_STDOUT: OutputStream
OUTPUT_STREAM_STDERR: OutputStream

class Resources(_message.Message):
    __slots__ = ("cores", "memory_mb", "generic")
    class GenericEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    CORES_FIELD_NUMBER: _ClassVar[int]
    MEMORY_MB_FIELD_NUMBER: _ClassVar[int]
    GENERIC_FIELD_NUMBER: _ClassVar[int]
    cores: int
    memory_mb: int
    generic: _containers.ScalarMap[str, int]
    def __init__(self, cores: _Optional[int] = ..., memory_mb: _Optional[int] = ..., generic: _Optional[_Mapping[str, int]] = ...) -> None: ...

class PlacementConstraints(_message.Message):
    __slots__ = ("groups", "require_labels", "avoid_labels", "nodes")
    GROUPS_FIELD_NUMBER: _ClassVar[int]
    REQUIRE_LABELS_FIELD_NUMBER: _ClassVar[int]
    AVOID_LABELS_FIELD_NUMBER: _ClassVar[int]
    NODES_FIELD_NUMBER: _ClassVar[int]
    groups: _containers.RepeatedScalarFieldContainer[str]
    require_labels: _containers.RepeatedScalarFieldContainer[str]
    avoid_labels: _containers.RepeatedScalarFieldContainer[str]
    nodes: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, groups: _Optional[_Iterable[str]] = ..., require_labels: _Optional[_Iterable[str]] = ..., avoid_labels: _Optional[_Iterable[str]] = ..., nodes: _Optional[_Iterable[str]] = ...) -> None: ...

class TaskRef(_message.Message):
    __slots__ = ("job_id", "task_id", "instance_id")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    INSTANCE_ID_FIELD_NUMBER: _ClassVar[int]
    job_id: int
    task_id: int
    instance_id: int
    def __init__(self, job_id: _Optional[int] = ..., task_id: _Optional[int] = ..., instance_id: _Optional[int] = ...) -> None: ...

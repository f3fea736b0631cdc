"""Jobs, tasks, nodes and their state machines: no protobuf, no I/O, no clock reads."""

"""The compute-node agent: registers, heartbeats, launches tasks and streams their output.

grpcio's fork support crashes children started with fork+Python code while grpc.aio runs
(see shared/PLATFORM-NOTES.md); turn it off before anything imports grpc.
"""

import os

os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "false")

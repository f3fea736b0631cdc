"""Code shared by the head node, the compute-node agent and clients (no gRPC types here)."""

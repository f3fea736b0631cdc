"""The head node: job queue, allocator, node membership, output, and the gRPC API over them."""

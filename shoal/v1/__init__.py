"""Generated protobuf and gRPC stubs for the shoal.v1 API (do not edit: run `make protos`)."""

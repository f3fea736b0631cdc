"""The gRPC surface: thin servicers, conversions, error mapping, the server."""

"""Shoal: what a user imports. The `shoal` CLI, the client, and the generated stubs (shoal.v1)."""

__version__ = "0.1.0"

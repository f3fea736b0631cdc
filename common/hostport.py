"""HOST:PORT text and the default port: the one parser of an address, for the daemons' config
and the clients' head addresses alike. Kept out of common.config so that the CLI, which only
needs this, does not import the config's machinery (TOML, resources: ~10 ms of every command)."""

from __future__ import annotations

from common.errors import ConfigError

DEFAULT_PORT = 7676


def parse_address(text: str, what: str = "address") -> tuple[str, int]:
    """'host:port' or '[v6]:port' -> (host, port); ConfigError says what is wrong."""
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ConfigError(f"{what} {text!r} is not HOST:PORT (for example 127.0.0.1:{DEFAULT_PORT})")
    return host.strip("[]"), int(port)

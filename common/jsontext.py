"""JSON text from encoders built once.

`json.dumps` with any argument of its own (separators, default) builds a JSONEncoder, and
every `encode` sets up the C encoder again: about 2-3 us before the first byte. The head
writes several small JSON texts per job (specs, history details, log lines), so the
encoders here are made once, at import. Circular references are not looked for: what goes
through them is plain data.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any


def _refuse(o: object) -> Any:
    raise TypeError(f"Object of type {type(o).__name__} is not JSON serializable")


def encoder(item_separator: str, key_separator: str, default: Callable[[Any], Any] = _refuse) -> Callable[[Any], str]:
    """A function that gives the JSON text of a value, as json.dumps(value, separators=...,
    default=...) would."""
    make = getattr(json.encoder, "c_make_encoder", None)
    if make is None:  # a Python without the json module's C part
        return json.JSONEncoder(separators=(item_separator, key_separator), default=default).encode
    chunks = make(None, default, json.encoder.encode_basestring_ascii, None, key_separator, item_separator,
                  False, False, True)

    def encode(value: Any) -> str:
        return "".join(chunks(value, 0))
    return encode


compact = encoder(",", ":")  # for the store

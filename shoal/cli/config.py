"""`shoal config show head|node`: the config a daemon would run with, and each value's source."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from common import config as config_mod
from common.config import HeadConfig, NodeConfig
from shoal.cli.base import EXIT_OK


def show(args: argparse.Namespace, head: str) -> int:
    cls, table = (HeadConfig, "head") if args.role == "head" else (NodeConfig, "node")
    overrides = config_mod.flag_overrides(cls, args)
    came_from_env = ""
    if table == "node" and overrides["head"] is None and os.environ.get("SHOAL_HEAD"):
        # `shoal node` falls back to $SHOAL_HEAD, as every other command does.
        overrides["head"], came_from_env = os.environ["SHOAL_HEAD"], "env SHOAL_HEAD"
    config, sources = config_mod.resolve(cls, table, args.config, overrides)
    if came_from_env and sources["head"] == "flag":
        sources["head"] = came_from_env
    rows = [(key, _plain(getattr(config, key)), sources[key]) for key in sources]
    if args.json:
        print(json.dumps({key: {"value": value, "source": source} for key, value, source in rows}, indent=2))
        return EXIT_OK
    width = max(len(key) for key, _, _ in rows)
    shown = [(key, json.dumps(value) if not isinstance(value, str) else value, source) for key, value, source in rows]
    value_width = min(48, max(len(v) for _, v, _ in shown))
    print(f"[{table}]")
    for key, value, source in shown:
        print(f"{key:<{width}}  {value:<{value_width}}  {source}")
    return EXIT_OK


def _plain(value: object) -> object:
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, tuple):
        return list(value)
    return value

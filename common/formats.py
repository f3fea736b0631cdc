"""Text forms shared by the CLI, job files and the head node, with their parsers.

- Exit codes (HPC Pack's /validexitcodes): "0,3,10-20", ranges also as "10..20".
- Durations: "90s", "15m", "2h", "1d"; "MM:SS", "HH:MM:SS", "D-HH:MM:SS" (Slurm); a plain
  number is minutes (both Slurm and HPC Pack read it so); "infinite" or "0" is no limit.
- Priorities: HPC Pack's levels Lowest, BelowNormal, Normal, AboveNormal, Highest, optionally
  "+N" (0..999) within the level, or the expanded number 0..4999 (level * 1000 + N).
- Parametric ranges: "START-END[:STEP]" (negative bounds as "-5--1").
Every parser raises InvalidArgument with a one-line message naming what it got.
"""

from __future__ import annotations

import re

from common.errors import InvalidArgument

PRIORITY_LEVELS = ("Lowest", "BelowNormal", "Normal", "AboveNormal", "Highest")
_INT = r"-?\d+"


def parse_exit_codes(text: str) -> tuple[tuple[int, int], ...]:
    ranges = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        m = re.fullmatch(rf"({_INT})\s*(?:(?:\.\.|-)\s*({_INT}))?", part)
        if not m:
            raise InvalidArgument(f"exit codes {text!r}: {part!r} is not a number or a range like 3-5")
        lo = int(m.group(1))
        hi = int(m.group(2)) if m.group(2) is not None else lo
        if hi < lo:
            raise InvalidArgument(f"exit codes {text!r}: range {part!r} ends before it starts")
        ranges.append((lo, hi))
    return tuple(ranges)


def format_exit_codes(ranges: tuple[tuple[int, int], ...]) -> str:
    return ",".join(str(lo) if lo == hi else f"{lo}-{hi}" for lo, hi in ranges)


_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def format_duration(seconds: float) -> str:
    """A whole number of the largest unit that fits (90d, 12h, 15m, 30s); huge ones in days."""
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.{0 if seconds % size == 0 else 1}f}{unit}"
    return f"{seconds:g}s"


def parse_duration(text: str) -> float:
    """Seconds; 0 for no limit."""
    t = text.strip().lower()
    if t in ("infinite", "unlimited", "0", ""):
        return 0.0
    if m := re.fullmatch(r"(\d+(?:\.\d+)?)\s*([smhd])", t):
        return float(m.group(1)) * _UNITS[m.group(2)]
    if re.fullmatch(r"\d+", t):
        return int(t) * 60.0
    if m := re.fullmatch(r"(?:(\d+)-)?(\d+):(\d{1,2})(?::(\d{1,2}))?", t):
        days = int(m.group(1) or 0)
        a, b, c = int(m.group(2)), int(m.group(3)), m.group(4)
        if c is None:
            if m.group(1):  # D-HH:MM
                return days * 86400 + a * 3600 + b * 60.0
            return a * 60 + b * 1.0  # MM:SS
        return days * 86400 + a * 3600 + b * 60 + int(c) * 1.0
    raise InvalidArgument(
        f"duration {text!r} is not understood: use e.g. 90s, 15m, 2h, 1d, MM:SS, HH:MM:SS or D-HH:MM:SS"
    )


def parse_priority(text: str) -> int:
    """The expanded priority 0..4999."""
    t = text.strip()
    if t.isdigit():
        value = int(t)
        if value > 4999:
            raise InvalidArgument(f"priority {text!r} must be at most 4999")
        return value
    name, _, offset = t.partition("+")
    level = {n.lower(): i for i, n in enumerate(PRIORITY_LEVELS)}.get(name.strip().lower().replace("_", ""))
    if level is None:
        raise InvalidArgument(f"priority {text!r} is not one of {', '.join(PRIORITY_LEVELS)} (optionally +N)")
    if offset and (not offset.strip().isdigit() or int(offset) > 999):
        raise InvalidArgument(f"priority {text!r}: the part after + must be 0..999")
    return level * 1000 + (int(offset) if offset else 0)


def format_priority(priority: int) -> str:
    level, offset = divmod(priority, 1000)
    return PRIORITY_LEVELS[min(level, 4)] + (f"+{offset}" if offset else "")


def parse_sweep(text: str) -> tuple[int, int, int]:
    m = re.fullmatch(rf"\s*({_INT})\s*-\s*({_INT})\s*(?::\s*(\d+))?\s*", text)
    if not m:
        raise InvalidArgument(f"parametric range {text!r} is not START-END[:STEP] (for example 1-100:2)")
    start, end, step = int(m.group(1)), int(m.group(2)), int(m.group(3) or 1)
    if step < 1 or end < start:
        raise InvalidArgument(f"parametric range {text!r}: need END >= START and STEP >= 1")
    return start, end, step

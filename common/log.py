"""The one structlog configuration for every Shoal process.

Events are key-value (`job_id`, `task_id`, `node`); JSON lines when stderr is not a terminal
(daemons under systemd or a test harness), readable lines on a terminal.

Lines logged on an event loop are written together once the loop has run what was ready, in
one write (LoopLogger), not one write each: each write to a log file on ext4 updates the
file's times through the journal, which the head's commits keep busy. A head taking SubmitJob
calls spent 26 us of CPU per line writing it one by one, and 5 us in writes of about seven
lines. They are written at exit too; a SIGKILL loses only what the loop logged in its last turn.
"""

from __future__ import annotations

import asyncio
import atexit
import logging
import sys
import threading
import time
from typing import TextIO

import structlog

from common import jsontext
from common.clock import wall_time

_configured = False


def configure(level: str = "info", json: bool | None = None) -> None:
    global _configured
    if json is None:
        json = not sys.stderr.isatty()
    numeric = logging.getLevelNamesMapping().get(level.upper())
    if numeric is None:
        raise ValueError(f"unknown log level {level!r} (use debug, info, warning or error)")
    processors: list[structlog.typing.Processor]
    if json:
        processors = [json_line]
    else:
        processors = [
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            structlog.dev.ConsoleRenderer(colors=False),
        ]
    structlog.configure(
        processors=processors,
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=lambda *args: _LOGGER,
        cache_logger_on_first_use=True,
    )
    _configured = True
    _LOGGER.file = sys.stderr


# Values JSON cannot hold are written as their repr, as structlog's JSONRenderer does.
_encode = jsontext.encoder(", ", ": ", default=repr)
_second = -1
_second_text = ""


def timestamp(now: float) -> str:
    """ISO 8601 in UTC to the microsecond, as structlog's TimeStamper(fmt="iso", utc=True)
    writes it; the text up to the second is made once a second."""
    global _second, _second_text
    second = int(now)
    if second != _second:
        _second_text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        _second = second
    return f"{_second_text}.{min(999_999, round((now - second) * 1e6)):06d}Z"


def json_line(logger: object, method_name: str, event_dict: structlog.typing.EventDict) -> str:
    """The JSON line of an event: structlog's add_log_level, TimeStamper, format_exc_info
    and JSONRenderer in one step. A head at full speed logs a few lines per job, and the
    four processors cost 13 us a line against 7 here, most of it json.dumps building an
    encoder per call and datetime formatting the time from scratch."""
    event_dict = structlog.processors.add_log_level(logger, method_name, event_dict)
    event_dict["timestamp"] = timestamp(wall_time())
    if "exc_info" in event_dict:
        event_dict = structlog.processors.format_exc_info(logger, method_name, event_dict)
    return _encode(event_dict)


def get(name: str, **bound: object) -> structlog.typing.FilteringBoundLogger:
    return structlog.get_logger(name).bind(**bound) if bound else structlog.get_logger(name)


class LoopLogger:
    """The one structlog logger: a line logged on a thread running an event loop waits for the
    end of the loop's turn, and the turn's lines go in one write; other threads write at once."""

    def __init__(self, file: TextIO) -> None:
        self.file = file
        self._lines: list[str] = []
        self._loop: asyncio.AbstractEventLoop | None = None  # the loop last asked to flush
        self._lock = threading.Lock()  # for a process with loops on several threads (tests)

    def msg(self, message: str) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self._write(message + "\n")
            return
        with self._lock:
            self._lines.append(message)
            # A loop that stopped before its flush ran (the end of asyncio.run) leaves its
            # lines to the next loop's.
            if len(self._lines) > 1 and loop is self._loop:
                return
            self._loop = loop
        loop.call_soon(self.flush)

    log = debug = info = warn = warning = err = error = critical = exception = fatal = failure = msg

    def flush(self) -> None:
        with self._lock:
            lines, self._lines = self._lines, []
        if lines:
            self._write("\n".join(lines) + "\n")

    def _write(self, text: str) -> None:
        try:
            self.file.write(text)
            self.file.flush()
        except (OSError, ValueError):  # stderr closed or gone: nowhere left to say so
            pass


_LOGGER = LoopLogger(sys.stderr)
atexit.register(_LOGGER.flush)

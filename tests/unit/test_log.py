"""The log's one logger: lines logged on an event loop go out together at the end of the
loop's turn, in one write; lines logged elsewhere go out at once; none is lost."""

from __future__ import annotations

import asyncio
import io
import json
import threading

from common.log import LoopLogger


class CountingFile(io.StringIO):
    def __init__(self) -> None:
        super().__init__()
        self.writes = 0

    def write(self, text: str) -> int:
        self.writes += 1
        return super().write(text)


def test_lines_logged_in_one_turn_of_a_loop_go_out_in_one_write_after_it() -> None:
    out = CountingFile()
    logger = LoopLogger(out)
    seen: list[str] = []

    async def main() -> None:
        for i in range(5):
            logger.info(json.dumps({"event": "e", "i": i}))
        seen.append(out.getvalue())  # still this turn: nothing written yet
        await asyncio.sleep(0)

    asyncio.run(main())
    assert seen == [""]
    assert [json.loads(line)["i"] for line in out.getvalue().splitlines()] == [0, 1, 2, 3, 4]
    assert out.writes == 1


def test_a_line_logged_off_any_loop_goes_out_at_once() -> None:
    out = CountingFile()
    logger = LoopLogger(out)
    logger.warning("outside")
    assert out.getvalue() == "outside\n"
    thread = threading.Thread(target=logger.error, args=("from a thread",))
    thread.start()
    thread.join()
    assert out.getvalue() == "outside\nfrom a thread\n"


def test_lines_a_stopped_loop_never_flushed_go_out_with_the_next_loops() -> None:
    out = CountingFile()
    logger = LoopLogger(out)

    def log_and_stop() -> None:
        logger.info("first")
        loop.stop()  # the loop ends this turn, before the flush the line asked for

    loop = asyncio.new_event_loop()
    loop.call_soon(log_and_stop)
    loop.run_forever()
    loop.close()
    assert out.getvalue() == ""

    async def log_second() -> None:
        logger.info("second")

    asyncio.run(log_second())
    assert out.getvalue() == "first\nsecond\n"
    logger.flush()  # what exit does (atexit): nothing left, nothing written twice
    assert out.getvalue() == "first\nsecond\n"


def test_a_json_line_says_what_structlogs_own_processors_would() -> None:
    import datetime

    import structlog

    from common.log import json_line, timestamp

    for now in (1764756123.123456, 1764756000.000001, 1764756000.5):
        expected = datetime.datetime.fromtimestamp(now, tz=datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        assert timestamp(now) == expected

    event = {"event": "task_exited", "job_id": 7, "node": "n1", "code": None, "why": 'a "quoted"\nline',
             "values": [1.5, {"k": "é"}], "odd": object(), "data": b"x"}
    line = json.loads(json_line(None, "exception", dict(event)))
    ours = {k: v for k, v in line.items() if k != "timestamp"}
    theirs = json.loads(structlog.processors.JSONRenderer()(None, "exception", structlog.processors.add_log_level(
        None, "exception", dict(event))))
    assert ours == theirs and line["level"] == "error"
    assert datetime.datetime.fromisoformat(line["timestamp"].replace("Z", "+00:00")).tzinfo is not None

    try:
        raise ValueError("boom")
    except ValueError:
        with_exc = json.loads(json_line(None, "error", {"event": "failed", "exc_info": True}))
    assert "ValueError: boom" in with_exc["exception"] and "exc_info" not in with_exc

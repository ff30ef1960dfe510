"""The FC runtime's side of an isolated function (emulator.fc.sandbox): runs in the function's own interpreter,
started ``python -I -S -B bootstrap.py CODE_ROOT HANDLER CLOCK_MODULE READ_FD WRITE_FD``.

Standard library only, and Python 3.10 (FC's python3.10) compatible: nothing of this repository or of the
environment that started it is importable here. The path is the code root, then what the function's PYTHONPATH
names (FC's ``/code`` is the code root here), then the standard library; ``-I -S`` keep site-packages, the user's
site and every PYTHON* variable out.

One JSON message a line on the two pipes. From the stand-in: ``invoke`` (payload, context). To it: ``now`` and
``sleep`` (the function's clock, which the stand-in answers from its virtual clock, so waits take virtual time),
``log`` (what the function writes to stdout or stderr: its log), then ``result`` or ``error``. The handler is
imported on the first invocation, as FC initializes an instance; when that fails, the traceback goes to the log,
the invocation fails with the import's error and the instance ends.
"""

from __future__ import annotations

import base64
import importlib
import io
import json
import os
import sys
import threading
import traceback
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

Message = dict[str, Any]


class Channel:
    def __init__(self, read_fd: int, write_fd: int) -> None:
        self._reader = os.fdopen(read_fd, "r", encoding="utf-8")
        self._writer = os.fdopen(write_fd, "w", encoding="utf-8")
        self._lock = threading.Lock()

    def send(self, message: Message) -> None:
        with self._lock:
            self._writer.write(json.dumps(message) + "\n")
            self._writer.flush()

    def receive(self) -> Message | None:
        line = self._reader.readline()
        message: Message | None = json.loads(line) if line else None
        return message

    def call(self, message: Message) -> Message:
        """A request the stand-in answers before the function goes on (the clock)."""
        with self._lock:
            self._writer.write(json.dumps(message) + "\n")
            self._writer.flush()
            reply: Message = json.loads(self._reader.readline())
            return reply


class PipeClock:
    """The function's clock (its ``now`` and ``sleep``), kept by the stand-in."""

    def __init__(self, channel: Channel) -> None:
        self._channel = channel

    def now(self) -> float:
        return float(self._channel.call({"op": "now"})["now"])

    def sleep(self, seconds: float) -> None:
        self._channel.call({"op": "sleep", "seconds": float(seconds)})


class LogStream(io.TextIOBase):
    """stdout and stderr: whole lines go to the stand-in as the function's log."""

    def __init__(self, channel: Channel) -> None:
        super().__init__()
        self._channel = channel
        self._pending = ""

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        self._pending += text
        if "\n" in self._pending:
            lines, _, self._pending = self._pending.rpartition("\n")
            self._channel.send({"op": "log", "text": lines})
        return len(text)

    def flush(self) -> None:
        if self._pending:
            self._channel.send({"op": "log", "text": self._pending})
            self._pending = ""


def set_path(code_root: str) -> None:
    entries = [code_root]
    for entry in os.environ.get("PYTHONPATH", "").split(os.pathsep):
        if entry == "/code" or entry.startswith("/code/"):
            entry = code_root + entry[len("/code") :]
        if entry and entry not in entries:
            entries.append(entry)
    sys.path[:0] = entries


def load_handler(name: str, clock_module: str, channel: Channel) -> Callable[[bytes, object], object]:
    module_name, _, function_name = name.rpartition(".")
    handler: Callable[[bytes, object], object] = getattr(importlib.import_module(module_name), function_name)
    if clock_module:
        importlib.import_module(clock_module).install(PipeClock(channel))
    return handler


def context_of(data: Message) -> SimpleNamespace:
    credentials = data.get("credentials")
    service = data.get("service")
    return SimpleNamespace(
        request_id=data["request_id"],
        credentials=SimpleNamespace(**credentials) if credentials else None,
        function=SimpleNamespace(**data["function"]),
        service=SimpleNamespace(**service) if service else None,
        region=data["region"],
        account_id=data["account_id"],
        tracing=None,
    )


def failure(error: BaseException) -> Message:
    trace = traceback.format_list(traceback.extract_tb(error.__traceback__))
    return {"op": "error", "type": type(error).__name__, "message": str(error), "trace": trace}


def encoded(result: object) -> Message:
    try:
        return {"op": "result", "json": json.loads(json.dumps(result))}
    except (TypeError, ValueError):
        return {"op": "result", "text": str(result)}


def main() -> int:
    code_root, handler_name, clock_module, read_fd, write_fd = sys.argv[1:6]
    channel = Channel(int(read_fd), int(write_fd))
    set_path(code_root)
    os.chdir(code_root)
    sys.stdout = sys.stderr = LogStream(channel)
    handler = None
    while True:
        message = channel.receive()
        if message is None:
            return 0
        if handler is None:
            try:
                handler = load_handler(handler_name, clock_module, channel)
            except BaseException as error:  # FC: the instance failed to initialize
                traceback.print_exc()
                sys.stderr.flush()
                channel.send({**failure(error), "fatal": True})
                return 1
        try:
            result = handler(base64.b64decode(message["payload"]), context_of(message["context"]))
            sys.stdout.flush()
            channel.send(encoded(result))
        except BaseException as error:  # the invocation's unhandled error, as FC reports it
            traceback.print_exc()
            sys.stderr.flush()
            channel.send(failure(error))


if __name__ == "__main__":
    sys.exit(main())

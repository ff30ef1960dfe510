"""The small HTTP server every stand-in runs on: loopback only, one thread per connection."""

from __future__ import annotations

import contextlib
import json
import socket
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

from emulator.clock import SimulationStopped, VirtualClock
from emulator.signing import SignedRequest

LOOPBACK = "127.0.0.1"


@dataclass(frozen=True)
class Request:
    method: str
    path: str  # raw path, still percent-encoded
    query: str  # raw query string
    headers: dict[str, str]  # lower-cased names
    body: bytes

    def signed(self) -> SignedRequest:
        return SignedRequest(self.method, self.path, self.query, self.headers, self.body)


@dataclass
class Reply:
    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)


DROP = Reply(0)  # close the connection without an answer, as an unreachable host "answers"


def json_reply(status: int, payload: object, headers: dict[str, str] | None = None) -> Reply:
    return Reply(status, json.dumps(payload).encode(), {"Content-Type": "application/json", **(headers or {})})


class StandIn:
    """Base class: subclasses implement :meth:`handle`; ``start``/``stop`` run the server in a thread.

    A request from a running actor is served in that actor's name (see :mod:`emulator.clock`): first a possible
    switch to another actor due at the same instant (while exploring interleavings), then ``latency_seconds``
    of virtual network time, then the answer.
    """

    def __init__(self, clock: VirtualClock, port: int = 0) -> None:
        self.clock = clock
        self.latency_seconds = 0.0
        self._requested_port = port
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def handle(self, request: Request) -> Reply:  # pragma: no cover - abstract
        raise NotImplementedError

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError(f"{type(self).__name__} is not started")
        return self._server.server_address[1]

    @property
    def endpoint(self) -> str:
        """``host:port``, the form SDK configs take."""
        return f"{LOOPBACK}:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.endpoint}"

    def start(self):
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # headers and body go out as separate writes: no 40 ms stalls

            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                parts = urlsplit(self.path)
                request = Request(
                    self.command, parts.path, parts.query, {k.lower(): v for k, v in self.headers.items()}, body
                )
                try:
                    stand_in.clock.checkpoint()
                    if stand_in.latency_seconds:
                        stand_in.clock.pause(stand_in.latency_seconds)
                    reply = stand_in.handle(request)
                except SimulationStopped:
                    self.close_connection = True
                    return
                except Exception as error:  # a stand-in bug must still answer, loudly
                    reply = json_reply(500, {"Code": "EmulatorError", "Message": repr(error)})
                if reply is DROP:
                    self.close_connection = True
                    return
                self.send_response(reply.status)
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(reply.body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(reply.body)

            do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _serve

            def log_message(self, format: str, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer((LOOPBACK, self._requested_port), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=lambda: self._server.serve_forever(poll_interval=0.05), name=type(self).__name__, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving; a connection wakes the server loop at once instead of waiting for its next poll."""
        server = self._server
        if server is None:
            return
        stopper = threading.Thread(target=server.shutdown, name=f"{type(self).__name__}-stop", daemon=True)
        stopper.start()
        while stopper.is_alive():
            with contextlib.suppress(OSError), socket.create_connection(server.server_address[:2], timeout=0.2):
                pass
            stopper.join(0.01)
        server.server_close()
        self._server = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

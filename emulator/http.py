"""The small HTTP server every stand-in runs on: loopback only, one thread per connection."""

from __future__ import annotations

import contextlib
import json
import socket
import threading
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any, TypeVar
from urllib.parse import urlsplit

from emulator.clock import SimulationStopped, VirtualClock
from emulator.signing import SignedRequest

LOOPBACK = "127.0.0.1"
S = TypeVar("S", bound="StandIn")


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
    """Base class: subclasses implement :meth:`handle`; ``start``/``stop`` run the server in threads.

    A request from a running actor is served in that actor's name (see :mod:`emulator.clock`): first a possible
    switch to another actor due at the same instant (while exploring interleavings), then ``latency_seconds``
    of virtual network time, then the answer.
    """

    def __init__(self, clock: VirtualClock, port: int = 0, listener: socket.socket | None = None) -> None:
        self.clock = clock
        self.latency_seconds = 0.0
        # A socket already bound (see listening_socket): its port is known, and kept, before the stand-in starts.
        self._listener = listener
        self._requested_port = listener.getsockname()[1] if listener is not None else port
        self._server: _Server | None = None

    def handle(self, request: Request) -> Reply:  # pragma: no cover - abstract
        raise NotImplementedError

    def dispatch(self, request: Request) -> Reply | None:
        """The reply to one request; None when the connection must close without one."""
        try:
            self.clock.checkpoint()
            if self.latency_seconds:
                self.clock.pause(self.latency_seconds)
            reply = self.handle(request)
        except SimulationStopped:
            return None
        except Exception as error:  # a stand-in bug must still answer, loudly
            reply = json_reply(500, {"Code": "EmulatorError", "Message": repr(error)})
        return None if reply is DROP else reply

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError(f"{type(self).__name__} is not started")
        return self._server.port

    @property
    def endpoint(self) -> str:
        """``host:port``, the form SDK configs take."""
        return f"{LOOPBACK}:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.endpoint}"

    def start(self: S) -> S:
        self._server = _Server(self, self._requested_port, self._listener)
        self._listener = None  # the server owns it now (and closes it on stop)
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None

    def __enter__(self: S) -> S:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def listening_socket(port: int = 0) -> socket.socket:
    """A socket bound to ``port`` on loopback (0: any free one), listening. Binding once and keeping the socket
    is what reserves a port: picking a free port, closing it and binding it again later races with other
    processes' connections."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((LOOPBACK, port))
    listener.listen(128)
    return listener


class _Server:
    """A small HTTP/1.1 server: one thread accepts, one thread per connection reads requests and writes replies.

    The standard library's http.server would do, but it costs about a millisecond per request (header parsing
    through the email package, a write per header line), more than the SDK client that calls it; the suite makes
    tens of thousands of requests.
    """

    def __init__(self, stand_in: StandIn, port: int, listener: socket.socket | None = None) -> None:
        self._stand_in = stand_in
        self._socket = listener if listener is not None else listening_socket(port)
        self.port: int = self._socket.getsockname()[1]
        self._connections: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._closing = False
        name = type(stand_in).__name__
        threading.Thread(target=self._accept, name=f"{name}-accept", daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                connection, _ = self._socket.accept()
            except OSError:
                return  # closed
            with self._lock:
                if self._closing:
                    connection.close()
                    return
                self._connections.add(connection)
            connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            threading.Thread(target=self._serve, args=(connection,), daemon=True).start()

    def _serve(self, connection: socket.socket) -> None:
        try:
            with connection, connection.makefile("rb") as reader:
                while self._one(connection, reader):
                    pass
        except OSError:
            pass  # the client went away, or the server closed
        finally:
            with self._lock:
                self._connections.discard(connection)

    def _one(self, connection: socket.socket, reader: Any) -> bool:
        """Serve one request; False when the connection is done."""
        line = reader.readline(65537)
        while line in (b"\r\n", b"\n"):
            line = reader.readline(65537)
        if not line:
            return False
        method, target, version = line.decode("latin-1").rstrip("\r\n").split(" ", 2)
        headers: dict[str, str] = {}
        while True:
            header = reader.readline(65537)
            if header in (b"\r\n", b"\n", b""):
                break
            name, _, value = header.decode("latin-1").partition(":")
            headers[name.strip().lower()] = value.strip()
        length = int(headers.get("content-length") or 0)
        body = reader.read(length) if length else b""
        parts = urlsplit(target)
        reply = self._stand_in.dispatch(Request(method, parts.path, parts.query, headers, body))
        if reply is None:
            return False
        head = [f"HTTP/1.1 {reply.status} {_phrase(reply.status)}"]
        head += [f"{name}: {value}" for name, value in reply.headers.items()]
        head.append(f"Content-Length: {len(reply.body)}")
        payload = ("\r\n".join(head) + "\r\n\r\n").encode("latin-1")
        connection.sendall(payload if method == "HEAD" else payload + reply.body)
        return version.upper() != "HTTP/1.0" and headers.get("connection", "").lower() != "close"

    def close(self) -> None:
        with self._lock:
            self._closing = True
            connections = list(self._connections)
        with contextlib.suppress(OSError):
            self._socket.shutdown(socket.SHUT_RDWR)
        self._socket.close()
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Status"

"""An isolated function: its code package run by an interpreter of its runtime, as FC runs it, and not imported
into this process. Nothing of this process's environment reaches it: the interpreter starts with ``-I -S -B`` (no
site-packages, no PYTHON* variables, no bytecode written into the code) and :mod:`emulator.fc.bootstrap` puts only
the code root and what the function's PYTHONPATH names in it on the path. A package that lacks a dependency fails
as it would on FC, with the ImportError in the function's log.

Each instance is a worker process; a run takes an idle one or starts one (FC starts instances as runs overlap),
and gives it back. The worker's clock calls are answered here, by the actor of the run, so the function's waits
take virtual time as the in-process function's do. :meth:`PackageProcess.unload` (the function deleted, or its code
replaced) ends the idle workers at once and the busy ones when their run ends: a run in progress finishes on the
code it started with.

Where this machine has no interpreter of the runtime (a fresh machine with only its own Python), the function runs
on this machine's interpreter instead, with the package's code but this environment's site-packages in place of the
package's ``python/`` folder (whose compiled parts are built for the runtime's Python), and says so in its log: the
lifecycle still runs, but the package's dependencies are not the ones tested. ``COPYIMAGE_LOCAL_RUNTIME=strict``
refuses instead (the function cannot start, as on a machine that must prove the package).
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import threading
from collections.abc import Callable, Mapping
from dataclasses import asdict
from pathlib import Path
from typing import Any

from emulator.clock import VirtualClock
from emulator.fc.model import Context, FunctionSpec

BOOTSTRAP = Path(__file__).resolve().parent / "bootstrap.py"
Log = Callable[[str], None]


class FunctionError(Exception):
    """The run's unhandled error, as the function's interpreter reported it (its type's name and message)."""

    def __init__(self, error_type: str, message: str, trace: list[str], fatal: bool = False) -> None:
        super().__init__(message)
        self.error_type = error_type
        self.trace = trace
        self.fatal = fatal  # the instance ended with it (its initialization failed, or it died)


def runtime_python(runtime: str) -> str:
    """The interpreter of an FC runtime (python3.10, python3.12) on this machine: pyenv's, else one on PATH."""
    version = runtime.removeprefix("python")
    found = sorted(Path.home().glob(f".pyenv/versions/{version}.*/bin/python"))
    if found:
        return str(found[-1])
    on_path = shutil.which(f"python{version}")
    if on_path is None:
        raise RuntimeError(f"no Python {version} on this machine to run the function's {runtime} code package")
    return on_path


def fallback_environment(environment: Mapping[str, str]) -> dict[str, str]:
    """The function's environment for this machine's interpreter: this environment's site-packages on its path
    instead of what its PYTHONPATH names in the package (``/code/python``); the code root stays first."""
    site = os.pathsep.join(dict.fromkeys(sysconfig.get_paths()[name] for name in ("purelib", "platlib")))
    return {**environment, "PYTHONPATH": site}


def context_json(context: Context) -> dict[str, Any]:
    credentials = context.credentials
    return {
        "request_id": context.request_id,
        "credentials": None
        if credentials is None
        else {
            "access_key_id": credentials.access_key_id,
            "access_key_secret": credentials.access_key_secret,
            "security_token": credentials.security_token,
        },
        "function": asdict(context.function),
        "service": None if context.service is None else asdict(context.service),
        "region": context.region,
        "account_id": context.account_id,
    }


class Worker:
    """One instance: an interpreter of the runtime with the function's code root, talking over two pipes."""

    def __init__(self, python: str, spec: FunctionSpec, environment: Mapping[str, str]) -> None:
        to_child, self._to_child = os.pipe()
        self._from_child, from_child = os.pipe()
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115 - closed by stop(); the interpreter's own failures, before the log takes over
        code_root = str(Path(spec.code_dir).resolve())
        command = [python, "-I", "-S", "-B", str(BOOTSTRAP), code_root, spec.handler, spec.clock_module]
        self.process = subprocess.Popen(  # noqa: S603 - our own interpreter and script
            [*command, str(to_child), str(from_child)],
            pass_fds=(to_child, from_child),
            env={"PATH": os.defpath, "LANG": "C.UTF-8", **environment},
            cwd=code_root,
            stdin=subprocess.DEVNULL,
            stdout=self._stderr,
            stderr=self._stderr,
        )
        os.close(to_child)
        os.close(from_child)
        self._writer = os.fdopen(self._to_child, "w", encoding="utf-8")
        self._reader = os.fdopen(self._from_child, "r", encoding="utf-8")

    def run(self, payload: bytes, context: Context, clock: VirtualClock, log: Log) -> object:
        """One invocation; clock calls are served here (so from the run's actor), log lines passed to ``log``."""
        message = {"op": "invoke", "payload": base64.b64encode(payload).decode(), "context": context_json(context)}
        self._send(message)
        while True:
            reply = self._receive()
            op = reply.get("op")
            if op == "now":
                self._send({"now": clock.now()})
            elif op == "sleep":
                clock.sleep(float(reply["seconds"]))
                self._send({})
            elif op == "log":
                log(str(reply["text"]))
            elif op == "result":
                return reply["json"] if "json" in reply else reply.get("text")
            elif op == "error":
                trace = list(reply.get("trace") or [])
                raise FunctionError(str(reply["type"]), str(reply["message"]), trace, bool(reply.get("fatal")))

    def cpu_seconds(self) -> float:
        """The CPU time the worker used so far (Linux's /proc; 0 where there is none)."""
        try:
            fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            return 0.0
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    @property
    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self) -> None:
        for stream in (self._writer, self._reader):
            with contextlib.suppress(OSError):
                stream.close()
        if self.alive:
            self.process.kill()
        self.process.wait()
        self._stderr.close()

    def _send(self, message: Mapping[str, Any]) -> None:
        try:
            self._writer.write(json.dumps(message) + "\n")
            self._writer.flush()
        except (BrokenPipeError, ValueError):
            raise self._died() from None

    def _receive(self) -> dict[str, Any]:
        line = self._reader.readline()
        if not line:
            raise self._died()
        reply: dict[str, Any] = json.loads(line)
        return reply

    def _died(self) -> FunctionError:
        self.process.wait()
        self._stderr.seek(0)
        tail = self._stderr.read().decode(errors="replace")[-2000:]
        message = f"the function's runtime exited ({self.process.returncode}): {tail}"
        return FunctionError("RuntimeExited", message, [], fatal=True)


class PackageProcess:
    """The isolated function: the same face as :class:`emulator.fc.process.FunctionProcess` (``load``,
    ``unload``, ``handler``), over a pool of workers."""

    def __init__(self, spec: FunctionSpec, log: Log) -> None:
        self.spec = spec
        self.handler: Callable[[bytes, Context], object] | None = None
        self._log = log
        self._lock = threading.Lock()
        self._idle: list[Worker] = []
        self._environment: dict[str, str] = {}
        self._clock: VirtualClock | None = None
        self._python = ""
        self.started = 0  # workers started: FC's cold starts
        self._cpu: dict[str, float] = {}  # request id -> CPU seconds its run took in its worker

    def load(self, environment: Mapping[str, str], clock: VirtualClock) -> None:
        self._environment, self._clock = dict(environment), clock
        try:
            self._python = runtime_python(self.spec.runtime)
        except RuntimeError as missing:
            if os.environ.get("COPYIMAGE_LOCAL_RUNTIME") == "strict":
                raise
            self._python, self._environment = sys.executable, fallback_environment(environment)
            notice = (
                f"{missing}: running the package's code on this machine's Python {sys.version.split()[0]} with "
                "this environment's packages instead of the package's python/ folder"
            )
            self._log(notice)
            print(f"note: {notice}", file=sys.stderr)
        self.handler = self._invoke

    def unload(self) -> None:
        self.handler = None
        with self._lock:
            idle, self._idle = self._idle, []
        for worker in idle:
            worker.stop()

    def _invoke(self, payload: bytes, context: Context) -> object:
        assert self._clock is not None
        worker = self._take()
        request_id, cpu = context.request_id, worker.cpu_seconds()
        try:
            result = worker.run(payload, context, self._clock, lambda text: self._log(f"{request_id} {text}"))
        except FunctionError as error:
            self._cpu[request_id] = worker.cpu_seconds() - cpu
            self._give_back(worker, keep=not error.fatal)
            raise
        except BaseException:  # the simulation stopped mid-run: the worker is mid-conversation
            worker.stop()
            raise
        self._cpu[request_id] = worker.cpu_seconds() - cpu
        self._give_back(worker, keep=True)
        return result

    def take_cpu(self, request_id: str) -> float:
        """The CPU time the run of ``request_id`` took in its worker (once)."""
        with self._lock:
            return self._cpu.pop(request_id, 0.0)

    def _take(self) -> Worker:
        with self._lock:
            while self._idle:
                worker = self._idle.pop()
                if worker.alive:
                    return worker
                worker.stop()
            self.started += 1
        return Worker(self._python, self.spec, self._environment)

    def _give_back(self, worker: Worker, keep: bool) -> None:
        with self._lock:
            if keep and self.handler is not None and worker.alive:
                self._idle.append(worker)
                return
        worker.stop()

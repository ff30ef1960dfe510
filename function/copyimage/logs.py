"""One structured logger for the whole function, and the rules that keep secrets out of it."""

from __future__ import annotations

import logging
import os
import sys
from typing import TextIO
from urllib.parse import urlsplit

from aws_lambda_powertools import Logger


class _StdoutHandler(logging.StreamHandler):  # type: ignore[type-arg,unused-ignore]
    """Writes to whatever sys.stdout is at the time, as FC collects it (and as test capture swaps it)."""

    def __init__(self) -> None:
        super().__init__(sys.stdout)

    @property
    def stream(self) -> TextIO:
        return sys.stdout

    @stream.setter
    def stream(self, _value: object) -> None:
        pass


logger = Logger(service=os.environ.get("POWERTOOLS_SERVICE_NAME", "ros-copy-image"), logger_handler=_StdoutHandler())


def redact_url(url: object) -> str:
    """A response URL without its query string (where the pre-signed credentials live) or userinfo."""
    if not isinstance(url, str) or not url:
        return "<none>"
    try:
        parts = urlsplit(url)
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "<malformed URL>"
    return f"{parts.scheme}://{parts.hostname or '?'}{port}{parts.path[:200]}"


def url_origin(url: object) -> dict[str, str]:
    """The scheme and host of a URL, for facts about where answers go (never the path or query)."""
    try:
        parts = urlsplit(url) if isinstance(url, str) else None
    except ValueError:
        parts = None
    if parts is None or not parts.scheme:
        return {"scheme": "", "host": ""}
    return {"scheme": parts.scheme, "host": parts.hostname or ""}


def log_fact(fact: str, **fields: object) -> None:
    """One line per request for what only a real deployment can settle (docs/conformance.md, "Only a real account
    can settle"); the README shows the log query that collects them."""
    logger.info("platform fact", extra={"fact": fact, **fields})


def begin_invocation(fc_request_id: str) -> None:
    """Start every invocation's log lines clean: nothing from the previous request, only this run's FC id."""
    logger.thread_safe_clear_keys()
    logger.thread_safe_append_keys(fc_request_id=fc_request_id)


def bind_request(*, request_type: str, request_id: str, stack_id: str, logical_resource_id: str) -> None:
    """Attach the ROS ids to every further line of this invocation (thread-safe: FC may run several)."""
    logger.thread_safe_append_keys(
        correlation_id=request_id,
        ros_request_id=request_id,
        stack_id=stack_id,
        logical_resource_id=logical_resource_id,
        request_type=request_type,
    )


class _SdkRequestDumpFilter(logging.Filter):
    """Drops the ``fc2`` package's error logs: they print request headers, security token included."""

    def filter(self, record: logging.LogRecord) -> bool:
        path = record.pathname.replace("\\", "/")
        return "/fc2/" not in path


_SDK_FILTER = _SdkRequestDumpFilter()


def guard_sdk_logs() -> None:
    """Install the filter on the root logger, where ``fc2`` logs (idempotent)."""
    root = logging.getLogger()
    if _SDK_FILTER not in root.filters:
        root.addFilter(_SDK_FILTER)

"""The function's calls to the outside, apart from ECS: answering ROS, and invoking itself later.

Every call has a timeout and bounded, jittered retries. Endpoints come from Settings, so tests and
the local cloud point them at loopback without touching this code.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from email.utils import formatdate
from urllib.parse import urlsplit

from copyimage.config import FunctionIdentity, Settings
from copyimage.credentials import Credentials
from copyimage.errors import InvocationFailed, ProviderError, ResponseRefused, sdk_message
from copyimage.logs import logger, redact_url
from copyimage.retry import with_retries

MAX_ASYNC_DELAY_SECONDS = 3600  # FC's limit for x-fc-async-delay
MAX_ASYNC_PAYLOAD_BYTES = 128 * 1024


# --- answering ROS -------------------------------------------------------------------------------------


class _Transient(Exception):
    """A delivery attempt that may succeed if tried again."""


def response_url_allowed(url: str, extra_hosts: frozenset[str]) -> bool:
    """https on an Alibaba Cloud host, or a host the operator listed (where http is allowed too)."""
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    if not host:
        return False
    netloc = f"{host}:{parts.port}" if parts.port else host
    if host in extra_hosts or netloc in extra_hosts:
        return parts.scheme in ("https", "http")
    return parts.scheme == "https" and host.endswith(".aliyuncs.com")


def deliver_answer(body: bytes, response_url: str, intranet_url: str | None, settings: Settings) -> None:
    """POST the answer to ROS. Raises ResponseRefused when ROS will never take it, ProviderError when it
    could not be delivered after every retry."""
    candidates = []
    for url in (response_url, intranet_url):
        if not url:
            continue
        if response_url_allowed(url, settings.response_hosts):
            candidates.append(url)
        else:
            logger.error(
                "response URL refused: not https on *.aliyuncs.com nor in COPYIMAGE_RESPONSE_HOSTS",
                extra={"response_url": redact_url(url)},
            )
    if not candidates:
        raise ResponseRefused("no allowed response URL: refusing to send the answer anywhere else")
    current = {"index": 0}

    def attempt() -> None:
        url = candidates[current["index"]]
        try:
            status = _post_json(url, body, settings.http_timeout_seconds)
        except Exception as error:  # no answer at all; the message could carry the URL: keep only the type
            if current["index"] + 1 < len(candidates):
                current["index"] += 1  # the public URL cannot be reached: try the intranet one
            raise _Transient(f"{redact_url(url)} unreachable ({type(error).__name__})") from None
        if 200 <= status < 300:
            logger.info("answer delivered", extra={"response_url": redact_url(url), "http_status": status})
            return
        if status == 429 or status >= 500:
            raise _Transient(f"{redact_url(url)} answered HTTP {status}")
        raise ResponseRefused(f"ROS refused the answer with HTTP {status}")

    try:
        with_retries(
            attempt,
            attempts=settings.response_attempts,
            is_transient=lambda error: isinstance(error, _Transient),
            sleep=settings.clock.sleep,
            on_retry=lambda n, error, pause: logger.warning(
                "answer not delivered, retrying", extra={"attempt": n, "error": str(error), "pause_seconds": pause}
            ),
        )
    except _Transient as error:
        raise ProviderError(
            f"the answer could not be delivered after {settings.response_attempts} tries: {error}"
        ) from None


def _post_json(url: str, body: bytes, timeout: float) -> int:
    request = urllib.request.Request(  # noqa: S310 - scheme and host checked by response_url_allowed
        url,
        data=body,
        method="POST",
        headers={"Content-Type": "application/json", "Date": formatdate(usegmt=True)},
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as reply:  # noqa: S310
            return reply.status
    except urllib.error.HTTPError as error:
        return error.code


# --- invoking this function again ----------------------------------------------------------------------


def invoke_later(
    identity: FunctionIdentity, payload: dict, delay_seconds: float, credentials: Credentials, settings: Settings
) -> None:
    """Schedule an asynchronous invocation of this very function after ``delay_seconds``."""
    body = json.dumps(payload, separators=(",", ":")).encode()
    if len(body) > MAX_ASYNC_PAYLOAD_BYTES:
        raise InvocationFailed(f"the continuation is {len(body)} bytes, over FC's async limit")
    delay = str(max(0, min(MAX_ASYNC_DELAY_SECONDS, round(delay_seconds))))
    if identity.service:
        call, attempts = (lambda: _invoke_fc2(identity, body, delay, credentials, settings)), 1  # fc2 retries itself
    else:
        call, attempts = (lambda: _invoke_fc3(identity, body, delay, credentials, settings)), settings.ecs_attempts
    try:
        with_retries(
            call, attempts=attempts, is_transient=lambda e: isinstance(e, _Transient), sleep=settings.clock.sleep
        )
    except _Transient as error:
        raise InvocationFailed(f"{error} (after {attempts} tries)") from None


def _fc_endpoint(identity: FunctionIdentity, settings: Settings) -> tuple[str, str]:
    """(protocol, host[:port]) of the FC API."""
    if settings.fc_endpoint:
        parts = urlsplit(settings.fc_endpoint)
        return parts.scheme or "https", parts.netloc or parts.path
    return "https", f"{identity.account_id}.{identity.region}.fc.aliyuncs.com"


def _invoke_fc3(
    identity: FunctionIdentity, body: bytes, delay: str, credentials: Credentials, settings: Settings
) -> None:
    from alibabacloud_fc20230330 import models as fc_models
    from alibabacloud_fc20230330.client import Client
    from alibabacloud_tea_openapi.exceptions import AlibabaCloudException
    from alibabacloud_tea_openapi.models import Config
    from darabonba.runtime import RuntimeOptions

    protocol, endpoint = _fc_endpoint(identity, settings)
    timeout_ms = int(settings.http_timeout_seconds * 1000)
    client = Client(
        Config(
            access_key_id=credentials.access_key_id,
            access_key_secret=credentials.access_key_secret,
            security_token=credentials.security_token,
            endpoint=endpoint,
            protocol=protocol,
            region_id=identity.region,
        )
    )
    try:
        client.invoke_function_with_options(
            identity.name,
            fc_models.InvokeFunctionRequest(body=body),
            fc_models.InvokeFunctionHeaders(x_fc_invocation_type="Async", common_headers={"x-fc-async-delay": delay}),
            RuntimeOptions(autoretry=False, connect_timeout=timeout_ms, read_timeout=timeout_ms),
        )
    except AlibabaCloudException as error:
        status = getattr(error, "status_code", None) or 0
        if status == 429 or status >= 500:
            raise _Transient(f"FC InvokeFunction: HTTP {status} {error.code}") from None
        raise InvocationFailed(f"FC InvokeFunction failed: {error.code}: {sdk_message(error)}") from None
    except Exception as error:  # no HTTP answer at all
        raise _Transient(f"FC InvokeFunction: {type(error).__name__}") from None


def _invoke_fc2(
    identity: FunctionIdentity, body: bytes, delay: str, credentials: Credentials, settings: Settings
) -> None:
    import fc2

    protocol, endpoint = _fc_endpoint(identity, settings)
    client = fc2.Client(
        endpoint=f"{protocol}://{endpoint}",
        accessKeyID=credentials.access_key_id,
        accessKeySecret=credentials.access_key_secret,
        securityToken=credentials.security_token or "",
        Timeout=settings.http_timeout_seconds,
    )
    try:
        client.invoke_function(
            identity.service,
            identity.name,
            payload=body,
            headers={"x-fc-invocation-type": "Async", "x-fc-async-delay": delay},
            qualifier=identity.qualifier,
        )
    except fc2.fc_exceptions.FcError as error:
        raise InvocationFailed(f"FC InvokeFunction failed: HTTP {error.status_code} {error.err_code}") from None
    except Exception as error:
        raise InvocationFailed(f"FC InvokeFunction: {type(error).__name__}") from None

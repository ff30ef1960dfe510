"""The function's calls to the outside, apart from ECS: answering ROS, and invoking itself later.

Every call has a timeout and bounded, jittered retries. Endpoints come from Settings, so tests and the local
cloud point them at loopback without touching this code.
"""

from __future__ import annotations

import ipaddress
import json
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from email.utils import formatdate
from typing import Literal
from urllib.parse import urlsplit

from copyimage.config import SETTINGS_HELP, FunctionIdentity, Settings
from copyimage.credentials import Credentials
from copyimage.errors import AlreadyScheduled, InvocationFailed, is_hiccup, sdk_message
from copyimage.logs import logger, redact_url
from copyimage.retry import with_retries
from copyimage.waiting import MAX_DELAY, MIN_DELAY

MAX_ASYNC_PAYLOAD_BYTES = 128 * 1024
# FC's task deduplication: a task id given twice is refused with 409 (FC 3.0 and FC 2.0 "asynchronous tasks").
FC3_TASK_HEADER = "x-fc-async-task-id"
FC2_TASK_HEADER = "x-fc-stateful-async-invocation-id"
ALIBABA_SUFFIX = ".aliyuncs.com"


# --- where answers may go --------------------------------------------------------------------------------------


def url_refusal(url: str, listed_hosts: frozenset[str]) -> str | None:
    """Why an answer must never be sent to ``url``, or None when it may be.

    Allowed: https on a host under .aliyuncs.com (ROS documents a pre-signed URL, not its host), or a host the
    operator listed in COPYIMAGE_RESPONSE_HOSTS (there http is allowed too). Never: credentials in the URL, or
    an IP address nobody listed.
    """
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return "it is not a valid URL"
    host = (parts.hostname or "").lower()
    if not host:
        return "it has no host"
    if parts.username is not None or parts.password is not None:
        return "it carries credentials (user:password@)"
    netloc = f"{host}:{port}" if port else host
    if host in listed_hosts or netloc in listed_hosts:
        return None if parts.scheme in ("https", "http") else f"its scheme {parts.scheme!r} is neither https nor http"
    if _is_ip(host):
        return f"its host {host} is an IP address not listed in {SETTINGS_HELP}"
    if parts.scheme != "https":
        return f"its scheme is {parts.scheme!r}: only https is allowed for hosts not listed in {SETTINGS_HELP}"
    if not host.endswith(ALIBABA_SUFFIX):
        return f"its host {host} is not under {ALIBABA_SUFFIX} nor listed in {SETTINGS_HELP}"
    return None


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


def answer_urls(response_url: str, intranet_url: str | None, settings: Settings) -> list[str]:
    """The response URLs an answer may go to, public first; each refused one is logged (never its query)."""
    allowed = []
    for url in (response_url, intranet_url):
        if not url:
            continue
        refusal = url_refusal(url, settings.response_hosts)
        if refusal is None:
            allowed.append(url)
        else:
            logger.error(
                f"response URL refused: {refusal}; {SETTINGS_HELP} lists further allowed hosts",
                extra={"response_url": redact_url(url)},
            )
    return allowed


# --- answering ROS ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Delivery:
    """How sending one answer ended."""

    outcome: Literal["delivered", "refused", "undelivered"]
    detail: str = ""


class _Transient(Exception):
    """A delivery attempt that may succeed if tried again."""


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """A 3xx is not a delivery: following it would send the answer (as a GET) wherever the redirect says."""

    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None


_OPENER = urllib.request.build_opener(_NoRedirects())


def deliver_answer(body: bytes, urls: list[str], settings: Settings) -> Delivery:
    """POST the answer to ROS: retried on no answer, 3xx, 429 and 5xx; the intranet URL when the public one fails."""
    if not urls:
        return Delivery("refused", "no allowed response URL")
    current = {"index": 0}

    def attempt() -> str:
        url = urls[current["index"]]
        try:
            status = _post_json(url, body, settings.http_timeout_seconds)
        except Exception as error:  # no answer at all; the message could carry the URL: keep only the type
            problem = f"{redact_url(url)} unreachable ({type(error).__name__})"
        else:
            if 200 <= status < 300:
                logger.info("answer delivered", extra={"response_url": redact_url(url), "http_status": status})
                return url
            if not (300 <= status < 400 or status == 429 or status >= 500):
                raise _Refused(f"ROS refused the answer with HTTP {status}")
            problem = f"{redact_url(url)} answered HTTP {status}"
        if current["index"] + 1 < len(urls):
            current["index"] += 1  # the public URL does not take it: try the intranet one
        raise _Transient(problem)

    try:
        with_retries(
            attempt,
            attempts=settings.response_attempts,
            is_transient=lambda error: isinstance(error, _Transient),
            on_retry=lambda n, error, pause: logger.warning(
                "answer not delivered, retrying", extra={"attempt": n, "error": str(error), "pause_seconds": pause}
            ),
        )
    except _Refused as refused:
        return Delivery("refused", str(refused))
    except _Transient as error:
        return Delivery(
            "undelivered", f"the answer could not be delivered after {settings.response_attempts} tries: {error}"
        )
    return Delivery("delivered")


class _Refused(Exception):
    """ROS answered, and will never take this answer."""


def _post_json(url: str, body: bytes, timeout: float) -> int:
    request = urllib.request.Request(  # noqa: S310 - scheme and host checked by url_refusal
        url,
        data=body,
        method="POST",
        headers={"Content-Type": "application/json", "Date": formatdate(usegmt=True)},
    )
    try:
        with _OPENER.open(request, timeout=timeout) as reply:
            return int(reply.status)
    except urllib.error.HTTPError as error:
        return int(error.code)


# --- invoking this function again ------------------------------------------------------------------------------


def invoke_later(
    identity: FunctionIdentity,
    payload: dict[str, object],
    delay_seconds: int,
    credentials: Credentials,
    settings: Settings,
    task_id: str | None = None,
) -> None:
    """Schedule an asynchronous invocation of this very function after ``delay_seconds`` (a whole number of
    seconds within FC's documented range), as the task ``task_id``.

    FC refuses a second task with the same id with 409 (its task deduplication): that raises AlreadyScheduled,
    also when an earlier try of this very call went through unseen, as the task then exists all the same.
    """
    body = json.dumps(payload, separators=(",", ":")).encode()
    if len(body) > MAX_ASYNC_PAYLOAD_BYTES:
        raise InvocationFailed(f"the continuation is {len(body)} bytes, over FC's async limit")
    if not MIN_DELAY <= delay_seconds <= MAX_DELAY:
        raise ValueError(f"x-fc-async-delay {delay_seconds} is outside [{MIN_DELAY}, {MAX_DELAY}]")
    headers = {"x-fc-invocation-type": "Async", "x-fc-async-delay": str(delay_seconds)}
    if identity.service:
        if task_id:
            headers[FC2_TASK_HEADER] = task_id
        attempts = 1  # fc2 retries by itself
        call = lambda: _invoke_fc2(identity, body, headers, credentials, settings)  # noqa: E731
    else:
        if task_id:
            headers[FC3_TASK_HEADER] = task_id
        attempts = settings.ecs_attempts
        call = lambda: _invoke_fc3(identity, body, headers, credentials, settings)  # noqa: E731
    try:
        with_retries(call, attempts=attempts, is_transient=lambda e: isinstance(e, _Transient))
    except _Transient as error:
        raise InvocationFailed(f"{error} (after {attempts} tries)") from None


def _fc_endpoint(identity: FunctionIdentity, settings: Settings) -> tuple[str, str]:
    """(protocol, host[:port]) of the FC API."""
    if settings.fc_endpoint:
        parts = urlsplit(settings.fc_endpoint)
        return parts.scheme or "https", parts.netloc or parts.path
    return "https", f"{identity.account_id}.{identity.region}.fc.aliyuncs.com"


def _invoke_fc3(
    identity: FunctionIdentity, body: bytes, headers: dict[str, str], credentials: Credentials, settings: Settings
) -> None:
    """FC 3.0 InvokeFunction through the OpenAPI core the ECS SDK already loaded: the same request the FC 3.0 SDK
    builds (ROA, ``POST /2023-03-30/functions/{name}/invocations``, ACS3 signature), without importing that SDK
    on every cold start (bench/compare.py: about 0.07 CPU-seconds)."""
    from urllib.parse import quote

    # FC 3.0's API reference does not list x-fc-async-delay; its async overview documents it (range (0, 3600) s).
    path = f"/2023-03-30/functions/{quote(identity.name, safe='')}/invocations"
    _call_fc3("InvokeFunction", "POST", path, identity, credentials, settings, headers=headers, body=body)


def stop_task(identity: FunctionIdentity, task_id: str, credentials: Credentials, settings: Settings) -> bool:
    """Stop a scheduled task that is no longer needed (FC 3.0 StopAsyncTask); False where it cannot be stopped
    (FC 2.0's SDK has no such call here, the task ran already, or FC refused): the task then runs, and finds
    nothing left to do."""
    if identity.service:
        return False
    from urllib.parse import quote

    path = f"/2023-03-30/functions/{quote(identity.name, safe='')}/async-tasks/{quote(task_id, safe='')}/stop"
    try:
        with_retries(
            lambda: _call_fc3("StopAsyncTask", "PUT", path, identity, credentials, settings),
            attempts=settings.ecs_attempts,
            is_transient=lambda e: isinstance(e, _Transient),
        )
    except (_Transient, InvocationFailed) as error:
        logger.info("the scheduled task could not be stopped", extra={"task_id": task_id, "reason": str(error)})
        return False
    return True


def _call_fc3(
    action: str,
    method: str,
    path: str,
    identity: FunctionIdentity,
    credentials: Credentials,
    settings: Settings,
    headers: dict[str, str] | None = None,
    body: bytes | None = None,
) -> None:
    """One FC 3.0 API call through the OpenAPI core the ECS SDK already loaded: the request the FC 3.0 SDK builds
    (ROA, ACS3 signature), without importing that SDK on every cold start (bench/compare.py: about 0.07
    CPU-seconds). 409 raises AlreadyScheduled; 429, 5xx and no answer raise _Transient."""
    from alibabacloud_tea_openapi.client import Client
    from alibabacloud_tea_openapi.utils_models import Config, OpenApiRequest, Params
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
    params = Params(
        action=action,
        version="2023-03-30",
        protocol=protocol.upper(),
        pathname=path,
        method=method,
        auth_type="AK",
        style="ROA",
        req_body_type="json",
        body_type="binary",
    )
    try:
        client.call_api(
            params,
            OpenApiRequest(headers=headers or {}, body=body, stream=body),
            RuntimeOptions(autoretry=False, connect_timeout=timeout_ms, read_timeout=timeout_ms),
        )
    except Exception as error:
        raise _fc3_failure(action, error) from None


def _fc3_failure(action: str, error: Exception) -> Exception:
    """What a failed FC 3.0 call raises: AlreadyScheduled for 409, _Transient for 429, 5xx and no answer at all,
    InvocationFailed for the rest."""
    from alibabacloud_tea_openapi.exceptions import AlibabaCloudException

    if not isinstance(error, AlibabaCloudException):  # no HTTP answer at all
        return _Transient(f"FC {action}: {type(error).__name__}")
    status = getattr(error, "status_code", None) or 0
    if status == 409:
        return AlreadyScheduled(f"FC {action}: HTTP 409 {error.code}")
    if status == 429 or status >= 500:
        return _Transient(f"FC {action}: HTTP {status} {error.code}")
    return InvocationFailed(f"FC {action} failed: {error.code}: {sdk_message(error)}")


def _invoke_fc2(
    identity: FunctionIdentity, body: bytes, headers: dict[str, str], credentials: Credentials, settings: Settings
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
            headers=headers,
            qualifier=identity.qualifier,
        )
    except fc2.fc_exceptions.FcError as error:
        if error.status_code == 409:
            raise AlreadyScheduled(f"FC InvokeFunction: HTTP 409 {error.err_code}") from None
        raise InvocationFailed(f"FC InvokeFunction failed: HTTP {error.status_code} {error.err_code}") from None
    except Exception as error:
        raise InvocationFailed(f"FC InvokeFunction: {type(error).__name__}") from None


# --- RPC-style APIs (ROS, OOS) ---------------------------------------------------------------------------------


class RpcRefusal(Exception):
    """An RPC-style call that failed: the service's code (``ConnectionError`` when nothing answered)."""

    def __init__(self, product: str, action: str, code: str, message: str, status: int | None = None) -> None:
        super().__init__(f"{product} {action} failed: {code}: {message}")
        self.product, self.action, self.code, self.message, self.status = product, action, code, message, status

    @property
    def transient(self) -> bool:
        """A hiccup (:func:`errors.is_hiccup`), or HTTP 429: worth another try later."""
        return is_hiccup(self.code, self.status) or self.status == 429


def call_rpc(
    product: str,
    action: str,
    version: str,
    endpoint: str,
    query: dict[str, str],
    credentials: Credentials,
    settings: Settings,
) -> dict[str, object]:
    """One RPC-style call through the OpenAPI core the ECS SDK already loaded (the request a generated SDK builds:
    ``POST /``, form body, ACS3 signature), retried on throttling, 5xx and no answer; returns the body. Raises
    RpcRefusal. ``endpoint`` is a host, or a URL whose scheme is used (the local cloud's plain HTTP)."""
    from alibabacloud_tea_openapi.client import Client
    from alibabacloud_tea_openapi.exceptions import AlibabaCloudException
    from alibabacloud_tea_openapi.utils_models import Config, OpenApiRequest, Params
    from darabonba.runtime import RuntimeOptions

    parts = urlsplit(endpoint if "//" in endpoint else f"https://{endpoint}")
    timeout_ms = int(settings.http_timeout_seconds * 1000)
    runtime = RuntimeOptions(autoretry=False, connect_timeout=timeout_ms, read_timeout=timeout_ms)
    config = Config(
        access_key_id=credentials.access_key_id,
        access_key_secret=credentials.access_key_secret,
        security_token=credentials.security_token,
        endpoint=parts.netloc,
        protocol=parts.scheme,
        region_id=query.get("RegionId"),
    )
    params = Params(action=action, version=version, protocol=parts.scheme.upper(), pathname="/", method="POST")
    params.auth_type, params.style, params.req_body_type, params.body_type = "AK", "RPC", "formData", "json"

    def once() -> dict[str, object]:
        try:
            reply = Client(config).call_api(params, OpenApiRequest(query=query), runtime)
        except AlibabaCloudException as error:
            status = getattr(error, "status_code", None)
            raise RpcRefusal(product, action, str(error.code), sdk_message(error), status) from None
        except Exception as error:  # no HTTP answer at all
            raise RpcRefusal(product, action, "ConnectionError", f"no answer ({type(error).__name__})") from None
        body = reply.get("body") if isinstance(reply, dict) else None
        return body if isinstance(body, dict) else {}

    return _retried(once, product, action, settings)


def _retried(once: Callable[[], dict[str, object]], product: str, action: str, settings: Settings) -> dict[str, object]:
    return with_retries(
        once,
        attempts=settings.ecs_attempts,
        is_transient=lambda error: isinstance(error, RpcRefusal) and error.transient,
        on_retry=lambda attempt, error, pause: logger.warning(
            f"{product} call failed, retrying", extra={"action": action, "error": str(error), "attempt": attempt}
        ),
    )

"""Check request signatures the way Alibaba Cloud gateways do.

Three schemes are modelled:
- ACS3-HMAC-SHA256, used by the Tea/Darabonba SDKs (ECS RPC calls and the FC 3.0 API);
- the RPC signature version 1.0 (``SignatureMethod=HMAC-SHA1`` among the parameters), used by the classic SDKs and so
  by the ``aliyun`` CLI's RPC calls, and by the Tea SDKs configured with ``signature_algorithm='v2'``;
- the FC 2.0 scheme, ``Authorization: FC <AccessKeyId>:<base64 HMAC-SHA256>``, used by ``fc2``.

A failure raises :class:`AuthError` carrying the HTTP status and an Alibaba error code; each stand-in
shapes the error body its own API uses.
"""

from __future__ import annotations

import base64
import calendar
import hashlib
import hmac
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from urllib.parse import parse_qsl, quote, unquote

from emulator.credentials import AccessKey, CredentialStore
from emulator.errors import ApiError

MAX_CLOCK_SKEW_SECONDS = 15 * 60


class AuthError(ApiError):
    """A refused request, as the gateway answers it."""


@dataclass(frozen=True)
class SignedRequest:
    """What a verifier needs from an HTTP request: lower-cased header names, the raw path and query."""

    method: str
    path: str
    query: str
    headers: Mapping[str, str]
    body: bytes


class NonceRegistry:
    """Remembers signature nonces for the skew window, so a replayed request is refused."""

    def __init__(self) -> None:
        self._seen: dict[str, float] = {}
        self._lock = threading.Lock()

    def claim(self, nonce: str) -> bool:
        now = time.time()
        with self._lock:
            if len(self._seen) > 10_000:
                self._seen = {n: t for n, t in self._seen.items() if now - t < MAX_CLOCK_SKEW_SECONDS}
            if nonce in self._seen:
                return False
            self._seen[nonce] = now
            return True


def _check_fresh(signed_at: float) -> None:
    if abs(time.time() - signed_at) > MAX_CLOCK_SKEW_SECONDS:
        raise AuthError(400, "InvalidTimeStamp.Expired", "Specified time stamp or date value is expired.")


def _known_key(store: CredentialStore, key_id: str, presented_token: str | None) -> AccessKey:
    key = store.lookup(key_id)
    if key is None:
        raise AuthError(404, "InvalidAccessKeyId.NotFound", "Specified access key is not found.")
    if key.security_token is not None and not presented_token:
        raise AuthError(400, "MissingSecurityToken", "SecurityToken is mandatory for this access key.")
    if key.security_token is not None and not hmac.compare_digest(key.security_token, presented_token or ""):
        raise AuthError(400, "InvalidSecurityToken.Mismatch", "Specified SecurityToken mismatch with the AccessKey.")
    return key


def _acs3_canonical_query(query: str) -> str:
    pairs = sorted(parse_qsl(query, keep_blank_values=True))
    return "&".join(f"{key}={quote(value, safe='~')}" for key, value in pairs)


def verify_acs3(request: SignedRequest, store: CredentialStore, nonces: NonceRegistry) -> AccessKey:
    """Verify an ``ACS3-HMAC-SHA256`` request and return the caller's key."""
    authorization = request.headers.get("authorization", "")
    algorithm, _, rest = authorization.partition(" ")
    if algorithm != "ACS3-HMAC-SHA256":
        raise AuthError(400, "IncompleteSignature", "The request signature does not conform to Aliyun standards.")
    fields = dict(part.strip().split("=", 1) for part in rest.split(",") if "=" in part)
    key_id, signed_names, signature = fields.get("Credential"), fields.get("SignedHeaders"), fields.get("Signature")
    if not key_id or not signed_names or not signature:
        raise AuthError(400, "IncompleteSignature", "The request signature does not conform to Aliyun standards.")
    names = signed_names.split(";")
    for required in ("host", "x-acs-date", "x-acs-content-sha256", "x-acs-signature-nonce"):
        if required not in names:
            raise AuthError(400, "IncompleteSignature", f"Header {required} must be signed.")
    if "x-acs-security-token" in request.headers and "x-acs-security-token" not in names:
        raise AuthError(400, "IncompleteSignature", "Header x-acs-security-token must be signed.")

    date = request.headers.get("x-acs-date", "")
    try:
        _check_fresh(calendar.timegm(time.strptime(date, "%Y-%m-%dT%H:%M:%SZ")))
    except ValueError:
        raise AuthError(
            400, "InvalidTimeStamp.Format", "Specified time stamp or date value is not well formatted."
        ) from None

    payload_hash = request.headers.get("x-acs-content-sha256", "")
    if not hmac.compare_digest(payload_hash, hashlib.sha256(request.body).hexdigest()):
        raise AuthError(400, "SignatureDoesNotMatch", "The content hash does not match the request body.")

    key = _known_key(store, key_id, request.headers.get("x-acs-security-token"))
    canonical_headers = "".join(f"{name}:{request.headers.get(name, '').strip()}\n" for name in names)
    canonical_request = "\n".join(
        [
            request.method,
            request.path or "/",
            _acs3_canonical_query(request.query),
            canonical_headers,
            signed_names,
            payload_hash,
        ]
    )
    string_to_sign = "ACS3-HMAC-SHA256\n" + hashlib.sha256(canonical_request.encode()).hexdigest()
    expected = hmac.new(key.secret.encode(), string_to_sign.encode(), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, signature):
        raise AuthError(400, "SignatureDoesNotMatch", "Specified signature is not matched with our calculation.")
    if not nonces.claim(request.headers["x-acs-signature-nonce"]):
        raise AuthError(400, "SignatureNonceUsed", "Specified signature nonce was used already.")
    return key


V1_SIGNED_PARAMETERS = ("AccessKeyId", "SignatureMethod", "SignatureVersion", "SignatureNonce", "Timestamp")


def _percent_encode(text: str) -> str:
    """RFC 3986 encoding as the RPC signature document defines it: only ``A-Z a-z 0-9 - _ . ~`` stay as they are."""
    return quote(text, safe="~")


def verify_rpc_v1(method: str, params: Mapping[str, str], store: CredentialStore, nonces: NonceRegistry) -> AccessKey:
    """Verify an RPC request signed with signature version 1.0 (HMAC-SHA1 over the sorted parameters, query and form
    body together) and return the caller's key."""
    missing = [name for name in (*V1_SIGNED_PARAMETERS, "Signature") if not params.get(name)]
    if missing:
        raise AuthError(400, "MissingParameter", f"The input parameter {missing[0]} that is mandatory is missing.")
    if params["SignatureMethod"] != "HMAC-SHA1" or params["SignatureVersion"] != "1.0":
        raise AuthError(400, "IncompleteSignature", "The request signature does not conform to Aliyun standards.")
    try:
        _check_fresh(calendar.timegm(time.strptime(params["Timestamp"], "%Y-%m-%dT%H:%M:%SZ")))
    except ValueError:
        raise AuthError(
            400, "InvalidTimeStamp.Format", "Specified time stamp or date value is not well formatted."
        ) from None
    key = _known_key(store, params["AccessKeyId"], params.get("SecurityToken"))
    canonical = "&".join(
        f"{_percent_encode(name)}={_percent_encode(value)}"
        for name, value in sorted(params.items())
        if name != "Signature"
    )
    string_to_sign = f"{method.upper()}&{_percent_encode('/')}&{_percent_encode(canonical)}"
    digest = hmac.new(f"{key.secret}&".encode(), string_to_sign.encode(), hashlib.sha1).digest()
    if not hmac.compare_digest(base64.b64encode(digest).decode(), params["Signature"]):
        raise AuthError(400, "SignatureDoesNotMatch", "Specified signature is not matched with our calculation.")
    if not nonces.claim(params["SignatureNonce"]):
        raise AuthError(400, "SignatureNonceUsed", "Specified signature nonce was used already.")
    return key


def verify_fc2(request: SignedRequest, store: CredentialStore) -> AccessKey:
    """Verify an FC 2.0 request (``Authorization: FC <id>:<signature>``) and return the caller's key."""
    authorization = request.headers.get("authorization", "")
    if not authorization.startswith("FC ") or ":" not in authorization:
        raise AuthError(403, "InvalidAccessKeyID", "Authorization header must be 'FC <AccessKeyId>:<Signature>'.")
    key_id, _, signature = authorization[3:].partition(":")
    date = request.headers.get("date", "")
    try:
        _check_fresh(parsedate_to_datetime(date).timestamp())
    except (TypeError, ValueError):
        raise AuthError(403, "InvalidArgument", "Date header is missing or not in RFC 1123 form.") from None
    try:
        key = _known_key(store, key_id, request.headers.get("x-fc-security-token"))
    except AuthError as error:
        raise AuthError(
            403, "InvalidAccessKeyID" if error.status == 404 else "InvalidSecurityToken", error.message
        ) from None

    fc_headers = sorted((name, value) for name, value in request.headers.items() if name.startswith("x-fc-"))
    canonical_headers = "".join(f"{name}:{value}\n" for name, value in fc_headers)
    resource = unquote(request.path)
    if request.query:
        resource += "\n" + "\n".join(sorted(f"{k}={v}" for k, v in parse_qsl(request.query, keep_blank_values=True)))
    string_to_sign = "\n".join(
        [
            request.method.upper(),
            request.headers.get("content-md5", ""),
            request.headers.get("content-type", ""),
            date,
            canonical_headers + resource,
        ]
    )
    expected = base64.b64encode(
        hmac.new(key.secret.encode(), string_to_sign.encode(), hashlib.sha256).digest()
    ).decode()
    if not hmac.compare_digest(expected, signature):
        raise AuthError(
            403, "SignatureNotMatch", "The request signature we calculated does not match the signature you provided."
        )
    return key

"""The AccessKey pairs and STS tokens that the stand-ins accept."""

from __future__ import annotations

import secrets
import threading
from dataclasses import dataclass


@dataclass(frozen=True)
class AccessKey:
    id: str
    secret: str
    security_token: str | None = None  # set for STS credentials, which must present it


class CredentialStore:
    def __init__(self) -> None:
        self._keys: dict[str, AccessKey] = {}
        self._lock = threading.Lock()

    def add_access_key(self, key_id: str | None = None, secret: str | None = None) -> AccessKey:
        key = AccessKey(key_id or "LTAI" + secrets.token_hex(8), secret or secrets.token_urlsafe(24))
        with self._lock:
            self._keys[key.id] = key
        return key

    def issue_sts(self) -> AccessKey:
        """Temporary credentials, as FC hands a function with a role."""
        key = AccessKey("STS." + secrets.token_hex(10), secrets.token_urlsafe(24), "CAIS" + secrets.token_urlsafe(48))
        with self._lock:
            self._keys[key.id] = key
        return key

    def revoke(self, key_id: str) -> None:
        with self._lock:
            self._keys.pop(key_id, None)

    def lookup(self, key_id: str) -> AccessKey | None:
        with self._lock:
            return self._keys.get(key_id)

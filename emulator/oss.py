"""A minimal Object Storage Service stand-in: buckets of objects, in this process, for the code packages that
``ALIYUN::FC3::Function`` takes from OSS (``Code.OssBucketName``/``Code.OssObjectName``).

Only what the provider's installation uses: PutObject (the README's "upload the zip" step, here a Python call) and
GetObject (what FC does when it creates or updates a function from OSS), with OSS's documented error codes for a
missing bucket or object (404 ``NoSuchBucket``, 404 ``NoSuchKey``). No HTTP: nothing of the provider talks to OSS,
only ROS and FC do, and they are in this process too.
"""

from __future__ import annotations

import hashlib
import threading

from emulator.errors import ApiError


class OssError(ApiError):
    """An OSS error: HTTP status, OSS error code, message."""


class ObjectStore:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._buckets: dict[str, dict[str, bytes]] = {}

    def create_bucket(self, bucket: str) -> None:
        with self._lock:
            self._buckets.setdefault(bucket, {})

    def put_object(self, bucket: str, key: str, data: bytes) -> str:
        """Store ``data`` (replacing an object of that name); returns its ETag (the MD5 of a simple upload)."""
        with self._lock:
            objects = self._bucket(bucket)
            objects[key] = bytes(data)
        return hashlib.md5(data, usedforsecurity=False).hexdigest().upper()

    def get_object(self, bucket: str, key: str) -> bytes:
        with self._lock:
            objects = self._bucket(bucket)
            if key not in objects:
                raise OssError(404, "NoSuchKey", f"The specified key does not exist: {key}")
            return objects[key]

    def _bucket(self, bucket: str) -> dict[str, bytes]:
        if bucket not in self._buckets:
            raise OssError(404, "NoSuchBucket", f"The specified bucket does not exist: {bucket}")
        return self._buckets[bucket]

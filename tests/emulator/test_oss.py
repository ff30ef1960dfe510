"""The object store the local cloud keeps code packages in (emulator/oss.py)."""

from __future__ import annotations

import hashlib

import pytest

from emulator.oss import ObjectStore, OssError


def test_an_object_put_is_got_back_and_replaced_by_the_next_put():
    store = ObjectStore()
    store.create_bucket("code")
    etag = store.put_object("code", "a.zip", b"first")
    assert etag == hashlib.md5(b"first", usedforsecurity=False).hexdigest().upper()
    assert store.get_object("code", "a.zip") == b"first"
    store.put_object("code", "a.zip", b"second")
    assert store.get_object("code", "a.zip") == b"second"


def test_missing_buckets_and_objects_are_refused_with_osss_codes():
    store = ObjectStore()
    with pytest.raises(OssError) as no_bucket:
        store.put_object("nowhere", "a.zip", b"x")
    assert (no_bucket.value.status, no_bucket.value.code) == (404, "NoSuchBucket")
    store.create_bucket("code")
    with pytest.raises(OssError) as no_key:
        store.get_object("code", "missing.zip")
    assert (no_key.value.status, no_key.value.code) == (404, "NoSuchKey")

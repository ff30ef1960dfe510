"""What the local ROS does for the resource types it creates itself (:mod:`emulator.ros.resource_types`): a RAM
role is a record here; an FC 3.0 function is created in the FC stand-in, its code fetched from the local object
store (:mod:`emulator.oss`), unpacked and run isolated (:mod:`emulator.fc.sandbox`); its asynchronous invocation
settings are the FC stand-in's; a random string and an OOS secret parameter, the continuation key, are
:mod:`emulator.ros.keys`'. Each operation returns the resource's physical id and attributes, or raises
:class:`ResourceFailed` with the reason the stack's event shows.
"""

from __future__ import annotations

import base64
import hashlib
import io
import os
import secrets
import shutil
import tempfile
import threading
import time
import uuid
import zipfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Protocol

from emulator.errors import ApiError
from emulator.fc.model import FunctionSpec
from emulator.oos import OosStandIn
from emulator.oss import ObjectStore
from emulator.ros import keys
from emulator.ros.models import ResourceFailed
from emulator.ros.resource_types import RESOURCE_TYPES, check_values

RUNTIMES = ("python3.10", "python3.12")  # FC runtimes the stand-in can run (interpreters of this machine)
CODE_CACHE = Path(tempfile.gettempdir()) / f"ros-copy-image-fc-code-{os.getuid()}"
CACHE_KEEP = 6  # unpacked packages kept (most recently used first); older ones go once unused for an hour
DEFAULT_ASYNC_RETRIES = 3  # ALIYUN::FC3::AsyncInvokeConfig: "when not configured, the default number of retries is 3"
ASYNC_EVENT_AGE = (1, 604800)  # MaxAsyncEventAgeInSeconds: {'Range': {'Min': 1, 'Max': 604800}}
ASYNC_RETRIES = (0, 8)  # MaxAsyncRetryAttempts: "Value range [0,8]"


class Functions(Protocol):
    """What this module needs of the FC stand-in (:class:`emulator.fc.backend.FcBackend`)."""

    spec: FunctionSpec
    region: str
    account_id: str
    network_environment: dict[str, str]

    @property
    def deployed(self) -> bool: ...

    @property
    def service_token(self) -> str: ...

    def deploy(self, spec: FunctionSpec) -> None: ...

    def remove_function(self) -> None: ...


@dataclass
class Role:
    name: str
    arn: str
    role_id: str
    trust: dict[str, Any]
    policies: list[Any]


class NativeResources:
    def __init__(self, fc: Functions, oss: ObjectStore | None, oos: OosStandIn | None = None) -> None:
        self.fc = fc
        self.oss = oss
        self.parameters = keys.SecretParameters(oos, fc.region)  # in the stack's (and the function's) region
        self.roles: dict[str, Role] = {}
        self._lock = threading.Lock()

    def create(self, kind: str, properties: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        _check(kind, properties)
        if kind == "ALIYUN::RAM::Role":
            return self._create_role(properties)
        if kind == "ALIYUN::RandomString":
            return keys.random_string(properties)
        if kind == "ALIYUN::OOS::SecretParameter":
            return self.parameters.create(properties)
        if kind == "ALIYUN::FC3::Function":
            if self.fc.deployed:
                raise ResourceFailed(f"FunctionAlreadyExists: this stand-in holds one function ({self.fc.spec.name})")
            return self._deploy(properties)
        return self._configure_async(properties)

    def update(self, kind: str, old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
        _check(kind, new)
        fixed = [name for name, prop in RESOURCE_TYPES[kind].properties.items() if not prop.updatable]
        changed = [name for name in fixed if old.get(name) != new.get(name)]
        if changed:
            raise ResourceFailed(f"{', '.join(changed)} of {kind} cannot be updated (a replacement is not emulated)")
        if kind == "ALIYUN::RAM::Role":
            role = self.roles[new["RoleName"]]
            role.trust, role.policies = new["AssumeRolePolicyDocument"], list(new.get("Policies") or [])
            return _role_attributes(role)
        if kind == "ALIYUN::RandomString":
            return keys.random_string(new)[1]  # any change draws a new value
        if kind == "ALIYUN::OOS::SecretParameter":
            return self.parameters.update(old, new)
        if kind == "ALIYUN::FC3::Function":
            if new["FunctionName"] != old["FunctionName"]:
                raise ResourceFailed("FunctionName of ALIYUN::FC3::Function: a rename is not emulated")
            return self._deploy(new)[1]
        return {}

    def delete(self, kind: str, physical_id: str) -> None:
        if kind == "ALIYUN::RAM::Role":
            self.roles.pop(physical_id, None)
        elif kind == "ALIYUN::OOS::SecretParameter":
            self.parameters.delete(physical_id)
        elif kind == "ALIYUN::RandomString":
            pass  # nothing outside the stack
        elif kind == "ALIYUN::FC3::Function":
            if self.fc.deployed and self.fc.spec.name == physical_id:
                self.fc.remove_function()
        elif self.fc.deployed:
            self.fc.spec.max_async_retries = DEFAULT_ASYNC_RETRIES

    # -- RAM --------------------------------------------------------------------------------------------------

    def _create_role(self, properties: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        name = properties["RoleName"]
        with self._lock:
            if name in self.roles:
                raise ResourceFailed(f"EntityAlreadyExists.Role: the role {name} already exists")
            role = Role(
                name,
                f"acs:ram::{self.fc.account_id}:role/{name}",
                str(3 * 10**17 + secrets.randbelow(10**17)),
                properties["AssumeRolePolicyDocument"],
                list(properties.get("Policies") or []),
            )
            self.roles[name] = role
        return name, _role_attributes(role)

    # -- FC ---------------------------------------------------------------------------------------------------

    def _deploy(self, properties: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        runtime = properties["Runtime"]
        if runtime not in RUNTIMES:
            raise ResourceFailed(f"Runtime {runtime} is not emulated (only {', '.join(RUNTIMES)})")
        _check_cpu(properties)
        data = self._code(properties.get("Code") or {})
        digest = hashlib.sha256(data).hexdigest()
        environment = {str(k): str(v) for k, v in (properties.get("EnvironmentVariables") or {}).items()}
        retries = self.fc.spec.max_async_retries if self.fc.deployed else DEFAULT_ASYNC_RETRIES
        spec = FunctionSpec(
            name=properties["FunctionName"],
            code_dir=unpacked(data, digest),
            handler=properties["Handler"],
            timeout=float(properties.get("Timeout", 3)),
            memory=int(properties.get("MemorySize", 128)),
            environment={**environment, **self.fc.network_environment},
            runtime=runtime,
            isolated=True,
            code_checksum=digest,
            role=str(properties.get("Role") or ""),
            max_async_retries=retries,
            credentials_in_context=runtime == "python3.10",  # python3.12: from the environment (see s.yaml)
            credentials_in_environment=runtime != "python3.10",
        )
        try:
            self.fc.deploy(spec)
        except (ValueError, RuntimeError) as error:
            raise ResourceFailed(f"{type(error).__name__}: {error}") from None
        attributes = {"ARN": self.fc.service_token, "FunctionName": spec.name, "FunctionId": str(uuid.uuid4())}
        return spec.name, attributes

    def _code(self, code: dict[str, Any]) -> bytes:
        for name in ("SourceCode", "Checksum"):
            if code.get(name):
                raise ResourceFailed(f"Code.{name} of ALIYUN::FC3::Function is not emulated")
        if code.get("ZipFile"):
            return base64.b64decode(str(code["ZipFile"]))
        bucket, key = code.get("OssBucketName"), code.get("OssObjectName")
        if not bucket or not key or self.oss is None:
            raise ResourceFailed("Code of ALIYUN::FC3::Function needs ZipFile, or OssBucketName and OssObjectName")
        try:
            return self.oss.get_object(str(bucket), str(key))
        except ApiError as error:
            raise ResourceFailed(f"the code package oss://{bucket}/{key}: {error.code}: {error.message}") from None

    def _configure_async(self, properties: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        name = properties["FunctionName"]
        if not self.fc.deployed or self.fc.spec.name != name:
            raise ResourceFailed(f"FunctionNotFound: function '{name}' does not exist")
        retries = int(properties.get("MaxAsyncRetryAttempts", DEFAULT_ASYNC_RETRIES))
        age = int(properties.get("MaxAsyncEventAgeInSeconds", ASYNC_EVENT_AGE[1]))
        if not ASYNC_RETRIES[0] <= retries <= ASYNC_RETRIES[1] or not ASYNC_EVENT_AGE[0] <= age <= ASYNC_EVENT_AGE[1]:
            raise ResourceFailed(f"MaxAsyncRetryAttempts {retries} or MaxAsyncEventAgeInSeconds {age} out of range")
        if properties.get("DestinationConfig"):
            raise ResourceFailed("DestinationConfig of ALIYUN::FC3::AsyncInvokeConfig is not emulated")
        self.fc.spec = replace(self.fc.spec, max_async_retries=retries)
        return f"{name}|LATEST", {}


def _check(kind: str, properties: dict[str, Any]) -> None:
    problem = check_values(kind, properties)
    if problem:
        raise ResourceFailed(problem)


def _check_cpu(properties: dict[str, Any]) -> None:
    """Cpu: "a multiple of 0.05 vCPU ... minimum 0.05, maximum 16 ... cpu to memory size (GB) between 1:1 and 1:4"."""
    if "Cpu" not in properties:
        return
    cpu, memory_gb = float(properties["Cpu"]), int(properties.get("MemorySize", 128)) / 1024
    multiple = abs(cpu / 0.05 - round(cpu / 0.05)) < 1e-9
    if not (multiple and 0.05 <= cpu <= 16 and cpu <= memory_gb <= 4 * cpu):
        raise ResourceFailed(f"Cpu {cpu:g} with MemorySize {memory_gb * 1024:g} MB is not valid")


def _role_attributes(role: Role) -> dict[str, Any]:
    return {"Arn": role.arn, "RoleId": role.role_id, "RoleName": role.name}


def unpacked(data: bytes, digest: str) -> Path:
    """The code package unpacked (kept by its hash, shared by every local cloud on this machine)."""
    target = CODE_CACHE / digest[:24]
    if target.is_dir():
        os.utime(target)  # used now: kept by the pruning below
        return target
    CODE_CACHE.mkdir(parents=True, exist_ok=True)
    partial = Path(tempfile.mkdtemp(prefix=f"{digest[:24]}.", dir=CODE_CACHE))
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            archive.extractall(partial)
    except zipfile.BadZipFile:
        shutil.rmtree(partial, ignore_errors=True)
        raise ResourceFailed("the code package is not a zip file") from None
    try:
        partial.rename(target)
    except OSError:  # another local cloud unpacked it meanwhile
        shutil.rmtree(partial, ignore_errors=True)
    _prune()
    return target


def _prune() -> None:
    """Unpacked packages beyond the CACHE_KEEP most recently used, unused for an hour (the wall clock's: these
    are files of this machine, not simulated state), are removed."""
    entries = sorted(
        (path for path in CODE_CACHE.iterdir() if path.is_dir() and "." not in path.name),
        key=lambda path: path.stat().st_mtime,
        reverse=True,
    )
    for old in entries[CACHE_KEEP:]:
        if time.time() - old.stat().st_mtime > 3600:
            shutil.rmtree(old, ignore_errors=True)

"""The whole local cloud in one object: ECS, FC, ROS and OOS stand-ins wired to the real function, on one virtual
clock.

Two ways to have the function: from the working tree, imported into this process (the default, for the suite's
speed), or, with ``function_deployed=False``, none until a stack creates it: deploy/provider.yml's
``ALIYUN::FC3::Function`` takes the code package from the object store (``oss``) and FC runs it isolated, in its
runtime's own interpreter (deploy/smoke.py, ``make demo`` and ``make smoke`` install it that way). The continuation
key (an OOS secret parameter) is made at start for the first; the second gets the one that stack makes."""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable
from dataclasses import replace
from pathlib import Path
from typing import Any

from emulator.clock import DEFAULT_START, VirtualClock
from emulator.credentials import AccessKey, CredentialStore
from emulator.ecs import DEFAULT_REGIONS, EcsStandIn
from emulator.fc import FcStandIn, FunctionSpec
from emulator.http import LOOPBACK, listening_socket
from emulator.oos import OosStandIn
from emulator.oss import ObjectStore
from emulator.ros import RosStandIn, load_template
from emulator.ros.native import NativeResources

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = ROOT / "template.yml"
FUNCTION_DIR = ROOT / "function"
SOURCE_REGION = "cn-hangzhou"
KEY_PARAMETER = "copyimage-continuation-key"  # the function's default COPYIMAGE_CONTINUATION_KEY_PARAMETER


def install_function_clock(clock: VirtualClock) -> Callable[[], None]:
    """Point the function's clock (copyimage.clock) at the virtual one; returns what undoes it."""
    from copyimage import clock as function_clock

    previous = function_clock.install(clock)

    def undo() -> None:
        function_clock.install(previous)

    return undo


def provider_function(code_dir: Path, handler: str, fc_api: str) -> FunctionSpec:
    """The provider's function as the local cloud deploys it: an FC 3.0 function, or one in an FC 2.0 service."""
    return FunctionSpec(
        name="ros-copy-image",
        code_dir=code_dir,
        handler=handler,
        service="ros-copy-image-svc" if fc_api == "fc2" else None,
        install_clock=install_function_clock,
    )


class LocalCloud:
    """Start with ``with LocalCloud(...) as cloud:``; everything listens on 127.0.0.1 only.

    ``interleave_seed`` makes the stand-ins offer a switch point at every request and run actors due at the same
    instant in a seeded random order (the model-based test explores interleavings that way).
    """

    def __init__(
        self,
        *,
        copy_seconds: float = 60.0,
        fc_api: str = "fc3",
        invocation_type: str = "Async",
        function_timeout: float = 300.0,
        max_async_retries: int = 3,
        credentials_in_context: bool = True,
        credentials_in_environment: bool = False,
        public_url_reachable: bool = True,
        send_physical_id_after_timeout: bool = False,
        accept_late_answers: bool = False,
        environment: dict[str, str] | None = None,
        region: str = SOURCE_REGION,
        interleave_seed: int | None = None,
        seed: int = 0,
        code_dir: Path = FUNCTION_DIR,
        handler: str = "index.handler",
        start: float = DEFAULT_START,
        function_deployed: bool = True,
        regions: Iterable[str] = DEFAULT_REGIONS,
    ) -> None:
        self.clock, self.credentials = VirtualClock(start, interleave_seed=interleave_seed), CredentialStore()
        self.seed, self.region, self._extra_environment = seed, region, dict(environment or {})
        self.ecs = EcsStandIn(self.clock, self.credentials, regions, copy_seconds=copy_seconds)
        fc_listener = listening_socket()  # the function's environment names FC's endpoint before FC starts
        self._fc_port: int = fc_listener.getsockname()[1]
        self.function = replace(
            provider_function(code_dir, handler, fc_api),
            timeout=function_timeout,
            max_async_retries=max_async_retries,
            credentials_in_context=credentials_in_context,
            credentials_in_environment=credentials_in_environment,
        )
        self.fc = FcStandIn(
            self.clock, self.credentials, self.function, region, listener=fc_listener, deployed=function_deployed
        )
        self.oss, self.oos = ObjectStore(), OosStandIn(self.clock, self.credentials)  # code packages; the seal key
        self.ros = RosStandIn(
            self.clock,
            self.fc,
            region=region,
            invocation_type=invocation_type,
            public_url_reachable=public_url_reachable,
            send_physical_id_after_timeout=send_physical_id_after_timeout,
            accept_late_answers=accept_late_answers,
            credentials=self.credentials,  # the ROS 2019-09-10 API, on POST / of self.ros.endpoint, signs with these
            native=NativeResources(self.fc, self.oss, self.oos),  # the role, the key, the function and its config
        )

    def start(self) -> LocalCloud:
        random.seed(self.seed)  # the function's retry jitter: the same run every time
        self.ecs.start()
        self.ros.start()
        self.oos.start()
        if self.fc.deployed:  # else the stack that deploys it (deploy/provider.yml) makes the key
            self.oos.put(self.region, KEY_PARAMETER)
        self.function.environment.update(self.function_environment())
        self.fc.network_environment = self.function_environment()
        self.fc.start()
        return self

    def reset(self, seed: int, interleave: bool = True) -> None:
        """A fresh account on the running cloud, for the next scenario: the stand-ins forget everything, the
        function's retry jitter and the interleaving of same-instant events follow ``seed``."""
        self.ecs.reset()
        self.fc.reset()
        self.ros.reset()  # the continuation key stays: a function instance keeps it cached
        self.clock.reseed(seed if interleave else None)
        random.seed(seed)

    def stop(self) -> None:
        self.clock.close()
        for stand_in in (self.fc, self.ros, self.ecs, self.oos):
            stand_in.stop()

    def __enter__(self) -> LocalCloud:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def function_environment(self) -> dict[str, str]:
        """What the function needs to use this cloud instead of Alibaba Cloud's endpoints."""
        return {
            "COPYIMAGE_ECS_ENDPOINT": self.ecs.url,
            "COPYIMAGE_FC_ENDPOINT": f"http://{LOOPBACK}:{self._fc_port}",
            "COPYIMAGE_ROS_ENDPOINT": self.ros.url,
            "COPYIMAGE_OOS_ENDPOINT": self.oos.url,
            "COPYIMAGE_RESPONSE_HOSTS": LOOPBACK,
            "POWERTOOLS_SERVICE_NAME": "ros-copy-image",
            **self._extra_environment,
        }

    def ros_client(self, key: AccessKey | None = None, *, signature_v1: bool = False) -> Any:
        """An ``alibabacloud_ros20190910`` client for this cloud's ROS API (plain HTTP to ``ros.endpoint``), signing
        with ``key`` (a new access key of the cloud's credential store when None), in the cloud's region; with
        ``signature_v1``, signing as the ``aliyun`` CLI's RPC calls do (signature 1.0, HMAC-SHA1)."""
        from alibabacloud_ros20190910.client import Client
        from alibabacloud_tea_openapi.utils_models import Config

        key = key or self.credentials.add_access_key()
        config = Config(
            access_key_id=key.id,
            access_key_secret=key.secret,
            security_token=key.security_token,
            endpoint=self.ros.endpoint,
            protocol="http",
            region_id=self.region,
            signature_algorithm="v2" if signature_v1 else None,
        )
        return Client(config)

    def template(self, path: Path = TEMPLATE) -> dict[str, Any]:
        return load_template(path)

    def seed_image(self, name: str = "golden-image", region: str | None = None, snapshot_count: int = 2) -> Any:
        return self.ecs.seed_image(region or self.region, name=name, snapshot_count=snapshot_count)

    def billed_seconds(self) -> float:
        return sum(invocation.billed_seconds for invocation in self.fc.invocations)

"""Settings read from the environment, with defaults that suit a real deployment.

Everything a test or the local cloud needs to point elsewhere is here, so no code is patched.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from copyimage.logs import logger
from copyimage.retry import worst_case_seconds
from copyimage.waiting import PRECISION_SECONDS

ROS_MAX_WAIT_SECONDS = 43200  # ROS's longest custom resource Timeout
SETTINGS_HELP = "COPYIMAGE_RESPONSE_HOSTS"
DEFAULT_KEY_PARAMETER = "copyimage-continuation-key"


@dataclass(frozen=True)
class FunctionIdentity:
    """Where this function lives, so that it can invoke itself later."""

    name: str
    region: str
    account_id: str
    service: str | None = None  # FC 2.0 only
    qualifier: str | None = None  # FC 2.0 only


@dataclass(frozen=True)
class Settings:
    ecs_endpoint: str | None = None  # COPYIMAGE_ECS_ENDPOINT: one URL for every ECS region
    fc_endpoint: str | None = None  # COPYIMAGE_FC_ENDPOINT: the FC API endpoint for self-invocation
    response_hosts: frozenset[str] = frozenset()  # COPYIMAGE_RESPONSE_HOSTS: extra allowed response hosts
    function: FunctionIdentity | None = None  # from FC_*; None outside Function Compute
    defer: bool = True  # COPYIMAGE_DEFER=false: never re-invoke; long copies then fail before the timeout
    inline_wait_seconds: float = 0.0  # how long one invocation may wait inline before it hands over (see README)
    deadline_margin_seconds: float = 15.0  # kept free before the function's timeout, for the answer
    max_wait_seconds: float = ROS_MAX_WAIT_SECONDS  # overall limit for one Create
    cleanup_wait_seconds: float = 3600.0  # overall limit for one Update or Delete
    ecs_attempts: int = 4  # tries per ECS call on throttling and transient errors
    response_attempts: int = 6  # tries to deliver one answer to ROS
    http_timeout_seconds: float = 10.0  # per network call
    precision_seconds: float = PRECISION_SECONDS  # COPYIMAGE_PRECISION_SECONDS: how closely looks pin the end
    verify_with_ros: bool = True  # COPYIMAGE_VERIFY_WITH_ROS=false: act on a first delivery without asking ROS
    ros_endpoint: str | None = None  # COPYIMAGE_ROS_ENDPOINT: the ROS API (default ros.aliyuncs.com)
    oos_endpoint: str | None = None  # COPYIMAGE_OOS_ENDPOINT: the OOS API (default oos.<function region>...)
    key_parameter: str = DEFAULT_KEY_PARAMETER  # COPYIMAGE_CONTINUATION_KEY_PARAMETER: the OOS secret parameter

    @property
    def ecs_call_bound(self) -> float:
        """The longest one ECS call can take, retries included, when ECS does not answer."""
        return worst_case_seconds(self.ecs_attempts, self.http_timeout_seconds)

    @property
    def answer_bound(self) -> float:
        """The longest delivering one answer can take, every try included."""
        return worst_case_seconds(self.response_attempts, self.http_timeout_seconds)

    @property
    def can_defer(self) -> bool:
        """Whether a wait can be handed to a later invocation of this function."""
        return self.defer and self.function is not None

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env

        def number(name: str, default: float, low: float, high: float) -> float:
            return _number(env, name, default, low, high)

        function = None
        if env.get("FC_FUNCTION_NAME") and env.get("FC_REGION") and env.get("FC_ACCOUNT_ID"):
            function = FunctionIdentity(
                name=env["FC_FUNCTION_NAME"],
                region=env["FC_REGION"],
                account_id=env["FC_ACCOUNT_ID"],
                service=env.get("FC_SERVICE_NAME") or None,
                qualifier=env.get("FC_QUALIFIER") or None,
            )
        hosts = frozenset(h.strip().lower() for h in env.get(SETTINGS_HELP, "").split(",") if h.strip())

        def flag(name: str) -> bool:
            return env.get(name, "true").strip().lower() not in ("false", "0", "no", "off")

        return cls(
            ecs_endpoint=env.get("COPYIMAGE_ECS_ENDPOINT") or None,
            fc_endpoint=env.get("COPYIMAGE_FC_ENDPOINT") or None,
            response_hosts=hosts,
            function=function,
            defer=flag("COPYIMAGE_DEFER"),
            inline_wait_seconds=number("COPYIMAGE_INLINE_WAIT_SECONDS", 0.0, 0.0, 3600.0),
            deadline_margin_seconds=number("COPYIMAGE_DEADLINE_MARGIN_SECONDS", 15.0, 1.0, 600.0),
            max_wait_seconds=number("COPYIMAGE_MAX_WAIT_SECONDS", ROS_MAX_WAIT_SECONDS, 1.0, ROS_MAX_WAIT_SECONDS),
            cleanup_wait_seconds=number("COPYIMAGE_CLEANUP_WAIT_SECONDS", 3600.0, 1.0, ROS_MAX_WAIT_SECONDS),
            ecs_attempts=int(number("COPYIMAGE_ECS_ATTEMPTS", 4, 1, 10)),
            response_attempts=int(number("COPYIMAGE_RESPONSE_ATTEMPTS", 6, 1, 10)),
            http_timeout_seconds=number("COPYIMAGE_HTTP_TIMEOUT_SECONDS", 10.0, 1.0, 60.0),
            precision_seconds=number("COPYIMAGE_PRECISION_SECONDS", PRECISION_SECONDS, 1.0, 60.0),
            verify_with_ros=flag("COPYIMAGE_VERIFY_WITH_ROS"),
            ros_endpoint=env.get("COPYIMAGE_ROS_ENDPOINT") or None,
            oos_endpoint=env.get("COPYIMAGE_OOS_ENDPOINT") or None,
            key_parameter=env.get("COPYIMAGE_CONTINUATION_KEY_PARAMETER", "").strip() or DEFAULT_KEY_PARAMETER,
        )


def _number(env: Mapping[str, str], name: str, default: float, low: float, high: float) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        # A typo in the configuration must not leave every request unanswered.
        logger.warning("ignoring a setting that is not a number", extra={"variable": name, "value": raw[:100]})
        return default
    return min(max(value, low), high)

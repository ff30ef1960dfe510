"""The OOS stand-in: encrypted (secret) parameters, GetSecretParameter only, on the shared RPC envelope.

The provider reads the key that seals its continuations from an OOS secret parameter (copyimage.sealing). OOS's
GetSecretParameter reference documents RegionId, Name, ParameterVersion (1 to 100) and WithDecryption ("only when
true does Value hold the value"), and the reply's Parameter (Name, Type ``Secret``, Value, ParameterVersion,
CreatedDate, UpdatedDate, ...). Updating a parameter adds a version. Not documented on that page, hence choices:
the error for a parameter or version that does not exist (404 ``EntityNotExists.Parameter``) and its status.
"""

from __future__ import annotations

import secrets
import threading
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone

from emulator.clock import VirtualClock
from emulator.credentials import CredentialStore
from emulator.errors import ApiError
from emulator.http import Reply, Request, StandIn
from emulator.rpc import Call, Params, RpcEnvelope

API_VERSION = "2019-06-01"
HOST_ID = "oos.aliyuncs.com"
MAX_VERSION = 100  # ParameterVersion: "1-100"


@dataclass
class SecretParameter:
    name: str
    region: str
    values: list[tuple[str, float]] = field(default_factory=list)  # (value, written at), version N at index N-1
    key_id: str = field(default_factory=lambda: str(uuid.uuid4()))


class OosStandIn(StandIn):
    """Secret parameters per region; ``fail_next`` injects refusals (throttling, 5xx) for tests."""

    def __init__(self, clock: VirtualClock, credentials: CredentialStore, port: int = 0) -> None:
        super().__init__(clock, port)
        self.parameters: dict[tuple[str, str], SecretParameter] = {}
        self._lock = threading.Lock()
        self._faults: list[ApiError] = []
        self.rpc: RpcEnvelope[Params] = RpcEnvelope(
            clock,
            credentials,
            version=API_VERSION,
            host_id=HOST_ID,
            actions={"GetSecretParameter": self.get_secret_parameter},
            params=Params,
            before_action=self._inject,
        )

    @property
    def calls(self) -> list[Call]:
        return self.rpc.calls

    def handle(self, request: Request) -> Reply:
        return self.rpc.handle(request)

    def put(self, region: str, name: str, value: str | None = None) -> str:
        """Create the parameter, or add a version to it (UpdateSecretParameter); returns the value written."""
        value = value if value is not None else secrets.token_hex(32)
        with self._lock:
            parameter = self.parameters.setdefault((region, name), SecretParameter(name, region))
            parameter.values.append((value, self.clock.now()))
        return value

    def create(self, region: str, name: str, value: str, key_id: str | None = None) -> SecretParameter:
        """A new parameter, version 1 (what ROS's ALIYUN::OOS::SecretParameter makes); refused if the name is taken.
        The refusal's code is a choice (CreateSecretParameter's reference, as GetSecretParameter's, names none)."""
        with self._lock:
            if (region, name) in self.parameters:
                raise ApiError(409, "EntityAlreadyExists.Parameter", f"The Parameter ({name}) already exists.")
            parameter = SecretParameter(name, region, [(value, self.clock.now())])
            if key_id:
                parameter.key_id = key_id
            self.parameters[(region, name)] = parameter
        return parameter

    def remove(self, region: str, name: str) -> None:
        with self._lock:
            self.parameters.pop((region, name), None)

    def fail_next(self, count: int = 1, status: int = 503, code: str = "ServiceUnavailable") -> None:
        with self._lock:
            self._faults.extend(ApiError(status, code, "injected fault") for _ in range(count))

    def _inject(self, action: str) -> None:
        with self._lock:
            fault = self._faults.pop(0) if self._faults else None
        if fault is not None:
            raise fault

    def get_secret_parameter(self, params: Params) -> dict[str, object]:
        region, name = params.get("RegionId") or "", params.required("Name")
        decrypt = params.boolean("WithDecryption")
        with self._lock:
            parameter = self.parameters.get((region, name))
            count = len(parameter.values) if parameter else 0
            version = params.integer("ParameterVersion", count, 1, MAX_VERSION) if count else 0
            if parameter is None or not 1 <= version <= count:
                raise ApiError(404, "EntityNotExists.Parameter", f"The Parameter ({name}) does not exist.")
            value, written = parameter.values[version - 1]
            created = parameter.values[0][1]
        return {
            "Parameter": {
                "Name": name,
                "Type": "Secret",
                "Value": value if decrypt else "",
                "ParameterVersion": version,
                "KeyId": parameter.key_id,
                "CreatedDate": _time(created),
                "UpdatedDate": _time(written),
            }
        }


def _time(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")

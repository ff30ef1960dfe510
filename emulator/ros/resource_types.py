"""The ROS resource types the local ROS creates itself (besides custom resources), as ROS's resource type
references list them: every property (type, required, updatable), the maps the provider's template fills in, and
the attributes ``Fn::GetAtt`` can read. deploy/provider.yml is checked against these lists (tests/test_provider.py)
and the stand-in refuses a property that is not in them, as ROS does at CreateStack.

Sources (cited in docs/conformance.md): the ROS resource type references at the URLs below; the names inside
``Code`` and ``LogConfig`` as the ROS CDK (``@alicloud/ros-cdk-fc3``, generated from ROS's resource specifications)
gives them, ``RosFunction.CodeProperty`` and ``RosFunction.LogConfigProperty``. ALIYUN::RandomString's reference was
not at hand: its list is Heat's OS::Heat::RandomString in ROS's spelling (docs/conformance.md says so).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from emulator.ros.models import TemplateError


@dataclass(frozen=True)
class Property:
    type: str  # String | Integer | Number | Boolean | Map | List
    required: bool = False
    updatable: bool = True


@dataclass(frozen=True)
class ResourceType:
    name: str
    url: str
    properties: Mapping[str, Property]
    attributes: tuple[str, ...]
    maps: Mapping[str, Mapping[str, Property]] = field(default_factory=dict)  # the known keys of some Map properties


def _props(spec: str) -> dict[str, Property]:
    """``Name:Type[:required][:fixed]`` items, one a line (fixed: "Editable/Allow updates: No")."""
    found = {}
    for line in spec.split():
        name, kind, *flags = line.split(":")
        found[name] = Property(kind, "required" in flags, "fixed" not in flags)
    return found


RAM_ROLE = ResourceType(
    "ALIYUN::RAM::Role",
    "https://www.alibabacloud.com/help/en/ros/developer-reference/aliyun-ram-role",
    _props(
        """RoleName:String:required:fixed Description:String:fixed AssumeRolePolicyDocument:Map:required
        MaxSessionDuration:Integer Policies:List IgnoreExisting:Boolean:fixed DeletionForce:Boolean
        PolicyAttachments:Map"""
    ),
    ("Arn", "RoleId", "RoleName"),
)

FC3_FUNCTION = ResourceType(
    "ALIYUN::FC3::Function",
    "https://www.alibabacloud.com/help/en/ros/developer-reference/aliyun-fc3-function",
    _props(
        """FunctionName:String:required Handler:String:required Runtime:String:required Cpu:Number
        CustomContainerConfig:Map Code:Map CustomRuntimeConfig:Map CustomDns:Map Description:String
        DiskSize:Integer EnvironmentVariables:Map GpuConfig:Map InstanceLifecycleConfig:Map InternetAccess:Boolean
        InstanceConcurrency:Integer Layers:List LogConfig:Map MemorySize:Integer NasConfig:Map OssMountConfig:Map
        Role:String TracingConfig:Map Timeout:Integer VpcConfig:Map DisableOndemand:Boolean
        SessionAffinityConfig:Map InstanceIsolationMode:String SessionAffinity:String Tags:List"""
    ),
    ("ARN", "FunctionId", "FunctionName"),
    {
        "Code": _props("Checksum:String OssBucketName:String OssObjectName:String SourceCode:String ZipFile:String"),
        "LogConfig": _props(
            "EnableInstanceMetrics:Boolean EnableRequestMetrics:Boolean LogBeginRule:String Logstore:String "
            "Project:String"
        ),
    },
)

FC3_ASYNC_INVOKE_CONFIG = ResourceType(
    "ALIYUN::FC3::AsyncInvokeConfig",
    "https://www.alibabacloud.com/help/en/ros/developer-reference/aliyun-fc3-asyncinvokeconfig",
    _props(
        """FunctionName:String:required:fixed AsyncTask:Boolean:fixed DestinationConfig:Map:fixed
        MaxAsyncEventAgeInSeconds:Integer:fixed MaxAsyncRetryAttempts:Integer:fixed"""
    ),
    (),
)

# The key that seals the function's continuations (deploy/provider.yml makes it): "Editable" as the reference says.
OOS_SECRET_PARAMETER = ResourceType(
    "ALIYUN::OOS::SecretParameter",
    "https://www.alibabacloud.com/help/en/ros/developer-reference/aliyun-oos-secretparameter",
    _props(
        """SecretParameterName:String:required:fixed Value:String:required Description:String
        Constraints:Map:fixed ResourceGroupId:String KeyId:String:fixed Tags:List"""
    ),
    (
        "Description",
        "CreatedBy",
        "ResourceGroupId",
        "SecretParameterName",
        "UpdatedDate",
        "CreateTime",
        "KeyId",
        "SecretParameterId",
        "UpdatedBy",
        "Type",
        "Constraints",
        "ParameterVersion",
        "Tags",
        "ShareType",
    ),
)

# The key's value. Its reference page was not among the documents searched: the names are Heat's
# OS::Heat::RandomString (ROS derives from Heat) in ROS's spelling, and deploy/provider.yml sets only Length.
RANDOM_STRING = ResourceType(
    "ALIYUN::RandomString",
    "https://www.alibabacloud.com/help/en/ros/developer-reference/aliyun-randomstring",
    _props("Length:Integer Sequence:String CharacterClasses:List CharacterSequences:List Salt:String"),
    ("Value",),
)

RESOURCE_TYPES = {
    kind.name: kind for kind in (RAM_ROLE, FC3_FUNCTION, FC3_ASYNC_INVOKE_CONFIG, OOS_SECRET_PARAMETER, RANDOM_STRING)
}
_PYTHON_TYPES: dict[str, tuple[type, ...]] = {
    "String": (str,),
    "Integer": (int,),
    "Number": (int, float),
    "Boolean": (bool, str),
    "Map": (dict,),
    "List": (list,),
}


def check_declared(kind: str, properties: Mapping[str, Any], where: str) -> None:
    """Before anything runs: every property is one the reference lists, every required one is there (values
    given by functions are checked once resolved, by :func:`check_values`)."""
    spec = RESOURCE_TYPES[kind]
    unknown = sorted(set(properties) - set(spec.properties))
    if unknown:
        raise TemplateError(f"{where}: Unknown Property {', '.join(unknown)} of {kind}")
    missing = sorted(name for name, prop in spec.properties.items() if prop.required and name not in properties)
    if missing:
        raise TemplateError(f"{where}: Property {', '.join(missing)} of {kind} is required")
    for name, keys in spec.maps.items():
        value = properties.get(name)
        if isinstance(value, dict) and not _is_function(value):
            unknown = sorted(set(value) - set(keys))
            if unknown:
                raise TemplateError(f"{where}: Unknown Property {name}.{', '.join(unknown)} of {kind}")


def check_values(kind: str, properties: Mapping[str, Any]) -> str | None:
    """Once resolved: each value has its property's type; the first mismatch, said, or None."""
    spec = RESOURCE_TYPES[kind]
    for name, value in properties.items():
        prop = spec.properties[name]
        allowed = _PYTHON_TYPES[prop.type]
        wrong_bool = isinstance(value, bool) and prop.type in ("Integer", "Number")
        bad_text = prop.type == "Boolean" and isinstance(value, str) and value.lower() not in ("true", "false")
        if not isinstance(value, allowed) or wrong_bool or bad_text:
            return f"Property {name} of {kind}: {value!r} is not a {prop.type}"
    return None


def attribute_of(kind: str, attribute: str) -> bool:
    spec = RESOURCE_TYPES.get(kind)
    return spec is None or attribute in spec.attributes


def _is_function(value: Mapping[str, Any]) -> bool:
    return len(value) == 1 and next(iter(value)) in ("Ref", "Fn::Sub", "Fn::Join", "Fn::Split", "Fn::GetAtt")

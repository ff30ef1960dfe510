"""Asking ROS whether a first delivery is ROS's own, before it may change anything.

Anyone allowed to invoke the function can hand it an event; only ROS can make a stack hold a resource in a status
where it sends that request. So a first delivery is checked with ROS's GetStack and GetStackResource (with the
function's own role, in the request's RegionId): the stack exists, holds the logical resource as a custom resource,
and is in a status where ROS sends this request type. What the documentation does not settle (the type string and
the status GetStackResource shows for a custom resource while its provider runs) is logged as a platform fact and
never refuses a request.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from copyimage.config import Settings
from copyimage.credentials import Credentials
from copyimage.logs import log_fact
from copyimage.outbound import RpcRefusal, call_rpc
from copyimage.protocol import RosRequest

ROS_VERSION = "2019-09-10"
ROS_ENDPOINT = "ros.aliyuncs.com"
CUSTOM_TYPE = "ALIYUN::ROS::CustomResource"
# GetStack's Status, as its API reference lists the values.
STACK_STATUSES = frozenset(
    f"{operation}_{outcome}"
    for operation in (
        "CREATE",
        "UPDATE",
        "DELETE",
        "CREATE_ROLLBACK",
        "ROLLBACK",
        "CHECK",
        "IMPORT_CREATE",
        "IMPORT_CREATE_ROLLBACK",
        "IMPORT_UPDATE",
        "IMPORT_UPDATE_ROLLBACK",
    )
    for outcome in ("IN_PROGRESS", "FAILED", "COMPLETE")
) | {"REVIEW_IN_PROGRESS"}
# The statuses in which ROS sends each request type: a Create while the stack is created, or updated (a resource
# added, or replaced) or rolled back (a removed resource restored); an Update while it is updated or rolled back;
# a Delete while it is deleted, rolled back, or updated (a resource removed, or replaced).
FITTING = {
    "Create": frozenset(
        {"CREATE_IN_PROGRESS", "UPDATE_IN_PROGRESS", "ROLLBACK_IN_PROGRESS", "IMPORT_UPDATE_IN_PROGRESS"}
    ),
    "Update": frozenset({"UPDATE_IN_PROGRESS", "ROLLBACK_IN_PROGRESS", "IMPORT_UPDATE_IN_PROGRESS"}),
    "Delete": frozenset(
        {
            "DELETE_IN_PROGRESS",
            "CREATE_ROLLBACK_IN_PROGRESS",
            "ROLLBACK_IN_PROGRESS",
            "UPDATE_IN_PROGRESS",
            "IMPORT_CREATE_ROLLBACK_IN_PROGRESS",
            "IMPORT_UPDATE_ROLLBACK_IN_PROGRESS",
            "IMPORT_UPDATE_IN_PROGRESS",
        }
    ),
}
# What ROS answers for ids that name nothing of this account: the request is no request of ROS.
CONTRADICTIONS = frozenset({"StackNotFound", "ResourceNotFound", "InvalidParameter", "MissingParameter"})


@dataclass(frozen=True)
class Verdict:
    """``confirmed``; ``contradicted`` (ROS says otherwise: do nothing); ``unreachable`` (ask again later);
    ``refused`` (ROS will not say: the role lacks the permission)."""

    kind: Literal["confirmed", "contradicted", "unreachable", "refused"]
    detail: str = ""


def verify(request: RosRequest, settings: Settings, credentials: Credentials) -> Verdict:
    """What ROS says of the request's stack and logical resource."""
    region = request.region_id or (settings.function.region if settings.function else "")
    endpoint = settings.ros_endpoint or ROS_ENDPOINT
    ids = {"RegionId": region, "StackId": request.stack_id}
    try:
        stack = call_rpc(
            "ROS", "GetStack", ROS_VERSION, endpoint, {**ids, "OutputOption": "Disabled"}, credentials, settings
        )
        resource = call_rpc(
            "ROS",
            "GetStackResource",
            ROS_VERSION,
            endpoint,
            {**ids, "LogicalResourceId": request.logical_resource_id},
            credentials,
            settings,
        )
    except RpcRefusal as error:
        if error.code in CONTRADICTIONS:
            return Verdict("contradicted", str(error))
        if error.transient:
            return Verdict("unreachable", str(error))
        return Verdict(
            "refused",
            f"{error}. The function's role needs ros:GetStack and ros:GetStackResource to confirm requests with ROS "
            "(or set COPYIMAGE_VERIFY_WITH_ROS=false; see the README)",
        )
    return judge(request, stack, resource)


def judge(request: RosRequest, stack: Mapping[str, object], resource: Mapping[str, object]) -> Verdict:
    """The verdict on what GetStack and GetStackResource showed."""
    status = str(stack.get("Status") or "")
    resource_type = str(resource.get("ResourceType") or "")
    log_fact(
        "ros_verification",
        request_type=request.request_type,
        stack_status=status,
        resource_type=resource_type,
        request_resource_type=str(request.raw.get("ResourceType") or ""),
        resource_status=str(resource.get("Status") or ""),
    )
    if resource_type and resource_type != CUSTOM_TYPE and not resource_type.startswith("Custom::"):
        return Verdict(
            "contradicted", f"ROS says {request.logical_resource_id} is a {resource_type}, not a custom resource"
        )
    if status in STACK_STATUSES and status not in FITTING[request.request_type]:
        return Verdict("contradicted", f"ROS says the stack is {status}: it sends no {request.request_type} then")
    return Verdict("confirmed", f"the stack is {status}")

"""Runs iact3 as it is, with one difference: its ROS client talks to the local cloud's ROS API.

iact3 (PyPI ``alibabacloud-ros-iact3``) has no setting for the ROS endpoint; its plugins' base class,
``iact3.plugin.base_plugin.TeaSDKPlugin``, takes an ``endpoint`` argument that iact3 never passes. This launcher
wraps that constructor so that every ROS plugin is built with ``endpoint=`` the local ROS API (and ``protocol=http``,
which the local endpoint speaks). Nothing else of iact3 changes: its command line, its config files, its calls and
its report are its own. Any other product's plugin (ECS, VPC, OSS: iact3 uses them only for generated parameters
or templates in OSS) is refused, and so is any connection off the loopback interface, so a run can never reach a
real Alibaba Cloud endpoint.

Runs in iact3's own virtual environment (``make iact3`` builds it): ``python deploy/iact3_launcher.py test run ...``
with ``IACT3_LOCAL_ROS_ENDPOINT`` (``127.0.0.1:<port>``) set. ``deploy/iact3_local.py`` starts the local cloud and
runs it. Against a real account, run ``iact3 test run`` itself, without this launcher.
"""

from __future__ import annotations

import ipaddress
import os
import sys

LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")


def _is_loopback(host: object) -> bool:
    if isinstance(host, bytes):
        host = host.decode()
    if not isinstance(host, str):
        return False
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _loopback_only(event: str, args: tuple[object, ...]) -> None:
    """An audit hook: observes, and refuses name lookups and connections of anything off loopback."""
    if event == "socket.getaddrinfo" and args and args[0] is not None and not _is_loopback(args[0]):
        raise ConnectionRefusedError(f"iact3 launcher: {args[0]} is not the local cloud (loopback only)")
    if event == "socket.connect" and len(args) > 1 and isinstance(args[1], tuple) and not _is_loopback(args[1][0]):
        raise ConnectionRefusedError(f"iact3 launcher: {args[1][0]} is not the local cloud (loopback only)")


def point_ros_at(local: str) -> None:
    from iact3.plugin import base_plugin

    original = base_plugin.TeaSDKPlugin.__init__

    def init(self, region_id, credential=None, config_kwargs=None, endpoint=None):  # type: ignore[no-untyped-def]
        if self.product != "ROS":
            raise RuntimeError(f"iact3 launcher: iact3 asked for a {self.product} client; only ROS is local")
        original(self, region_id, credential, {**(config_kwargs or {}), "protocol": "http"}, endpoint=local)

    base_plugin.TeaSDKPlugin.__init__ = init


def main() -> None:
    endpoint = os.environ.get("IACT3_LOCAL_ROS_ENDPOINT", "")
    host = endpoint.rsplit(":", 1)[0]
    if not _is_loopback(host):
        sys.exit(f"IACT3_LOCAL_ROS_ENDPOINT={endpoint!r}: set it to the local ROS API, 127.0.0.1:<port>")
    sys.addaudithook(_loopback_only)
    point_ros_at(endpoint)
    from iact3.__main__ import sync_run

    sys.argv = ["iact3", *sys.argv[1:]]
    sync_run()


if __name__ == "__main__":
    main()

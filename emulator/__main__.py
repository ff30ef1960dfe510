"""Command line: ``python -m emulator serve`` (the stand-ins for outside clients). The demo is
``python -m deploy.demo`` (``make demo``): it drives the smoke lifecycle, which lives with the deploy kit."""

from __future__ import annotations

import argparse
import json
import sys
import threading

from emulator.cloud import LocalCloud


def serve(copy_minutes: float) -> int:
    with LocalCloud(copy_seconds=copy_minutes * 60) as cloud:
        cloud.clock.start_realtime()  # outside clients come and go: time follows the wall clock here
        key = cloud.credentials.add_access_key()
        source = cloud.seed_image("golden-image")
        print("Local Alibaba Cloud stand-ins on 127.0.0.1 (Ctrl-C to stop)")
        print(f"  ECS (2014-05-26, RPC):      {cloud.ecs.url}")
        print(f"  FC (2023-03-30, 2016-08-15): {cloud.fc.url}   ServiceToken {cloud.fc.service_token}")
        print(f"  ROS response URLs:          {cloud.ros.url}")
        print(f"\nAn AccessKey the stand-ins accept: {key.id} / {key.secret}")
        print(f"A source image: {source.image_id} in {cloud.region}")
        print(
            "\nPoint an SDK at it: Config(access_key_id=..., access_key_secret=..., "
            f"endpoint='{cloud.ecs.endpoint}', protocol='http', region_id='{cloud.region}')"
        )
        print("\nEnvironment for running the function against it:")
        for name, value in cloud.function_environment().items():
            print(f"  export {name}={json.dumps(value)}")
        try:
            threading.Event().wait()
        except KeyboardInterrupt:
            print("\nstopped")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m emulator", description="A local Alibaba Cloud for ros-copy-image")
    commands = parser.add_subparsers(dest="command", required=True)
    serve_cmd = commands.add_parser("serve", help="run the stand-ins and print how to reach them")
    serve_cmd.add_argument("--copy-minutes", type=float, default=1.0)
    args = parser.parse_args(argv)
    return serve(args.copy_minutes)


if __name__ == "__main__":
    sys.exit(main())

"""Command line: ``python -m emulator serve`` (the stand-ins for outside clients). The demo is
``python -m deploy.demo`` (``make demo``): it drives the smoke lifecycle, which lives with the deploy kit."""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time

from emulator.cloud import LocalCloud
from emulator.credentials import AccessKey


def serve(copy_minutes: float) -> int:
    # Outside clients come and go on the wall clock: virtual time starts now and follows it.
    with LocalCloud(copy_seconds=copy_minutes * 60, start=time.time()) as cloud:
        cloud.clock.start_realtime()
        key = cloud.credentials.add_access_key()
        source = cloud.seed_image("golden-image")
        print("Local Alibaba Cloud stand-ins on 127.0.0.1 (Ctrl-C to stop)")
        print(f"  ECS (2014-05-26, RPC):      {cloud.ecs.url}")
        print(f"  FC (2023-03-30, 2016-08-15): {cloud.fc.url}   ServiceToken {cloud.fc.service_token}")
        print(f"  ROS API (2019-09-10, RPC):  {cloud.ros.url}   (and the response URLs)")
        print(f"  OOS (2019-06-01, RPC):      {cloud.oos.url}   (the function's continuation key)")
        print(f"\nAn AccessKey the stand-ins accept: {key.id} / {key.secret}")
        print(f"A source image: {source.image_id} in {cloud.region}")
        print(
            "\nPoint an SDK at it: Config(access_key_id=..., access_key_secret=..., "
            f"endpoint='{cloud.ecs.endpoint}', protocol='http', region_id='{cloud.region}')"
        )
        print("\nEnvironment for running the function against it:")
        for name, value in cloud.function_environment().items():
            print(f"  export {name}={json.dumps(value)}")
        print(*outside_clients(cloud, key, source.image_id), sep="\n")
        print("\nReady.", flush=True)
        try:
            threading.Event().wait()
        except KeyboardInterrupt:
            print("\nstopped")
    return 0


def outside_clients(cloud: LocalCloud, key: AccessKey, image_id: str) -> list[str]:
    """Ready-to-paste settings for the clients a user drives stacks with: the ROS SDK, the aliyun CLI, iact3."""
    ros, region, profile = cloud.ros.endpoint, cloud.region, "copyimage-local"
    return [
        "\nROS SDK (alibabacloud-ros20190910):",
        f"  Config(access_key_id='{key.id}', access_key_secret='{key.secret}', endpoint='{ros}', "
        f"protocol='http', region_id='{region}')",
        "\naliyun CLI (a profile, then the ROS API on this endpoint over plain HTTP):",
        f"  aliyun configure set --profile {profile} --mode AK --access-key-id {key.id} "
        f"--access-key-secret {key.secret} --region {region}",
        f"  aliyun ros CreateStack --profile {profile} --endpoint {ros} --insecure --StackName demo "
        f'--TemplateBody "$(cat template.yml)" --Parameters.1.ParameterKey ImageId '
        f"--Parameters.1.ParameterValue {image_id} --Parameters.2.ParameterKey DestinationRegionId "
        "--Parameters.2.ParameterValue cn-shanghai",
        f"  aliyun ros GetStack --profile {profile} --endpoint {ros} --insecure --StackId <the StackId it printed>",
        "\niact3 (.iact3.yml; credentials from the aliyun CLI profile above; its ROS client must be given the",
        "endpoint above, iact3 otherwise calls ROS's public one):",
        f"  general: {{auth: {{name: {profile}, location: ~/.aliyun/config.json}}}}",
        f"  project: {{regions: [{region}]}}",
        f"  tests: {{local: {{parameters: {{ImageId: {image_id}, DestinationRegionId: cn-shanghai}}}}}}",
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m emulator", description="A local Alibaba Cloud for ros-copy-image")
    commands = parser.add_subparsers(dest="command", required=True)
    serve_cmd = commands.add_parser("serve", help="run the stand-ins and print how to reach them")
    serve_cmd.add_argument("--copy-minutes", type=float, default=1.0)
    args = parser.parse_args(argv)
    return serve(args.copy_minutes)


if __name__ == "__main__":
    sys.exit(main())

"""A ROS CDK app with one ``Custom::CopyImage``: ``python app.py`` (or ``ros-cdk synth``) writes the stack's template
to ``cdk.out/CopyImageExample.template.json``.

It is the native example with one import changed: ``from ros_cdk_ecs import CopyImage, CopyImageProps`` became
``from ros_copy_image import ...``. The source image and the destination are stack parameters; the copy's tags come
from the context (``-c tags=team=imaging,env=test``, or ``CDK_CONTEXT_JSON``), so a deployment with other tags is an
update in place.
"""

from __future__ import annotations

import ros_cdk_core as core
from ros_copy_image import CopyImage, CopyImageProps


class CopyImageExample(core.Stack):
    def __init__(self, scope: core.Construct, id: str, tags: str) -> None:
        super().__init__(scope, id, description="Copy an ECS custom image into another region (ros-copy-image)")
        image_id = core.RosParameter(
            self, "SourceImageId", type=core.RosParameterType.STRING, description="The custom image to copy."
        )
        destination = core.RosParameter(
            self,
            "Destination",
            type=core.RosParameterType.STRING,
            default_value="cn-shanghai",
            description="The region to copy it into.",
        )
        pairs = [item.split("=", 1) for item in tags.split(",") if item]
        copy = CopyImage(
            self,
            "CopyImage",
            CopyImageProps(
                image_id=image_id.value_as_string,
                destination_region_id=destination.value_as_string,
                destination_image_name="cdk-copy",
                destination_description="copied by the ROS CDK example of ros-copy-image",
                tag=[core.RosTag(key=key, value=value) for key, value in pairs],
                timeout=3600,  # seconds ROS waits for the copy
            ),
        )
        core.RosOutput(self, "ImageId", value=copy.attr_image_id, description="The copy in the destination region.")
        core.RosOutput(self, "DestinationRegionId", value=copy.attr_destination_region_id)


app = core.App()
CopyImageExample(app, "CopyImageExample", tags=str(app.node.try_get_context("tags") or "team=imaging"))
app.synth()

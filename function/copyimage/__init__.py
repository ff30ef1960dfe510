"""Custom::CopyImage: a ROS custom resource that copies an ECS custom image into another region."""

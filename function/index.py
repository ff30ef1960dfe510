"""Function Compute entry point for Custom::CopyImage (handler: index.handler)."""

from copyimage.provider import handle as handler

__all__ = ["handler"]

"""Function Compute entry point for Custom::CopyImage (handler: index.handler)."""

from copyimage.handler import handler

__all__ = ["handler"]

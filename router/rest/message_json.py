"""The router's name for protocol answers as REST JSON, kept for code that imports it from here.

The adapters' REST listeners write the same JSON, so it lives in meshserve/core/rest_messages.py,
outside the router.
"""

from meshserve.core.rest_messages import metadata_json, to_json

__all__ = ["metadata_json", "to_json"]

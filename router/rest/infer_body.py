"""The router's name for the REST inference bodies, kept for code that imports it from here.

The bodies are read and written by the adapters' REST listeners too, so they live in
meshserve/core/rest_bodies.py, outside the router.
"""

from meshserve.core.rest_bodies import HEADER_LENGTH, RestInference, parse_request, response_body

__all__ = ["HEADER_LENGTH", "RestInference", "parse_request", "response_body"]

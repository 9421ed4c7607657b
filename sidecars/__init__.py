"""Sidecars beside the request path: prediction records, drift monitoring, shadow comparison."""

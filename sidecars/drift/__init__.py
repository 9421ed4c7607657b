"""Drift: each model package's baseline of its training data, compared with live records (docs/drift.md)."""

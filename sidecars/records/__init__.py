"""Prediction records: every inference on local disk before its answer leaves, moved by the
recorder into SQLite or PostgreSQL, and read back by audit, export and explain."""

"""Batch scoring: a file of rows scored through the mesh, resumable, in the input's order."""

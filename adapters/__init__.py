"""Adapter servers: one gRPC V2 server framework and one runtime per model world."""

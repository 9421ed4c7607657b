"""The router: front gRPC service (validation, request ids, forwarding) and control plane."""

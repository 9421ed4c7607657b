"""The Open Inference Protocol over HTTP/REST (KServe V2 REST, with Triton's binary tensor data
extension), served by the router beside its gRPC service and answered by the same servicer."""

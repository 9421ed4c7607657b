"""GPU models on NVIDIA Triton: a supervised tritonserver, or an external one, reached with tritonclient."""

"""The gateway service: the one public gRPC entry point behind Envoy."""

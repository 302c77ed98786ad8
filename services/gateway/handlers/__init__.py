"""The gateway's own use cases (tokens, uploads, webhooks, reveal, the audit log, the alert stream).

They take domain objects and the ports of `ports.py` (the store's unit of work, orders, the audit log),
and import no gRPC, no proto and no SQL: `grpc_api.py` maps the requests in and the answers out.
"""

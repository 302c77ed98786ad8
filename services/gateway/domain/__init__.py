"""What the gateway decides on its own: who a claim names, who may call what and how far they reach,
what a sender's notification asks for, when an alert is a repeat and what an upload may become.

Standard library only (and the kit's plain errors): no grpc, no SQL, no Redis, no wall clock.
"""

"""The carriers' wire protocols as pure functions: signatures, code tables, envelopes (no I/O)."""

"""Each provider's wire format, signatures and code tables: pure functions, no I/O."""

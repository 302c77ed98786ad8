"""The inventory domain: pure rules (no IO, no clock, no frameworks)."""

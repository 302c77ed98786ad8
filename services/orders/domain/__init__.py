"""The orders domain: pure model and rules (no IO, no clock, no frameworks)."""

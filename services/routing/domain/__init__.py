"""The routing domain: geography, rule sets and the planner (pure: no IO, no clock, no frameworks)."""

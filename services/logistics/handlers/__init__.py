"""Logistics' use cases: each takes a unit of work (the store's, or a fake in tests), the carriers
behind their port, and domain objects, and returns domain objects."""

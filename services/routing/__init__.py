"""The routing service: warehouse and carrier choice. Built so far: the pure domain (geography, rule sets,
planner, explanations, dry-run checks) and the default data set; its gRPC service, storage, decision log
and events are not built yet (see the routing issue)."""

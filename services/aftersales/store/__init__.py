"""After-sales\x27 store: the only SQL of the service (tables, repositories, the unit of work)."""

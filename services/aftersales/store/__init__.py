"""After-sales' store: the only SQL of the service (tables, repositories, the unit of work)."""

"""Routing's use cases, one module per group: planning, rule sets, parked orders (and the rule-set
cache they share). They take a unit of work (`ports.UnitOfWork`) and domain objects, and return
domain objects; SQL is the store's, proto the mappers'."""

"""The routing service: which warehouse(s) and carrier ship each order, why, and rule sets tested before
they go live."""

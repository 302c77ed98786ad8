"""The inventory service: stock per SKU × warehouse, reservations that never oversell, the ledger."""

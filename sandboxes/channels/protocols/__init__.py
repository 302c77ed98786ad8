"""The marketplaces' wire protocols: signatures, time formats, error codes."""

"""The runtime every service is built from; nothing domain-specific lives here."""

"""The gateway's public entry point for tools (omsctl): minting tokens and hashing service-account secrets.

omsctl imports the gateway through this module only (the import-linter contract `omsctl-public-entry`
holds it to that), so the gateway's insides can move without breaking the CLI.
"""

from __future__ import annotations

from services.gateway.auth import JwtSettings, hash_secret, issue_token

__all__ = ["JwtSettings", "hash_secret", "issue_token"]

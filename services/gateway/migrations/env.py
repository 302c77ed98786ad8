"""Alembic environment for the gateway database."""

from services.gateway.store.tables import metadata
from services.kit.migrate import run_env

run_env(metadata)

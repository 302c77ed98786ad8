"""Alembic environment for the routing database."""

from services.kit.migrate import run_env
from services.routing.store.tables import metadata

run_env(metadata)

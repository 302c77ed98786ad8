"""Alembic environment for the inventory database."""

from services.inventory.store import metadata
from services.kit.migrate import run_env

run_env(metadata)

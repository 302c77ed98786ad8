"""The web console's files, served by the gateway through Envoy on the API's own origin (no CORS).

The files are read once at start-up from `services/gateway/console/`; a path is one of those names or
nothing (the page), never a path on disk, so no request can reach another file.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from services.kit.errors import NotFound

CONSOLE_DIR = Path(__file__).resolve().parent.parent / "console"
CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
}
PAGE = "index.html"


@dataclass(frozen=True)
class Asset:
    content_type: str
    data: bytes


class ConsoleAssets:
    def __init__(self, folder: Path = CONSOLE_DIR) -> None:
        self.files = {
            path.name: Asset(CONTENT_TYPES[path.suffix], path.read_bytes())
            for path in sorted(folder.iterdir())
            if path.is_file() and path.suffix in CONTENT_TYPES
        }
        if PAGE not in self.files:
            raise RuntimeError(f"the console's {PAGE} is missing from {folder}")

    def get(self, path: str) -> Asset:
        name = path.strip("/") or PAGE
        asset = self.files.get(name)
        if asset is None:
            raise NotFound(f"no console file {name[:64]!r}")
        return asset

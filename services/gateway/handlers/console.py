"""The web console's files, served by the gateway through Envoy on the API's own origin (no CORS), and
the API's OpenAPI document beside them (`/console/openapi.json`, `/v1/openapi.json`).

The files are read once at start-up from `services/gateway/console/` and the document from
`docs/contracts/openapi.json` (written by `omsctl contracts`); a path is one of those names or nothing
(the page), never a path on disk, so no request can reach another file.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from services.kit.errors import NotFound

CONSOLE_DIR = Path(__file__).resolve().parent.parent / "console"
API_DOCUMENT = Path(__file__).resolve().parents[3] / "docs" / "contracts" / "openapi.json"
CONTENT_TYPES = {
    ".json": "application/json",
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
    def __init__(self, folder: Path = CONSOLE_DIR, documents: Mapping[str, Path] | None = None) -> None:
        self.files = {
            path.name: Asset(CONTENT_TYPES[path.suffix], path.read_bytes())
            for path in sorted(folder.iterdir())
            if path.is_file() and path.suffix in CONTENT_TYPES
        }
        if PAGE not in self.files:
            raise RuntimeError(f"the console's {PAGE} is missing from {folder}")
        for name, path in ({"openapi.json": API_DOCUMENT} if documents is None else documents).items():
            if not path.is_file():
                raise RuntimeError(f"{path} is missing: `python -m omsctl contracts` writes it")
            self.files[name] = Asset(CONTENT_TYPES[path.suffix], path.read_bytes())

    def get(self, path: str) -> Asset:
        name = path.strip("/") or PAGE
        asset = self.files.get(name)
        if asset is None:
            raise NotFound(f"no console file {name[:64]!r}")
        return asset

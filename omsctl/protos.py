"""Generate Python code and Envoy's descriptor set from `protos/` into `gen/`.

Run by `make protos`; every target that needs generated code depends on it.
"""

from __future__ import annotations

import shutil
import sys
from importlib import resources
from pathlib import Path

from grpc_tools import protoc

ROOT = Path(__file__).resolve().parent.parent
PROTOS = ROOT / "protos"
GEN = ROOT / "gen"
DESCRIPTOR_SET = GEN / "oms.pb"
GOOGLE_API_FILES = ("annotations.proto", "http.proto", "httpbody.proto")
ERROR_DETAIL_FILES = ("google/rpc/error_details.proto", "google/rpc/status.proto")


def _googleapis_root() -> Path:
    from google.api import annotations_pb2

    return Path(annotations_pb2.__file__).resolve().parent.parent.parent


def _copy_buf_deps(googleapis_root: Path) -> None:
    """buf cannot reach the BSR here, so it reads googleapis' annotations from gen/protodeps."""
    target = GEN / "protodeps" / "google" / "api"
    target.mkdir(parents=True, exist_ok=True)
    for name in GOOGLE_API_FILES:
        shutil.copyfile(googleapis_root / "google" / "api" / name, target / name)


def generate() -> int:
    proto_files = sorted(str(p.relative_to(PROTOS)) for p in PROTOS.rglob("*.proto"))
    googleapis_root = _googleapis_root()
    well_known = str(resources.files("grpc_tools") / "_proto")
    GEN.mkdir(exist_ok=True)
    _copy_buf_deps(googleapis_root)
    args = [
        "grpc_tools.protoc",
        f"-I{PROTOS}",
        f"-I{googleapis_root}",
        f"-I{well_known}",
        f"--python_out={GEN}",
        f"--pyi_out={GEN}",
        f"--grpc_python_out={GEN}",
        *proto_files,
    ]
    code = protoc.main(args)
    if code == 0:
        # Envoy's descriptor set also holds the error details the services send, so its transcoder
        # can print them in the JSON error body (their Python comes from googleapis-common-protos)
        code = protoc.main(
            [
                *args[:4],
                f"--descriptor_set_out={DESCRIPTOR_SET}",
                "--include_imports",
                "--include_source_info",
                *proto_files,
                *ERROR_DETAIL_FILES,
            ]
        )
    if code != 0:
        print(f"protoc failed with exit code {code}", file=sys.stderr)
    return int(code)


if __name__ == "__main__":
    sys.exit(generate())

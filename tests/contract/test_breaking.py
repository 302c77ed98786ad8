"""The protos are not broken against the released contracts (protos/baseline/oms.binpb, written by
`make contracts-baseline` on a release; docs/contracts.md), and the check would see a break."""

from __future__ import annotations

import shutil
import subprocess
import sysconfig
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sysconfig.get_path("scripts"))
BASELINE = ROOT / "protos" / "baseline" / "oms.binpb"


def breaking(checkout: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "buf"), "breaking", "protos", "--against", str(BASELINE)],
        cwd=checkout,
        capture_output=True,
        text=True,
    )


def test_the_protos_are_not_broken_against_the_released_baseline() -> None:
    result = breaking(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_renamed_field_is_a_breaking_change_against_the_baseline(tmp_path: Path) -> None:
    shutil.copy(ROOT / "buf.yaml", tmp_path / "buf.yaml")
    shutil.copytree(ROOT / "protos", tmp_path / "protos")
    shutil.copytree(ROOT / "gen" / "protodeps", tmp_path / "gen" / "protodeps")
    common = tmp_path / "protos" / "oms" / "common" / "v1" / "common.proto"
    common.write_text(common.read_text().replace("string currency_code = 1;", "string currency = 1;"))
    result = breaking(tmp_path)
    assert result.returncode != 0
    assert 'changed name from "currency_code" to "currency"' in result.stdout

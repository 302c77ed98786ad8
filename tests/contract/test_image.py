"""The platform image (deploy/Dockerfile): built from a digest-pinned base in stages, with the runtime
dependencies of pyproject.toml installed from the hashed lock file and nothing else, run as non-root."""

from __future__ import annotations

import re
import shlex
import tomllib
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

import pytest
from packaging.markers import Marker
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "deploy" / "Dockerfile"
LOCK = ROOT / "deploy" / "requirements.lock"
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
DIGEST = re.compile(r"@sha256:[0-9a-f]{64}$")


@dataclass(frozen=True)
class Pin:
    version: Version
    marker: Marker | None
    hashes: tuple[str, ...]


def locked() -> dict[str, Pin]:
    """`name==version [; marker]` followed by `--hash=sha256:…` lines, as pip-compile and uv write it."""
    pins: dict[str, Pin] = {}
    for entry in re.sub(r"\\\n", " ", LOCK.read_text()).splitlines():
        entry = entry.split("#", 1)[0].strip()
        if not entry:
            continue
        hashes = tuple(re.findall(r"--hash=(\S+)", entry))
        requirement = Requirement(re.sub(r"--hash=\S+", "", entry).strip())
        (specifier,) = requirement.specifier
        assert specifier.operator == "==", f"{requirement.name} is not pinned: {specifier}"
        pins[canonicalize_name(requirement.name)] = Pin(
            Version(specifier.version), requirement.marker, hashes
        )
    return pins


def runtime_requirements() -> list[Requirement]:
    return [Requirement(text) for text in PROJECT["dependencies"]]


def test_the_lock_pins_every_runtime_dependency_within_pyprojects_range_with_hashes() -> None:
    pins = locked()
    for requirement in runtime_requirements():
        pin = pins.get(canonicalize_name(requirement.name))
        assert pin is not None, f"{requirement.name} is not in the lock: run `make lock`"
        assert requirement.specifier.contains(pin.version, prereleases=True), (
            f"{requirement.name}=={pin.version} is outside {requirement.specifier}: run `make lock`"
        )
    for name, pin in pins.items():
        assert pin.hashes and all(re.fullmatch(r"sha256:[0-9a-f]{64}", h) for h in pin.hashes), name


def test_the_lock_holds_no_embedded_server_and_no_development_tool() -> None:
    pins = locked()
    extras = PROJECT["optional-dependencies"]
    for extra in ("embedded", "dev", "browser"):
        for text in extras[extra]:
            assert canonicalize_name(Requirement(text).name) not in pins, f"{text} ({extra}) is in the image"


def test_the_tests_run_the_locked_versions_of_the_runtime_dependencies() -> None:
    """The Makefile installs the venv with the lock as constraints: what passes here is what runs."""
    for name, pin in locked().items():
        if pin.marker is not None and not pin.marker.evaluate():
            continue
        assert Version(metadata.version(name)) == pin.version, f"{name}: the venv differs from the lock"


@dataclass
class Stage:
    image: str
    name: str = ""
    instructions: list[tuple[str, str]] = field(default_factory=list)


def stages() -> tuple[dict[str, str], list[Stage]]:
    """The Dockerfile's global ARG defaults and its stages, continuation lines joined."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    arguments: dict[str, str] = {}
    found: list[Stage] = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        keyword, _, rest = line.partition(" ")
        keyword = keyword.upper()
        if keyword == "ARG" and not found:
            name, _, default = rest.partition("=")
            arguments[name.strip()] = default.strip()
        elif keyword == "FROM":
            words = [w for w in rest.split() if not w.startswith("--platform")]
            image = re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: arguments[m[1] or m[2]], words[0])
            found.append(Stage(image, words[2] if len(words) == 3 and words[1].upper() == "AS" else ""))
        else:
            assert found, f"{keyword} before the first FROM"
            found[-1].instructions.append((keyword, rest.strip()))
    return arguments, found


def test_every_stage_starts_from_a_base_pinned_by_digest_or_from_an_earlier_stage() -> None:
    _, found = stages()
    assert len(found) >= 2, "a single stage ships its build tools"
    for index, stage in enumerate(found):
        earlier = {s.name for s in found[:index] if s.name}
        assert stage.image in earlier or DIGEST.search(stage.image), (
            f"stage {index} is not pinned: {stage.image}"
        )


def _pip_installs(stage: Stage) -> list[str]:
    return [rest for keyword, rest in stage.instructions if keyword == "RUN" and "pip install" in rest]


def test_dependencies_come_from_the_lock_with_hashes_only() -> None:
    _, found = stages()
    installs = [(stage, command) for stage in found for command in _pip_installs(stage)]
    assert len(installs) == 1, f"one pip install, from the lock: {[c for _, c in installs]}"
    stage, command = installs[0]
    words = shlex.split(command)
    assert "--require-hashes" in words and "--no-deps" in words
    requirements = words[words.index("-r") + 1]
    copied = [rest.split() for keyword, rest in stage.instructions if keyword == "COPY"]
    assert ["deploy/requirements.lock", requirements] in copied, "pip reads something other than the lock"
    assert not any(word in (".", "-e") or word.startswith(("./", "/app")) for word in words[2:]), (
        "the project itself is installed: its unlocked dependencies would come along"
    )


def test_the_final_stage_copies_the_build_and_runs_as_a_non_root_user() -> None:
    _, found = stages()
    final = found[-1]
    assert not _pip_installs(final), "the final stage installs something"
    assert DIGEST.search(final.image)
    sources = {
        re.search(r"--from=(\S+)", rest)[1]  # type: ignore[index]
        for keyword, rest in final.instructions
        if keyword == "COPY" and "--from=" in rest
    }
    assert sources and sources <= {s.name for s in found[:-1]}
    users = [rest for keyword, rest in final.instructions if keyword == "USER"]
    assert users, "the image runs as root"
    user, _, group = users[-1].partition(":")
    assert user.isdigit() and int(user) != 0, "USER must be a numeric uid (runAsNonRoot can check only those)"
    assert not group or (group.isdigit() and int(group) != 0)
    last_user = max(i for i, (keyword, _) in enumerate(final.instructions) if keyword == "USER")
    assert all(keyword != "RUN" for keyword, _ in final.instructions[last_user:])


@pytest.mark.parametrize("overlay", ["dev", "prod"])
def test_the_manifests_run_as_the_images_user(overlay: str) -> None:
    from tests.contract.test_k8s_manifests import containers, pod_templates, render

    _, found = stages()
    user = [rest for keyword, rest in found[-1].instructions if keyword == "USER"][-1].partition(":")[0]
    for pod in pod_templates(render(overlay)):
        for container in containers(pod):
            if container["image"].split(":")[0].endswith("oms-platform"):
                effective = {**pod["securityContext"], **container.get("securityContext", {})}
                assert str(effective["runAsUser"]) == user, container["name"]

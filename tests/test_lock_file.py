"""requirements-lock.txt against pyproject.toml: the lock pins exact versions, every pin of a declared dependency lies
within pyproject's range, and every declared dependency that applies where the lock was frozen is pinned; so the two
cannot drift apart silently (an upgraded pin outside a range, a new dependency left out of the lock)."""

from __future__ import annotations

import re
from pathlib import Path

from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

REPO = Path(__file__).resolve().parents[1]
LOCK = REPO / "requirements-lock.txt"
INSTALL = "pip install -r requirements-lock.txt && pip install --no-deps -e ."


def _sections(text: str) -> dict[str, str]:
    """A TOML file's tables by name (tomllib is Python 3.11+; the project supports 3.10)."""
    parts = re.split(r"^\[([^\]\n]+)\]\s*$", text, flags=re.M)
    return dict(zip(parts[1::2], parts[2::2], strict=True))


def _arrays(section: str) -> dict[str, list[str]]:
    """The string arrays of a table (``key = [ "..." , ... ]``, one string a line, comments beside)."""
    return {key: re.findall(r'^\s*"([^"]+)"', body, re.M)
            for key, body in re.findall(r"^([\w-]+) = \[\n(.*?)^\]", section, re.M | re.S)}


def declared() -> dict[str, list[Requirement]]:
    """pyproject.toml's requirements: ``dependencies`` and each optional group, by group."""
    tables = _sections((REPO / "pyproject.toml").read_text())
    groups = {"dependencies": _arrays(tables["project"])["dependencies"],
              **_arrays(tables["project.optional-dependencies"])}
    return {group: [Requirement(r) for r in reqs] for group, reqs in groups.items()}


def pins() -> dict[str, Requirement]:
    lines = [line.split("#")[0].strip() for line in LOCK.read_text().splitlines()]
    return {canonicalize_name(req.name): req for req in map(Requirement, filter(None, lines))}


def frozen_on() -> dict[str, str]:
    """The marker environment the lock was frozen in, as its header states it."""
    found = re.search(r"^# Frozen with Python (\d+)\.(\d+)\.(\d+) on Linux x86_64", LOCK.read_text(), re.M)
    assert found, f"{LOCK.name}: the header no longer says which Python and platform it was frozen with"
    major, minor, micro = found.groups()
    return {**default_environment(), "python_version": f"{major}.{minor}",
            "python_full_version": f"{major}.{minor}.{micro}", "sys_platform": "linux", "platform_system": "Linux",
            "platform_machine": "x86_64", "os_name": "posix", "implementation_name": "cpython"}


def test_the_lock_pins_exact_versions_and_says_how_to_install():
    locked = pins()
    assert len(locked) > 50, f"{LOCK.name}: only {len(locked)} packages (not a freeze of the environment?)"
    loose = [str(r) for r in locked.values() if len(r.specifier) != 1 or next(iter(r.specifier)).operator != "=="]
    assert not loose, f"{LOCK.name}: not pinned with ==: {loose}"
    assert "ila-repro" not in locked, f"{LOCK.name}: the project itself is installed from the checkout (-e .)"
    assert INSTALL in LOCK.read_text(), f"{LOCK.name}: the header lost its install command"


def test_every_pin_of_a_declared_dependency_lies_within_pyprojects_range():
    locked = pins()
    outside = []
    for group, requirements in declared().items():
        for req in requirements:
            pin = locked.get(canonicalize_name(req.name))
            version = pin and next(iter(pin.specifier)).version
            if version and not req.specifier.contains(version, prereleases=True):
                outside.append(f"{req.name}=={version} (pyproject.toml [{group}]: {req.specifier})")
    assert not outside, f"{LOCK.name} pins outside pyproject.toml's ranges: {outside}"


def test_every_declared_dependency_of_the_frozen_platform_is_locked():
    locked, where = pins(), frozen_on()
    missing = [f"{req} [{group}]" for group, requirements in declared().items() for req in requirements
               if (req.marker is None or req.marker.evaluate(where)) and canonicalize_name(req.name) not in locked]
    assert not missing, f"{LOCK.name} lacks declared dependencies (refresh it: see its header): {missing}"


def test_the_pyproject_reader_sees_every_group():
    groups = declared()
    assert {"dependencies", "test", "torchcodec", "slurm"} <= set(groups)
    assert "torch" in {r.name for r in groups["dependencies"]} and len(groups["dependencies"]) > 10

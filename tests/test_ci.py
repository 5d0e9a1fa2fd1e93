"""The CI script itself: it runs the README's test line and fails whenever the install or the tests fail.

Each case copies ``.ci/run`` into a throw-away project and runs it there (a fresh venv each time, ~7 s).
"""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

PYPROJECT = """\
[build-system]
requires = ["setuptools"]
build-backend = "setuptools.build_meta"
[project]
name = "ci-probe"
version = "0"
dependencies = [{deps}]
[tool.setuptools]
py-modules = []
"""
BROKEN = '"ci-probe-missing-dependency @ file:///nonexistent/ci-probe-missing-dependency"'


def test_ci_runs_the_readme_test_line():
    readme = (REPO / "README.md").read_text()
    line = re.search(r"^(pip install -e \"\.\[test\]\" && pytest)\b", readme, re.M)
    assert line, "README.md lost its test line"
    ci = (REPO / ".ci" / "run").read_text()
    assert 'pip install -q -e ".[test]" && pytest || exit $?' in ci


@pytest.mark.slow
@pytest.mark.parametrize("deps,test_body,want_rc", [
    (BROKEN, "def test_ok():\n    assert 1 + 1 == 2\n", "nonzero"),  # the install fails: must not pass
    ("", "import os\n\n\ndef test_ok():\n    assert 1 + 1 == 2\n", "nonzero"),  # ruff: unused import
    ("", None, 5),  # no tests collected
    ("", "def test_fails():\n    assert 1 == 2\n", 1),
    ("", "def test_ok():\n    assert 1 + 1 == 2\n", 0),
], ids=["broken-install", "lint-finding", "no-tests", "failing-test", "passing"])  # fmt: skip
def test_ci_script_fails_loudly(tmp_path, deps, test_body, want_rc):
    proj = tmp_path / "proj"
    (proj / ".ci").mkdir(parents=True)
    shutil.copy(REPO / ".ci" / "run", proj / ".ci" / "run")
    (proj / "pyproject.toml").write_text(PYPROJECT.format(deps=deps))
    (proj / "tests").mkdir()
    if test_body:
        (proj / "tests" / "test_probe.py").write_text(test_body)
    # The probe project has no test extra: pytest comes from the environment running this suite.
    env = {**os.environ, "ILA_CI_SKIP_APT": "1",
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    res = subprocess.run(["bash", ".ci/run"], cwd=proj, env=env, capture_output=True, text=True, timeout=300)
    out = res.stdout + res.stderr
    if want_rc == "nonzero":
        assert res.returncode != 0, out[-3000:]
        assert "test session starts" not in out  # pytest never ran
    else:
        assert res.returncode == want_rc, out[-3000:]
    assert ("ci: passed" in out) == (want_rc == 0), out[-3000:]


@pytest.mark.parametrize("ci,chromium,outcome", [
    ("true", "/usr/bin/chromium", "fail"), ("1", "/usr/bin/chromium", "fail"),
    ("true", None, "skip"), ("", "/usr/bin/chromium", "skip"), ("false", "/usr/bin/chromium", "skip"),
])  # fmt: skip
def test_mlflow_ui_test_fails_in_ci_when_chromium_is_there_but_it_cannot_run(monkeypatch, ci, chromium, outcome):
    """tests/test_mlflow_ui.py without playwright: a failure in CI with Chromium installed, a skip (with the reason)
    outside CI or without Chromium. (.ci/run sets CI=true.)"""
    import test_mlflow_ui as ui

    assert re.search(r"^export .*\bCI=true\b", (REPO / ".ci" / "run").read_text(), re.M)
    monkeypatch.setenv("CI", ci)
    monkeypatch.setattr(ui, "CHROMIUM", chromium)
    monkeypatch.setitem(sys.modules, "playwright", None)  # `import playwright` raises ImportError
    monkeypatch.setitem(sys.modules, "playwright.sync_api", None)
    expected = pytest.fail.Exception if outcome == "fail" else pytest.skip.Exception
    with pytest.raises(expected, match="playwright package") as err:
        ui.playwright_sync_api()
    assert ("must run" in str(err.value)) == (outcome == "fail")

"""The suite's own guards (tests/conftest.py): marked functions that pytest would skip silently fail collection."""

import shutil
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def _run_pytest(tmp_path, body):
    shutil.copy(HERE / "conftest.py", tmp_path / "conftest.py")
    (tmp_path / "test_probe.py").write_text(body)
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tmp_path)],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120)


def test_marked_function_without_test_prefix_fails_collection(tmp_path):
    res = _run_pytest(tmp_path, "import pytest\n\n@pytest.mark.parametrize('n', [1, 2])\ndef checks_n(n):\n"
                                "    assert n\n\ndef test_other():\n    assert 1\n")
    assert res.returncode == 2, res.stdout
    assert "checks_n carries pytest marks (parametrize)" in res.stdout and "rename it" in res.stdout


def test_plain_helpers_and_fixtures_are_fine(tmp_path):
    res = _run_pytest(tmp_path, "import pytest\n\n@pytest.fixture\ndef thing():\n    return 3\n\n"
                                "def helper(x):\n    return x\n\n@pytest.mark.parametrize('n', [1, 2])\n"
                                "def test_n(n, thing):\n    assert helper(n) < thing\n")
    assert res.returncode == 0, res.stdout
    assert "2 passed" in res.stdout

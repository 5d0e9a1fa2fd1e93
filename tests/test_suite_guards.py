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


def test_markers_are_strict_and_every_marker_used_is_declared(tmp_path):
    """pyproject.toml runs pytest with --strict-markers: a misspelt marker (which would otherwise select or skip
    nothing, silently) fails collection; and every marker the suite uses is declared there or is pytest's own."""
    import re

    repo = HERE.parent
    text = (repo / "pyproject.toml").read_text()  # (tomllib is Python 3.11+; the project supports 3.10)
    section = text[text.index("[tool.pytest.ini_options]"):]
    assert "--strict-markers" in re.search(r'^addopts = "(.*)"$', section, flags=re.M).group(1).split()
    block = re.search(r"^markers = \[(.*?)^\]", section, flags=re.M | re.S).group(1)
    declared = set(re.findall(r'^\s+"(\w+):', block, flags=re.M))
    builtin = {"parametrize", "skip", "skipif", "xfail", "usefixtures", "filterwarnings"}
    used = {m for p in HERE.glob("*.py") for m in re.findall(r"pytest\.mark\.(\w+)", p.read_text())}
    assert used - builtin <= declared, f"undeclared markers: {sorted(used - builtin - declared)}"
    assert {"slow", "gpu"} <= used
    shutil.copy(HERE / "conftest.py", tmp_path / "conftest.py")
    typo = "slwo"  # (not spelt out after `pytest.mark.` here, or the scan above would find it)
    (tmp_path / "test_probe.py").write_text(f"import pytest\n\n@pytest.mark.{typo}\ndef test_a():\n    pass\n\n"
                                            "@pytest.mark.slow\ndef test_b():\n    pass\n")
    # -n 0: in one process (the configuration's -n auto would report the collection error once per worker, rc 1)
    res = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-n", "0", "-c",
                          str(repo / "pyproject.toml"), "--rootdir", str(tmp_path), str(tmp_path)],
                         cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert res.returncode == 2 and "'slwo' not found in `markers` configuration option" in res.stdout, res.stdout


def test_the_readme_edit_test_loop_selects_declared_layers():
    """The README's fast subset (`pytest -m "..."`) names layers that tests/conftest.py gives (and `slow`), each
    declared in pyproject.toml: a misspelt marker there would select nothing, and pytest would exit 5 on the
    edit-test loop."""
    import re

    from conftest import LAYERS

    readme = (HERE.parent / "README.md").read_text()
    [expression] = re.findall(r'^pytest -m "([^"]+)"$', readme, flags=re.M)
    names = set(re.findall(r"\w+", expression)) - {"and", "or", "not"}
    section = (HERE.parent / "pyproject.toml").read_text().split("[tool.pytest.ini_options]")[1]
    assert names and names <= {*LAYERS, "slow"} and all(f'"{name}:' in section for name in names), expression

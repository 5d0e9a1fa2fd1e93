"""The MLflow UI, checked in a real browser: a table's runs with their key figures, and the side-by-side comparison.

Needs Debian's Chromium (`apt-get install chromium`; .ci/run installs it when it can) and the `playwright` package
(test extra). Playwright never downloads a browser here: it drives the system one. Skips cleanly without Chromium,
and outside CI without playwright; in CI (CI=true, as .ci/run sets it) with Chromium installed, anything that keeps
the test from running fails it instead.
"""

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

from ila.engine.evaluate import evaluate
from ila.engine.tracking import ui_urls
from ila.engine.train import train

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = [pytest.mark.slow, pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium package")]
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--disable-quic"]  # fmt: skip


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("true", "1", "yes")


def cannot_run(reason: str):
    """Skip, saying why; but in CI with Chromium installed the browser check is expected to run: fail."""
    if in_ci() and CHROMIUM is not None:
        pytest.fail(f"in CI with Chromium installed ({CHROMIUM}) the MLflow UI test must run, but: {reason}")
    pytest.skip(reason)


def playwright_sync_api():
    try:
        from playwright import sync_api
    except ImportError as exc:
        cannot_run(f"needs the playwright package (test extra): {exc}")
    return sync_api


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def mlflow_ui(table4_row_config):
    for row in ("baseline", "ila"):
        cfg = table4_row_config(row)
        train(cfg, run_eval=False)
        evaluate(cfg, cost_at=[("ViT-B-32", 8, "text")])
    uri, port = cfg.tracking.uri, _free_port()
    server = subprocess.Popen([sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", uri, "--host",
                               "127.0.0.1", "--port", str(port)], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(180):
            try:
                if urllib.request.urlopen(f"{base}/health", timeout=2).read().strip() == b"OK":
                    break
            except OSError:
                time.sleep(0.5)
        else:
            pytest.fail("mlflow ui did not start within 90 s")
        yield ui_urls("table4", uri, base)
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_table_runs_and_comparison_show_in_a_browser(mlflow_ui, tmp_path):
    sync_api = playwright_sync_api()
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1600, "height": 1000})
            # The table's runs with the key figures as columns (the shared view `ila compare` links to).
            page.goto(mlflow_ui["runs"])
            for text in ("baseline", "ila", "eval/top1", "cost/at_ViT-B-32_8f/gflops"):
                page.get_by_text(text, exact=True).first.wait_for(timeout=60_000)
            assert page.get_by_text("Overview", exact=True).count() == 0  # not the GenAI overview
            page.screenshot(path=str(tmp_path / "runs.png"))
            # Side by side: both runs, their metrics and parameters.
            page.goto(mlflow_ui["compare"])
            page.get_by_text("Comparing 2 Runs", exact=False).first.wait_for(timeout=60_000)
            # (the metrics list is virtualised: only its first rows are in the page until it is scrolled)
            for text in ("cost/at_ViT-B-32_8f/gflops", "model.variant", "paper.top1"):
                page.get_by_text(text, exact=True).first.wait_for(timeout=60_000)
            body = page.inner_text("body")
            assert "baseline" in body and "ila" in body
            page.screenshot(path=str(tmp_path / "compare.png"), full_page=True)
        finally:
            browser.close()

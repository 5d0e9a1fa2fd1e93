"""The paper path, executed: the paper profiles plus the rehearsal overlay (workflow/config/rehearsal.yaml and, on
this CPU, rehearsal-cpu.yaml) run every step at the paper's configuration and tiny size, from a Kinetics-400 mirror
and a weights mirror on loopback to a table, a figure and MLflow runs; Table 12's chain (a Kinetics-400 run probed on
SSv2) and a Table 2 row of the SSv2 profile too. Assertions are on what the jobs produced."""

import json
import os
import sqlite3
from pathlib import Path

import pytest
import torch
import yaml
from fake_weights import write_openai_archive
from loopback import LoopbackServer
from mini_datasets import K400_LABELS, build_mini_k400, build_mini_ssv2
from workflow_runner import snakemake

from ila.config import load_run_config
from ila.data.readers import available_backends, open_video
from ila.engine import checkpoint as ckpt

REPO = Path(__file__).resolve().parents[1]
CONFIGS = REPO / "workflow" / "config"
REHEARSAL = [str(CONFIGS / "rehearsal.yaml"), str(CONFIGS / "rehearsal-cpu.yaml")]

pytestmark = [pytest.mark.slow, pytest.mark.skipif(not available_backends(), reason="needs a video backend")]


def _overlay(path: Path, settings: dict) -> str:
    path.write_text(yaml.safe_dump(settings))
    return str(path)


def _weights_entry(mirror: Path, server: LoopbackServer, backbone: str) -> dict:
    """A random ``backbone`` in OpenAI's format on the mirror, as the config's `weights:` entry names it."""
    _, digest = write_openai_archive(mirror / "weights" / f"{backbone}.pt", backbone)
    return {f"{backbone}-openai": {"url": f"{server.url}/weights/{backbone}.pt", "sha256": digest}}


def _mlflow_runs(db: Path) -> list[tuple[str, str, dict]]:
    """(experiment, run name, tags) of every run in an MLflow SQLite store."""
    with sqlite3.connect(db) as con:
        rows = con.execute("SELECT e.name, r.name, r.run_uuid FROM runs r JOIN experiments e "
                           "ON r.experiment_id = e.experiment_id").fetchall()
        return [(exp, name, dict(con.execute("SELECT key, value FROM tags WHERE run_uuid = ?", (uuid,)).fetchall()))
                for exp, name, uuid in rows]


def _decode_on_device_available() -> bool:
    """torchcodec on the CPU: required in CI with FFmpeg installed (.ci/run installs it), optional elsewhere."""
    try:
        from torchcodec.decoders import VideoDecoder  # noqa: F401
    except Exception as exc:
        if os.environ.get("CI", "").lower() in ("true", "1", "yes"):
            pytest.fail(f"torchcodec must load in CI (data.decode_on: device is rehearsed there): {exc}")
        return False
    return True


@pytest.fixture(scope="module")
def k400_mirror(tmp_path_factory):
    """Kinetics-400 in the CVDF mirror's layout, 4 classes of clips 448x336 (re-encoded to short side 256 by the
    profile), and OpenAI-format ViT-B/32 weights, served over loopback."""
    root = tmp_path_factory.mktemp("mirror")
    expected = build_mini_k400(root, tmp_path_factory.mktemp("clips"), size=(448, 336), frames=16,
                               labels=K400_LABELS[:4])
    with LoopbackServer(root) as server:
        yield server, expected, _weights_entry(root, server, "ViT-B-32-quickgelu")


def test_paper_k400_rehearsal_trains_evaluates_and_tabulates(k400_mirror, tmp_path):
    """Table 8 (ILA and window attention) whole, Table 4's Baseline, EMD of both, Table 8's figure: every step from
    the mirror, at ViT-B/32 224^2, 8 frames, 4x3 views, mixup/cutmix, accumulation, bf16 autocast and, where
    torchcodec loads, clips decoded in the training process (data.decode_on: device). For CI's time, 2-step
    accumulation rather than the profile's 8 (a ViT-B/32 clip's step costs ~2 s here; the rehearsal's own 8 x 2 x 2
    = 32 clips per row are what a user's CPU rehearsal trains)."""
    server, expected, weights = k400_mirror
    work = tmp_path / "work"
    work.mkdir()
    device_decode = _decode_on_device_available()
    overlay = _overlay(tmp_path / "overlay.yaml", {
        "dataset": {"root": "data/k400", "base_url": server.url, "download_jobs": 2},
        "weights": weights,
        "run": {"train": {"precision": "bf16", "accum_steps": 2},
                "data": {"decode_on": "device"} if device_decode else {}},
    })
    targets = ["rehearsal/table8.csv", "rehearsal/figures/table8.png", "rehearsal/table4/baseline/seed0/emd.json",
               "rehearsal/table4/ila/seed0/emd.json", "rehearsal/table4/baseline/seed0/metrics.json"]
    res = snakemake("--cores", "2", *targets, "--configfile", str(CONFIGS / "paper-k400.yaml"), *REHEARSAL,
                    overlay, cwd=work, timeout=1800)
    out = res.stdout + res.stderr
    assert res.returncode == 0, out[-6000:]
    rehearsal = work / "rehearsal"

    # Data: downloaded from the mirror, extracted, re-encoded from 448x336 to short side 256, listed.
    for rule in ("k400_download", "k400_extract", "preprocess_videos", "dataset_lists", "fetch_clip_weights"):
        assert f"rule {rule}:" in res.stderr, rule
    listed = (work / "data" / "k400" / "val.txt").read_text().split("\n")[0].split()[0]
    # 448 x 256/336 = 341.3, rounded to the even width H.264 needs.
    assert listed.startswith("videos_s256/") and open_video(work / "data" / "k400" / listed).get_frames([0]).shape \
        == (1, 256, 342, 3)
    # Weights: the mirror's file, checked against its sha256, converted to a state dict.
    assert server.gets("weights/ViT-B-32-quickgelu.pt")
    fetched = torch.load(work / "resources" / "weights" / "ViT-B-32-quickgelu-openai.pt", weights_only=True)

    # Each run: the paper's configuration with only the cost shrunk, trained 2 steps, evaluated on 4x3 views.
    for table, row in (("table4", "baseline"), ("table4", "ila"), ("table8", "ila_window_attention")):
        run_dir = rehearsal / table / row / "seed0"
        cfg = load_run_config(run_dir / "run.yaml")
        assert (cfg.model.backbone, cfg.data.input_size, cfg.data.num_frames) == ("ViT-B-32-quickgelu", 224, 8)
        assert (cfg.data.test_clips, cfg.data.test_crops, cfg.train.mixup, cfg.train.cutmix) == (4, 3, 0.8, 1.0)
        assert (cfg.train.accum_steps, cfg.data.batch_size, cfg.train.steps, cfg.data.augment_on) == (2, 2, 2, "device")
        assert (cfg.train.precision, cfg.data.decode_on) == ("bf16", "device" if device_decode else "loader")
        assert (cfg.data.train_per_class, cfg.data.val_per_class, cfg.model.head) == (2, 1, "text")
        state = ckpt.load(run_dir / "checkpoints" / "last.pt", "cpu")
        assert state["step"] == 2
        trained = state["model"]["clip.visual.conv1.weight"].float()
        assert not torch.equal(trained, fetched["visual.conv1.weight"].float())  # the optimiser stepped
        metrics = json.loads((run_dir / "metrics.json").read_text())
        assert metrics["num_videos"] == len(expected["labels"]) and 0.0 <= metrics["top1"] <= 1.0
    for row in ("baseline", "ila"):
        emd = json.loads((rehearsal / "table4" / row / "seed0" / "emd.json").read_text())
        assert emd["emd"] > 0
    # The whole table: both rows with our numbers beside the paper's; its figure.
    table = (rehearsal / "table8.md").read_text()
    assert "2D convolution (ILA)" in table and "Window attention" in table and "81.3" in table
    csv_rows = {line.split(",")[0] for line in (rehearsal / "table8.csv").read_text().splitlines()[1:]}
    assert {"ila", "ila_window_attention"} <= csv_rows
    for ext in ("png", "pdf"):
        assert (rehearsal / "figures" / f"table8.{ext}").stat().st_size > 1000
    # MLflow: the rehearsal's own store, every run tagged; nothing in the real store or results/.
    runs = _mlflow_runs(rehearsal / "mlflow.db")
    assert {(exp, name) for exp, name, _ in runs} >= {("table4", "baseline-seed0"), ("table4", "ila-seed0"),
                                                      ("table8", "ila_window_attention-seed0")}
    assert all(tags.get("rehearsal") == "true" and tags.get("profile") == "paper-k400" for _, _, tags in runs)
    assert not (work / "mlflow.db").exists() and not (work / "results").exists()
    # The summary: jobs run, none failed, seconds and memory per job kind.
    summary = out[out.index("ILA rehearsal (rehearsal/):"):]
    assert "jobs ran, 0 failed, 2 skipped" in summary.splitlines()[0]
    # What this CPU cannot hold (rehearsal-cpu.yaml), named with why; Table 1's curves plot that row.
    assert "\n  skipped: table1/ila_l14_336_16f: ViT-L/14@336, 16 frames: a micro-batch of 2 clips needs" in summary
    assert "\n  skipped: figures/curves_table1: plots a skipped row" in summary
    for kind in ("train", "evaluate", "emd", "tables", "figures", "weights", "data/k400-download"):
        assert f"\n  {kind} " in summary, kind


@pytest.fixture(scope="module")
def ssv2_and_b16(k400_mirror, tmp_path_factory):
    """The user's SSv2 download and OpenAI-format ViT-B/16 weights (Tables 2 and 12's backbone) on the mirror."""
    server, _, _ = k400_mirror
    downloads = tmp_path_factory.mktemp("ssv2") / "downloads"
    expected = build_mini_ssv2(downloads, tmp_path_factory.mktemp("ssv2clips"))
    return downloads, expected, _weights_entry(server.root, server, "ViT-B-16-quickgelu")


def test_table12_chain_and_an_ssv2_row_execute(k400_mirror, ssv2_and_b16, tmp_path):
    """Table 12's chain under paper-k400: the Kinetics-400 ILA ViT-B/16 run, frozen and probed on SSv2 (the probe
    dataset prepared from the user's files); then Table 2's ViT-B/16 row under paper-ssv2 (frozen CLIP, linear
    head, the SSv2 alignment stack). One optimiser step of one micro-batch each: accumulation is rehearsed above,
    and a ViT-B/16 step costs ~4x a ViT-B/32 one here."""
    import shutil

    server, _, weights_b32 = k400_mirror
    downloads, expected, weights = ssv2_and_b16
    work = tmp_path / "work"
    shutil.copytree(downloads, work / "data" / "ssv2" / "downloads")
    cheap = {"train": {"steps": 1, "accum_steps": 1}}
    k400 = _overlay(tmp_path / "k400.yaml", {
        "dataset": {"root": "data/k400", "base_url": server.url, "download_jobs": 2},
        "weights": {**weights, **weights_b32}, "run": cheap})
    res = snakemake("--cores", "2", "rehearsal/table12/ila_probe_b16/seed0/metrics.json", "--configfile",
                    str(CONFIGS / "paper-k400.yaml"), *REHEARSAL, k400, cwd=work, timeout=1800)
    assert res.returncode == 0, (res.stdout + res.stderr)[-6000:]
    assert "rule probe_ssv2_dataset:" in res.stderr
    source = work / "rehearsal" / "table1" / "ila_b16_8f" / "seed0"
    probe = work / "rehearsal" / "table12" / "ila_probe_b16" / "seed0"
    cfg = load_run_config(probe / "run.yaml")
    assert cfg.model.probe_from == "rehearsal/table1/ila_b16_8f/seed0/checkpoints/last.pt"
    assert (cfg.model.backbone, cfg.model.head, cfg.data.root, cfg.data.sampling) == (
        "ViT-B-16-quickgelu", "linear", "data/ssv2", "uniform")
    # The probe trained only its head: every other weight is the source run's.
    src = ckpt.load(source / "checkpoints" / "last.pt", "cpu")["model"]
    probed = ckpt.load(probe / "checkpoints" / "last.pt", "cpu")["model"]
    shared = [k for k in probed if k in src and not k.startswith("classifier.")]
    assert len(shared) > 100 and all(torch.equal(probed[k], src[k]) for k in shared)
    metrics = json.loads((probe / "metrics.json").read_text())
    assert metrics["num_videos"] == len({e["template"] for e in expected["val"]})  # one per class

    ssv2 = _overlay(tmp_path / "ssv2.yaml", {"dataset": {"root": "data/ssv2"}, "weights": weights, "run": cheap})
    res = snakemake("--cores", "2", "rehearsal/table2/ila_b16_8f/seed0/metrics.json", "--configfile",
                    str(CONFIGS / "paper-ssv2.yaml"), *REHEARSAL, ssv2, cwd=work, timeout=1800)
    assert res.returncode == 0, (res.stdout + res.stderr)[-6000:]
    run_dir = work / "rehearsal" / "table2" / "ila_b16_8f" / "seed0"
    cfg = load_run_config(run_dir / "run.yaml")
    assert (cfg.model.head, cfg.model.freeze_visual, cfg.model.prompt_generator) == ("linear", True, False)
    assert cfg.model.profile_operator_args == {"conv_stack": "ssv2"}
    assert (cfg.data.test_clips, cfg.data.test_crops, cfg.data.sampling) == (4, 3, "uniform")  # the row's 4x3
    assert json.loads((run_dir / "metrics.json").read_text())["num_videos"] == len({e["template"] for e in
                                                                                    expected["val"]})
    assert {tags.get("profile") for _, _, tags in _mlflow_runs(work / "rehearsal" / "mlflow.db")} == {
        "paper-k400", "paper-ssv2"}

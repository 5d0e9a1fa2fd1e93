"""Training/evaluation engine on the tiny synthetic preset (CPU, seconds)."""

import json
import os
import subprocess
import sys

import pytest
import torch
from tiny_runs import copy_run
from tiny_runs import engine_config as _cfg

from ila.cli import main
from ila.config import load_run_config
from ila.engine import checkpoint as ckpt_mod
from ila.engine import train as train_mod
from ila.engine.evaluate import evaluate
from ila.engine.train import NonFiniteLossError, train


@pytest.fixture
def trained(trained_baseline):
    """The suite's shared baseline run (tests/conftest.py): ``(cfg, metrics, run_dir)``, read-only."""
    return trained_baseline


def test_tiny_training_learns(trained):
    """Learning, not luck: a constant predictor reaches at most 4/36 top-1 (4 videos per class) and 20/36 top-5 (5
    classes ranked first for every video); the untrained model, scored on the same views, stays near that."""
    from ila.data.dataset import VideoDataset
    from ila.engine.distributed import DistInfo
    from ila.engine.evaluate import run_evaluation
    from ila.models import create_model

    cfg, metrics, out = trained
    assert metrics["num_videos"] == 36 and metrics["num_skipped"] == 0
    assert metrics["top1"] >= 0.25 and metrics["top5"] >= 0.8  # constant: <= 0.111 and <= 0.556
    torch.manual_seed(cfg.seed)  # the initialisation training started from
    untrained = run_evaluation(create_model(cfg.model, VideoDataset(cfg.data, "val").class_names), cfg, DistInfo())
    assert metrics["top1"] >= untrained["top1"] + 0.1 and metrics["top5"] >= untrained["top5"] + 0.2
    assert metrics["top1_static"] > untrained["top1_static"]
    # Frame averaging cannot order time-reversed twins.
    assert metrics["twin_order_accuracy"] == pytest.approx(0.5, abs=0.15)
    # The file is the metrics as the evaluation made them, key for key (ila.metrics.RunMetrics writes it).
    assert (out / "metrics.json").read_text() == json.dumps(metrics, indent=2) + "\n"
    saved = json.loads((out / "metrics.json").read_text())
    assert saved["top1"] == metrics["top1"] and len(saved["confusion_matrix"]) == 9
    assert saved["eval_world_size"] == 1 and saved["eval_videos_per_rank"] == [36]
    assert (out / "confusion_matrix.png").stat().st_size > 0
    assert load_run_config(out / "config.yaml").train.steps == 60  # the resolved config is saved and reloads
    assert "step 60/60" in (out / "train.log").read_text()


def test_per_video_outcomes_add_up_to_the_metrics(trained):
    """The tables' paired tests read the per-video outcomes: they must be the evaluation's own."""
    _, metrics, out = trained
    pv = json.loads((out / "metrics.json").read_text())["per_video"]
    n = len(pv["video"])
    assert n == metrics["num_videos"] == len(set(pv["video"])) and all(not v.startswith("/") for v in pv["video"])
    assert sum(p == y for p, y in zip(pv["pred"], pv["label"], strict=False)) / n == pytest.approx(metrics["top1"])
    assert sum(pv["top5_hit"]) / n == pytest.approx(metrics["top5"])
    twins = [h for h in pv["twin_hit"] if h >= 0]
    assert twins and sum(twins) / len(twins) == pytest.approx(metrics["twin_order_accuracy"])
    # Per class group (Table 13): top-1, top-5 and the temporal score, from the same outcomes.
    names, groups = metrics["class_names"], metrics["class_groups"]
    for g in ("temporal", "static"):
        mine = [i for i, y in enumerate(pv["label"]) if groups[names[y]] == g]
        assert mine
        assert metrics[f"top1_{g}"] == pytest.approx(sum(pv["pred"][i] == pv["label"][i] for i in mine) / len(mine))
        assert metrics[f"top5_{g}"] == pytest.approx(sum(pv["top5_hit"][i] for i in mine) / len(mine))
    assert metrics["temporal_score"] == pytest.approx(metrics["top1_temporal"] - metrics["top1_static"])
    # Frame averaging is blind to order: reversing a clip changes nothing (up to float rounding).
    assert metrics["reversal_probe_clips"] > 0 and metrics["reversal_logit_change"] < 1e-4
    assert metrics["reversal_top1_flip"] == 0


def test_evaluate_is_deterministic(trained, tmp_path):
    cfg, metrics, out = trained
    again = evaluate(copy_run(out, tmp_path / "run")[0])  # a copy: evaluating writes metrics.json
    assert again["confusion_matrix"] == metrics["confusion_matrix"] and again["top5"] == metrics["top5"]


def test_a_run_with_a_weight_average_is_evaluated_on_it(tiny_dataset, tmp_path):
    cfg = _cfg(tiny_dataset, tmp_path / "ema", "train.ema_decay=0.8", steps=6)
    in_process = train(cfg)
    state = ckpt_mod.load(tmp_path / "ema" / "checkpoints" / "last.pt")
    averaged = [k for k, v in state["model"].items() if v.is_floating_point() and not torch.equal(v, state["ema"][k])]
    assert averaged, "the average equals the last step's weights"
    assert ckpt_mod.evaluated_weights(state) is state["ema"]
    again = evaluate(cfg)  # from the checkpoint, as the workflow's evaluation job does
    assert again["confusion_matrix"] == in_process["confusion_matrix"] and again["top5"] == in_process["top5"]


def test_two_trainings_of_one_config_give_identical_weights_and_metrics(tiny_dataset, tmp_path):
    """Determinism on one machine (same CPU, threads and packages): the recipe of the embedded default (weight
    average, label smoothing) on a row with new temporal layers, trained twice from scratch."""
    extra = ["model.variant=xclip", "model.head=linear", "train.ema_decay=0.8", "train.label_smoothing=0.1"]
    first = train(_cfg(tiny_dataset, tmp_path / "a", *extra, steps=6))
    second = train(_cfg(tiny_dataset, tmp_path / "b", *extra, steps=6))
    assert first["per_video"] == second["per_video"] and first["confusion_matrix"] == second["confusion_matrix"]
    a, b = _final_state(tmp_path / "a"), _final_state(tmp_path / "b")
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=0, msg=k)


@pytest.mark.workflow  # torchrun
def test_two_process_gloo_evaluation_counts_every_video_once(trained, tmp_path):
    cfg, metrics, shared = trained
    _, out = copy_run(shared, tmp_path / "run")  # a copy: evaluating writes metrics.json
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "ila.cli", "evaluate", str(out / "config.yaml")]
    subprocess.run(cmd, check=True, env=env, capture_output=True, timeout=300)
    ddp = json.loads((out / "metrics.json").read_text())
    # Two ranks of one group, each with its own half (run_evaluation checks the shards are disjoint and complete).
    assert ddp["eval_world_size"] == 2 and ddp["eval_videos_per_rank"] == [18, 18]
    assert ddp["num_videos"] == metrics["num_videos"]
    assert ddp["confusion_matrix"] == metrics["confusion_matrix"]
    assert ddp["top1"] == metrics["top1"] and ddp["top5"] == metrics["top5"]


def test_mlflow_run_has_params_metrics_and_artifacts(trained):
    from mlflow.tracking import MlflowClient

    cfg, metrics, out = trained
    client = MlflowClient(tracking_uri=cfg.tracking.uri)
    exp = client.get_experiment_by_name("tests")
    runs = client.search_runs([exp.experiment_id], f"attributes.run_name = '{out.name}'")
    assert len(runs) == 1
    run = runs[0]
    assert run.info.status == "FINISHED"
    assert run.data.params["model.variant"] == "baseline" and run.data.params["train.steps"] == "60"
    assert run.data.metrics["eval/top1"] == pytest.approx(metrics["top1"])
    assert "train/loss" in run.data.metrics and "train/data_wait_frac" in run.data.metrics
    history = client.get_metric_history(run.info.run_id, "train/loss")
    assert [m.step for m in history] == list(range(5, 61, 5))
    assert run.data.tags["variant"] == "baseline" and "git_commit" in run.data.tags
    names = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"metrics.json", "confusion_matrix.png", "config.yaml"} <= names


def test_train_log_lines_carry_elapsed_time_and_time_left(trained):
    """Every logged step says how far along the run is, how long it took so far and how long the rest will take."""
    import re

    _, _, out = trained
    duration = r"(\d+s|\d+m\d\ds|\d+h\d\dm)"
    lines = [ln for ln in (out / "train.log").read_text().splitlines() if re.search(r"step \d+/60 ", ln)]
    assert len(lines) == 12, lines  # log_every=5
    for ln in lines:
        m = re.search(rf"step (\d+)/60 \((\d+)%\) train/loss=\S+ .* \| {duration} elapsed, ~{duration} left$", ln)
        assert m and int(m[2]) == 100 * int(m[1]) // 60, ln
    assert lines[-1].endswith("~0s left")


def test_time_left_counts_only_the_steps_this_process_ran(monkeypatch):
    """A run resumed at step 10 that took 10 s for 5 steps has 5 steps, 10 s, left (not 20/15 of the time)."""
    clock = [100.0]
    monkeypatch.setattr(train_mod.time, "perf_counter", lambda: clock[0])
    meter = train_mod._Meter(first_step=10)
    assert meter.progress(10, 20) == "0s elapsed, time left unknown"
    clock[0] += 10
    assert meter.progress(15, 20) == "10s elapsed, ~10s left"
    clock[0] += 3590
    assert meter.progress(16, 400) == "1h00m elapsed, ~64h00m left"
    assert [train_mod._duration(s) for s in (0.4, 59.6, 62, 3599, 3600 + 300)] == ["0s", "1m00s", "1m02s",
                                                                                  "59m59s", "1h05m"]


def _final_state(out):
    state = ckpt_mod.load(out / "checkpoints" / "last.pt")
    return {**state["model"], **{f"ema.{k}": v for k, v in (state["ema"] or {}).items()}}


@pytest.mark.slow
def test_interrupted_run_resumes_to_the_same_result(tiny_dataset, tmp_path, monkeypatch):
    extra = ["model.variant=ila", "train.mixup=0.8", "train.label_smoothing=0.1", "data.batch_size=8",
             "train.ema_decay=0.9"]  # the weight average resumes too
    full = train(_cfg(tiny_dataset, tmp_path / "full", *extra, steps=20))

    real_save = ckpt_mod.save_atomic
    saves = []

    def save_then_die(obj, path):
        real_save(obj, path)
        saves.append(obj["step"])
        if obj["step"] == 10:
            raise KeyboardInterrupt  # the job is killed right after its step-10 checkpoint

    monkeypatch.setattr(train_mod.ckpt, "save_atomic", save_then_die)
    cfg = _cfg(tiny_dataset, tmp_path / "cut", *extra, steps=20)
    with pytest.raises(KeyboardInterrupt):
        train(cfg)
    assert saves == [10]
    monkeypatch.setattr(train_mod.ckpt, "save_atomic", real_save)
    resumed = train(cfg)  # resume is the default
    assert ckpt_mod.load(tmp_path / "cut" / "checkpoints" / "last.pt")["step"] == 20
    assert resumed["confusion_matrix"] == full["confusion_matrix"] and resumed["top5"] == full["top5"]
    a, b = _final_state(tmp_path / "full"), _final_state(tmp_path / "cut")
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=0, msg=k)


@pytest.mark.slow
def test_workers_across_an_epoch_boundary_and_a_resume_give_the_same_weights(tiny_dataset, tmp_path, monkeypatch):
    # 90 training clips at batch 8: 11 batches an epoch. The cut run dies after step 12 (epoch 1, batch 0), so its
    # workers serve epochs 0 and 1 from one loader, and the resumed run starts inside epoch 1.
    extra = ["model.variant=ila", "data.batch_size=8", "tracking.enabled=false", "train.checkpoint_every=4"]
    train(_cfg(tiny_dataset, tmp_path / "full", *extra, steps=14), run_eval=False)

    real_save = ckpt_mod.save_atomic

    def save_then_die(obj, path):
        real_save(obj, path)
        if obj["step"] == 12:
            raise KeyboardInterrupt

    monkeypatch.setattr(train_mod.ckpt, "save_atomic", save_then_die)
    cfg = _cfg(tiny_dataset, tmp_path / "cut", *extra, "data.num_workers=2", steps=14)
    with pytest.raises(KeyboardInterrupt):
        train(cfg, run_eval=False)
    saved = ckpt_mod.load(tmp_path / "cut" / "checkpoints" / "last.pt")
    assert (saved["step"], saved["epoch"], saved["batch_in_epoch"]) == (12, 1, 1)
    monkeypatch.setattr(train_mod.ckpt, "save_atomic", real_save)
    train(cfg, run_eval=False)
    a, b = _final_state(tmp_path / "full"), _final_state(tmp_path / "cut")
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=0, msg=k)


def test_device_augmentation_trains_to_the_same_weights(tiny_dataset, tmp_path):
    extra = ["model.variant=ila", "data.batch_size=8", "tracking.enabled=false"]
    train(_cfg(tiny_dataset, tmp_path / "loader", *extra, steps=6), run_eval=False)
    train(_cfg(tiny_dataset, tmp_path / "device", *extra, "data.augment_on=device", steps=6), run_eval=False)
    a, b = _final_state(tmp_path / "loader"), _final_state(tmp_path / "device")
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=0, msg=k)


def test_decoding_on_the_device_trains_to_the_same_weights(tiny_dataset, tmp_path, torchcodec_cpu):
    extra = ["model.variant=ila", "data.batch_size=8", "tracking.enabled=false", "data.augment_on=device"]
    train(_cfg(tiny_dataset, tmp_path / "loader", *extra, steps=6), run_eval=False)
    train(_cfg(tiny_dataset, tmp_path / "device", *extra, "data.decode_on=device", steps=6), run_eval=False)
    a, b = _final_state(tmp_path / "loader"), _final_state(tmp_path / "device")
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=0, msg=k)


def test_non_finite_loss_stops_with_the_step_and_keeps_the_checkpoint(tiny_dataset, tmp_path, monkeypatch):
    from ila.models.video_clip import VideoCLIP

    real_forward = VideoCLIP.forward
    calls = {"n": 0}

    def poisoned(self, video):
        out = real_forward(self, video)
        calls["n"] += 1
        if calls["n"] == 13:
            out.logits = out.logits * float("nan")
        return out

    monkeypatch.setattr(VideoCLIP, "forward", poisoned)
    cfg = _cfg(tiny_dataset, tmp_path / "nan", steps=20)
    with pytest.raises(NonFiniteLossError, match="at step 13"):
        train(cfg)
    assert ckpt_mod.load(tmp_path / "nan" / "checkpoints" / "last.pt")["step"] == 10


def test_shard_check_refuses_overlap_and_gaps():
    from ila.engine.evaluate import check_shards

    check_shards([[0, 2, 4], [1, 3]], 5)
    with pytest.raises(RuntimeError, match="2 videos evaluated by more than one rank, 0 by none"):
        check_shards([[0, 1], [0, 1]], 2)  # two processes that both think they are rank 0 of 1
    with pytest.raises(RuntimeError, match="0 videos evaluated by more than one rank, 1 by none"):
        check_shards([[0, 2]], 3)


@pytest.mark.parametrize("override,match", [
    ("train.stepz=3", "train.stepz: unknown key"),
    ("train.optim.lr=fast", "train.optim.lr: expected float"),
    ("model.variant=gru", "model.variant: unknown model variant"),
    ("data.sampling=dense", "data.sampling: expected one of"),
])  # fmt: skip
def test_config_errors_name_the_key(override, match, capsys):
    assert main(["train", override, "tracking.enabled=false"]) == 2
    assert match in capsys.readouterr().err


@pytest.mark.workflow  # the analysis script as a user runs it
def test_ila_probe_reports_the_temporal_path(trained_runs):
    """analysis/ila_probe.py on a briefly trained ILA run (the suite's shared Table 4 row): the three figures are
    printed, the MI tokens matter."""
    out = trained_runs["ila"]
    script = os.path.join(os.path.dirname(__file__), "..", "analysis", "ila_probe.py")
    res = subprocess.run([sys.executable, script, str(out), "--clips", "8"], capture_output=True, text=True,
                         timeout=300, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert res.returncode == 0, res.stderr
    lines = {line.split(":")[0].strip(): line for line in res.stdout.splitlines()}
    assert "8 clips" in res.stdout and "block 3" in lines
    dropped = float(lines["mean |logit change|, MI tokens left out"].split()[-1])
    assert dropped > 0  # leaving the tokens out changes the output: the probe really removed them


def test_emd_of_a_trained_run_is_per_video_on_the_evaluated_videos(trained):
    """Table 5's measurement of a run: one value per validation video, keyed like the evaluation's outcomes so the
    table can pair rows video by video."""
    from ila.emd import EMDOptions, measure_run

    cfg, metrics, out = trained
    res = measure_run(cfg)
    pv = json.loads((out / "metrics.json").read_text())["per_video"]
    assert res["per_video"]["video"] == pv["video"] and res["num_videos"] == metrics["num_videos"]
    assert res["emd"] == pytest.approx(sum(res["per_video"]["emd"]) / res["num_videos"]) and res["emd"] > 0
    assert res["options"] == {"normalize": True, "metric": "euclidean", "num_itermax": 1_000_000}
    raw = measure_run(cfg, options=EMDOptions(normalize=False))
    assert raw["emd"] != res["emd"]


def test_the_trainer_steps_every_operators_schedule_before_each_forward(tiny_dataset, tmp_path, monkeypatch):
    from ila.models.operators.ila import ILAOperator, decayed_jitter

    seen = []
    real = ILAOperator.on_train_step

    def record(self, step, train):
        real(self, step, train)
        seen.append((step, self.jitter))

    monkeypatch.setattr(ILAOperator, "on_train_step", record)
    cfg = _cfg(tiny_dataset, tmp_path / "run", "model.variant=ila", "data.batch_size=8", "tracking.enabled=false",
               "train.accum_steps=2", "train.jitter_decay_start=1", "train.jitter_halve_every=2", steps=4)
    train(cfg, run_eval=False)
    per_forward = len(seen) // 8  # 4 steps x 2 micro-batches, every ILA block once each
    assert per_forward >= 1 and len(seen) == 8 * per_forward
    steps = [s for s, _ in seen[::per_forward]]
    assert steps == [0, 0, 1, 1, 2, 2, 3, 3]
    # The release's schedule: 0.2 until step 1, then halved at once and every 2 steps.
    assert [j for _, j in seen[::per_forward]] == [0.2, 0.2, 0.1, 0.1, 0.1, 0.1, 0.05, 0.05]
    assert decayed_jitter(0.2, 7, cfg.train) == 0.2 * 0.5 ** 4

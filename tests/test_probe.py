"""Table 12's linear probe (model.probe_from): a trained run's model, frozen, with a new linear head trained on
another dataset."""

import dataclasses

import pytest
import torch
import torch.nn.functional as F

from ila.config import ConfigError, load_run_config, resolve_model_config
from ila.engine import checkpoint as ckpt
from ila.models import create_model

MINI = {"backbone": "ILA-mini-32", "num_frames": 4}


def _source(tmp_path, variant="ila"):
    """A 'trained' source run: its model moved off its initialisation, saved as the trainer saves it."""
    torch.manual_seed(0)
    model = create_model({**MINI, "variant": variant}, ["a", "b", "c"])
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    path = tmp_path / "source" / "checkpoints" / "last.pt"
    ckpt.save_atomic({"model": model.state_dict()}, path)
    return model.eval(), path


def _video(seed=1):
    return torch.randn(2, 4, 3, 32, 32, generator=torch.Generator().manual_seed(seed))


def test_a_probe_is_the_source_runs_model_frozen_with_a_new_head(tmp_path):
    source, path = _source(tmp_path)
    torch.manual_seed(5)
    probe = create_model({**MINI, "variant": "ila", "head": "linear", "probe_from": str(path)}, ["x"] * 5)
    with torch.no_grad():
        torch.testing.assert_close(probe.eval()(_video()).video, source(_video()).video, rtol=0, atol=0)
    assert [n for n, p in probe.named_parameters() if p.requires_grad] == ["classifier.weight", "classifier.bias"]
    # A training step moves the head only; the frozen model stays in eval mode, so neither its BatchNorm statistics
    # (the alignment module's) nor its outputs change.
    probe.train()
    before = {k: v.clone() for k, v in probe.state_dict().items()}
    optimiser = torch.optim.SGD([p for p in probe.parameters() if p.requires_grad], lr=1.0)
    out = probe(_video(2))
    F.cross_entropy(out.logits, torch.tensor([0, 4])).backward()
    optimiser.step()
    after = probe.state_dict()
    changed = sorted(k for k in before if not torch.equal(before[k], after[k]))
    assert changed == ["classifier.bias", "classifier.weight"]
    assert not any(m.training for n, m in probe.named_modules() if n and not n.startswith("classifier"))


def test_a_checkpoint_of_another_model_is_refused_naming_it(tmp_path):
    _, path = _source(tmp_path, variant="baseline")
    with pytest.raises(ValueError, match=f"{path}: not a run of this model.*video_vit.operators"):
        create_model({**MINI, "variant": "ila", "head": "linear", "probe_from": str(path)}, ["x"])
    with pytest.raises(FileNotFoundError, match="model.probe_from: .*gone.pt not found: train the source run"):
        create_model({**MINI, "variant": "ila", "head": "linear", "probe_from": str(tmp_path / "gone.pt")}, ["x"])


def test_a_probe_needs_a_linear_head():
    with pytest.raises(ConfigError, match="model.probe_from: a linear probe.*set model.head: linear"):
        resolve_model_config({"variant": "ila", "probe_from": "x.pt"})


def test_the_trainer_probes_a_trained_run_on_another_dataset(trained_runs, tmp_path):
    """End to end: a source run trained on the tiny benchmark (the suite's shared Table 4 ILA row), then probed on a
    tiny transfer set (new motion families), as Table 12 probes it; the probe's checkpoint holds the source's
    representation unchanged and a head of its own classes."""
    from ila.data.synth import PRESETS, generate
    from ila.engine.train import train

    transfer = generate(dataclasses.replace(PRESETS["transfer"], static_classes=3, train_per_class=6,
                                            val_per_class=3), tmp_path / "transfer", workers=1, progress=False)
    source = trained_runs["ila"] / "checkpoints" / "last.pt"
    cfg = load_run_config(trained_runs["ila"] / "config.yaml", [
        f"data.root={transfer}", "data.test_clips=1", "train.steps=6", "train.log_every=3", "tracking.enabled=false",
        f"output_dir={tmp_path / 'probe'}", "model.head=linear", f"model.probe_from={source}",
    ])  # fmt: skip
    metrics = train(cfg)
    assert metrics["num_videos"] == 9 * 3 and "top1_temporal" in metrics
    src, probe = ckpt.load(source)["model"], ckpt.load(tmp_path / "probe" / "checkpoints" / "last.pt")["model"]
    shared = [k for k in src if k.startswith(("clip.visual.", "video_vit.", "aggregator."))]
    assert shared and all(torch.equal(src[k], probe[k]) for k in shared)
    assert probe["classifier.weight"].shape[0] == 9


@pytest.mark.workflow
@pytest.mark.parametrize("profile,row,source,root", [
    ("default", "ila_probe", "results/table4/ila/seed0", "data/synth-transfer"),
    ("paper-k400", "evl_probe_b16", "results/table3/evl_b16/seed0", "data/ssv2"),
])  # fmt: skip
def test_the_workflow_chains_each_probe_after_its_source_run(profile, row, source, root, tmp_path):
    """Table 12's rows name their source runs; the workflow trains the source, then the probe on the profile's
    probe dataset (the transfer set, or SSv2 prepared from the user's download for the Kinetics-400 profile)."""
    import yaml
    from workflow_runner import REPO, snakemake

    config = ["--configfile", str(REPO / "workflow" / "config" / f"{profile}.yaml")]
    dry = snakemake("-n", "results/table12.csv", *config, cwd=tmp_path)
    assert dry.returncode == 0, dry.stderr[-3000:]
    out = dry.stdout + dry.stderr
    # The probe's training job reads the probe dataset and waits for its source run of the same seed.
    inputs = out[:out.index(f"output: results/table12/{row}/seed0/train.done")].rsplit("input:", 1)[1]
    assert f"{source}/train.done" in inputs and f"{root}/train.txt" in inputs, inputs
    assert ("probe_ssv2_dataset" in out) == (profile == "paper-k400")
    res = snakemake("--cores", "1", f"results/table12/{row}/seed0/run.yaml", *config, cwd=tmp_path)
    assert res.returncode == 0, res.stderr[-3000:]
    cfg = yaml.safe_load((tmp_path / f"results/table12/{row}/seed0/run.yaml").read_text())
    assert cfg["model"]["probe_from"] == f"{source}/checkpoints/last.pt" and cfg["model"]["head"] == "linear"
    assert cfg["data"]["root"] == root
    if profile == "paper-k400":  # tested as the SSv2 profile tests, whatever the source row's own views
        assert (cfg["data"]["sampling"], cfg["data"]["hflip"], cfg["data"]["test_clips"]) == ("uniform", "off", 2)

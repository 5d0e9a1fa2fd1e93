"""GPU checks (marked ``gpu``: they run where CUDA is present and skip elsewhere; see tests/conftest.py).

A few real training steps of every registered variant under bf16 autocast on the GPU, then the evaluation: the
trainer's own path (setup picks CUDA, precision 'auto' means bf16 there), on the tiny synthetic preset.
"""

import math

import pytest
import torch

from ila.config import load_run_config
from ila.engine import checkpoint as ckpt
from ila.engine.train import train
from ila.models import list_variants

pytestmark = pytest.mark.gpu


@pytest.mark.parametrize("variant", list_variants())
def test_bf16_training_steps_on_cuda(variant, tiny_dataset, tmp_path):
    out = tmp_path / variant
    cfg = load_run_config(None, [
        f"data.root={tiny_dataset}", "data.input_size=32", "data.hflip=remap", "data.batch_size=8",
        f"model.variant={variant}", "model.backbone=ILA-mini-32", "model.head=linear", "train.steps=3",
        "train.log_every=1", "train.precision=auto", "tracking.enabled=false", f"output_dir={out}",
    ])  # fmt: skip
    torch.cuda.reset_peak_memory_stats()
    metrics = train(cfg)
    assert torch.cuda.max_memory_allocated() > 0  # the work ran on the GPU
    assert metrics["train_steps"] == 3 and metrics["num_videos"] == 36 and math.isfinite(metrics["top5"])
    state = ckpt.load(out / "checkpoints" / "last.pt")
    assert all(torch.isfinite(v).all() for v in state["model"].values() if v.is_floating_point())
    assert "step 3/3" in (out / "train.log").read_text()

import pytest
import torch

from ila.cli import main
from ila.models.backbone import build_clip
from ila.models.flops import count_macs, model_cost


def vit_macs(frames, tokens, width, layers, patch, embed):
    """Analytic multiply-adds of a plain CLIP ViT image tower."""
    patches = tokens - 1
    per_block = 12 * tokens * width**2 + 2 * tokens**2 * width  # qkv + out + MLP(4x) + QK^T + AV
    return frames * (patches * 3 * patch**2 * width + layers * per_block + width * embed)


@pytest.mark.parametrize("name,tokens,width,layers,patch,embed", [
    ("ILA-mini-32", 17, 128, 4, 8, 128),
    ("ViT-B-32", 50, 768, 12, 32, 512),
])  # fmt: skip
def test_counter_equals_the_analytic_vit_count(name, tokens, width, layers, patch, embed):
    visual = build_clip(name, device="meta").visual.eval()
    size = visual.image_size[0]
    got = count_macs(visual, torch.empty(8, 3, size, size, device="meta"))
    assert got == vit_macs(8, tokens, width, layers, patch, embed)


def test_vit_b32_reference_figures():
    base = model_cost({"variant": "baseline", "backbone": "ViT-B-32", "head": "linear"})
    assert round(base.gflops, 2) == 35.27  # video only: the figure in tooling.md
    assert base.params_operator == 0
    released = model_cost({"variant": "ila_released", "backbone": "ViT-B-32"})
    assert 39e6 < released.params_operator < 42e6  # the release adds about 40 M (reference notes)
    costs = {v: model_cost({"variant": v, "backbone": "ViT-B-32"}).gflops for v in ("baseline", "avg_pool", "ila")}
    assert costs["baseline"] < costs["avg_pool"] < costs["ila"]


def test_flops_command_prints_a_row(capsys):
    assert main(["flops", "--variant", "ila", "--backbone", "ILA-mini-32", "--set", "num_frames=4"]) == 0
    out = capsys.readouterr().out
    assert "ila" in out and "GFLOPs" in out


def test_cost_at_the_paper_config_counts_the_papers_head():
    """A run trained with a linear head (the embedded default) still reports the paper config's cost with the
    paper's text head, while its own cost stays that of the head it has."""
    from ila.config import load_run_config
    from ila.engine.train import _costs

    cfg = load_run_config(None, ["model.variant=baseline", "model.backbone=ILA-mini-32", "model.head=linear"])
    costs = _costs(cfg, [("ViT-B-32", 8, "text")])
    paper = costs["ViT-B-32@8f"]
    assert paper["head"] == "text"
    assert round(paper["gflops"], 2) == 38.46  # 35.27 video + the text tower and prompt generator
    assert round(_costs(cfg, [("ViT-B-32", 8, None)])["ViT-B-32@8f"]["gflops"], 2) == 35.27  # None: the run's head
    assert costs["run_config"]["gflops"] == model_cost(cfg.model).gflops


def test_cost_at_argument_is_checked(tmp_path, capsys):
    assert main(["evaluate", "model.backbone=ILA-mini-32", f"output_dir={tmp_path}", "--cost-at", "ViT-B-32"]) == 2
    assert "BACKBONE:FRAMES" in capsys.readouterr().err

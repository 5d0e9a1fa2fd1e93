import pytest
import torch

from ila.cli import main
from ila.models import list_variants
from ila.models.backbone import build_clip
from ila.models.flops import count_macs_by_module, model_cost


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
    got = count_macs_by_module(visual, torch.empty(8, 3, size, size, device="meta"))["Global"]
    assert got == vit_macs(8, tokens, width, layers, patch, embed)


def test_vit_b32_reference_figures():
    base = model_cost({"variant": "baseline", "backbone": "ViT-B-32", "head": "linear"})
    assert round(base.gflops, 2) == 35.27  # video only: 35.27 G multiply-adds, counted exactly
    assert base.params_operator == 0
    costs = {v: model_cost({"variant": v, "backbone": "ViT-B-32"}).gflops for v in ("baseline", "avg_pool", "ila")}
    assert costs["baseline"] < costs["avg_pool"] < costs["ila"]


@pytest.mark.parametrize("variant", list_variants())
def test_every_variant_is_counted_on_the_meta_device(variant):
    cost = model_cost({"variant": variant, "backbone": "ILA-mini-32", "num_frames": 4})
    assert cost.gflops > 0 and cost.params_total > 0


def test_flops_command_prints_a_row(capsys):
    assert main(["flops", "--variant", "ila", "--backbone", "ILA-mini-32", "model.aggregator=mit"]) == 0
    out = capsys.readouterr().out
    assert "ila" in out and "GFLOPs" in out


def test_cost_at_the_paper_config_counts_the_papers_head():
    """A run trained with a linear head (the embedded default) still reports the paper config's cost with the
    paper's text head, while its own cost stays that of the head it has."""
    from ila.config import load_run_config
    from ila.engine.evaluate import _costs

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


def _conv(cin, cout, k, groups=1, dims=2):
    return cout * (cin // groups) * k**dims + cout


def _bn(c):
    return 2 * c


def _linear(i, o):
    return i * o + o


def test_released_ila_matches_the_release_block_by_block():
    """The release's per-block structure (the message Linear + LayerNorm and the two zero-initialised skip Linears
    are in the release's models/mat.py), counted layer by layer at ViT-B/32: D = 768,
    256 interaction channels, 128-channel halves."""
    from torch import nn

    from ila.models import create_model

    d, h, half = 768, 256, 128
    expected = {
        "message_fc": _linear(d, d),
        "message_ln": 2 * d,
        # depthwise 3x3 on 2D -> BN -> ReLU -> pointwise 2D->256 -> BN -> ReLU -> 3x3 256->256 -> BN -> ReLU
        "align.interaction": _conv(2 * d, 2 * d, 3, groups=2 * d) + _bn(2 * d) + _conv(2 * d, h, 1) + _bn(h)
        + _conv(h, h, 3) + _bn(h),
        # 3x3 256->128 -> BN -> pool -> ReLU; 3x3 128->128 -> BN -> pool -> ReLU; global max pool
        "align.point_convs": _conv(h, half, 3) + _bn(half) + _conv(half, half, 3) + _bn(half),
        # Conv1d 128->64 (groups 2) -> ReLU -> Conv1d 64->4 (groups 2) -> tanh
        "align.point_head": _conv(half, 64, 1, groups=2, dims=1) + _conv(64, 4, 1, groups=2, dims=1),
        "temporal_conv": _conv(half, half, 3, dims=1),  # kernel (3, 1, 1)
        "interactive_fc": _linear(half, d),
        "skip_align_fc": _linear(d, d),
        "skip_interactive_fc": _linear(d, d),
    }
    model = create_model({"variant": "ila_released", "backbone": "ViT-B-32", "pretrained": None}, ["a", "b"])
    ops = model.video_vit.operators
    assert sorted(ops, key=int) == [str(i) for i in range(12)]  # one per block of the 12
    for op in ops.values():
        got = {name: sum(p.numel() for p in op.get_submodule(name).parameters()) for name in expected}
        assert got == expected
        assert sum(p.numel() for p in op.parameters()) == sum(expected.values())  # no parts beyond these
        first = op.align.interaction[0]
        assert isinstance(first, nn.Conv2d) and first.groups == 2 * d and first.kernel_size == (3, 3)
        assert [type(m) for m in op.align.point_head] == [nn.Conv1d, nn.ReLU, nn.Conv1d, nn.Tanh]
        assert op.temporal_conv.kernel_size == (3, 1, 1) and op.temporal_conv.padding == (1, 0, 0)
        for zero in (op.align.point_head[2], op.skip_align_fc, op.skip_interactive_fc):
            assert not zero.weight.any() and not zero.bias.any()  # zero-initialised, as released
    assert sum(expected.values()) * 12 == 40_465_200 == model_cost(
        {"variant": "ila_released", "backbone": "ViT-B-32"}).params_operator

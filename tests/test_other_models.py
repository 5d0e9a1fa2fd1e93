"""Table 3's models: EVL and EVL + ILA (ila.models.aggregators.EVLDecoder), TimeSformer + ILA. TimeSformer itself
(divided space-time attention with one video-level class token) is tested in test_backbones.py; every variant also
gets the shared forward/backward checks of test_models.py."""

import math

import pytest
import torch
import torch.nn.functional as F

from ila.config import ConfigError, resolve_model_config
from ila.models import create_model
from ila.models.aggregators import EVLTemporalCrossAttention
from ila.models.operators.base import average_class_tokens

CLASSES = ["left to right", "right to left", "a big square"]
FAMILIES = ["ILA-mini-32", "ILA-mini-timm-32"]


def _model(variant, backbone="ILA-mini-32", **over):
    torch.manual_seed(0)
    return create_model({"variant": variant, "backbone": backbone, "num_frames": 4, **over}, CLASSES)


def _video(seed=1):
    return torch.randn(2, 4, 3, 32, 32, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("variant", ["evl", "evl_ila"])
def test_evl_trains_its_decoder_and_ilas_modules_never_the_tower(variant):
    """EVL keeps the image tower frozen: a training step reaches the decoder (and, in EVL + ILA, ILA's modules,
    through the frozen blocks) and no weight of the tower."""
    model = _model(variant).train()
    assert model.aggregator.intermediate_blocks == (-4, -3, -2, -1)  # the mini's 4 blocks; ViT-B's last 4 of 12
    out = model(_video())
    (F.cross_entropy(out.logits, torch.tensor([0, 2])) + out.aux_loss).backward()
    assert all(not p.requires_grad and p.grad is None for p in model.clip.parameters())
    assert model.param_groups()["clip"] == [] or variant == "evl_ila"  # ILA's copies of tower weights, if any
    decoder = dict(model.aggregator.named_parameters())
    for name in ("query", "temporal_pos.0", "cross_attention.0.previous", "temporal_conv.0.weight"):
        assert decoder[name].grad is not None and decoder[name].grad.abs().sum() > 0, name
    operators = list(model.video_vit.operators.parameters())
    assert bool(operators) == (variant == "evl_ila")
    assert all(p.requires_grad for p in operators)
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in operators) == (variant == "evl_ila")


@pytest.mark.parametrize("variant", ["evl", "evl_ila"])
def test_evl_and_evl_ila_start_from_the_per_frame_tower(variant):
    """At initialisation the tower EVL's decoder reads is the image model run frame by frame, with ILA too (its
    points start at the centre, so each frame's MI token is its own): permuting the frames permutes every block's
    output tokens, nothing else."""
    model = _model(variant).eval()
    video, perm = _video(), torch.tensor([2, 0, 3, 1])
    with torch.no_grad():
        plain = model.video_vit(video, range(4)).intermediates
        permuted = model.video_vit(video[:, perm], range(4)).intermediates
    for i in range(4):
        torch.testing.assert_close(permuted[i], plain[i][:, perm], rtol=1e-5, atol=1e-5)


def test_evl_temporal_parts_start_at_zero_and_its_convolution_is_live():
    """EVL's temporal cross-attention and temporal position embedding start at zero (they add nothing), its depthwise
    temporal convolution starts at PyTorch's default init (as EVL's): with the convolutions zeroed the model is
    EVL's decoder over the unordered set of frames (frame order does not change its output); with them as
    initialised, it does."""
    model = _model("evl").eval()
    video = _video()
    perm = torch.tensor([2, 0, 3, 1])
    agg = model.aggregator
    assert all(not p.any() for p in agg.temporal_pos) and not agg.query.any()
    with torch.no_grad():
        feats = model.video_vit(video, agg.intermediate_blocks, True)
        for i, index in enumerate(sorted(feats.intermediates)):
            q, k = (z.reshape(2, 4, *z.shape[1:]) for z in feats.qk[index])
            assert not agg.cross_attention[i](q, k).any()
        live = model(video).logits, model(video[:, perm]).logits
        for conv in agg.temporal_conv:
            conv.weight.zero_()
            conv.bias.zero_()
        unordered = model(video).logits, model(video[:, perm]).logits
    torch.testing.assert_close(*unordered, rtol=1e-5, atol=1e-5)
    assert not torch.allclose(*live, rtol=1e-3, atol=1e-3)


def test_evl_cross_attention_weights_its_offset_tables_by_the_blocks_attention():
    """A known answer, computed here with loops: patch p of frame t gets, from the previous frame, the sum over its
    patches p' of softmax_p'(q_t[p] . k_(t-1)[p'] / sqrt(d)) (averaged over heads) times the table's vector for the
    2-D offset p - p', and the same from the next frame with the other table; the class token and the missing
    neighbours (before the first frame, after the last) give nothing. Tokens past the grid (an operator's extra
    tokens) are ignored."""
    torch.manual_seed(3)
    grid, width, heads, d, t = (2, 3), 5, 2, 4, 3
    xattn = EVLTemporalCrossAttention(grid, width)
    torch.nn.init.normal_(xattn.previous)
    torch.nn.init.normal_(xattn.next)
    hw = grid[0] * grid[1]
    q, k = torch.randn(1, t, heads, 1 + hw + 1, d), torch.randn(1, t, heads, 1 + hw + 1, d)
    out = xattn(q, k)
    expected = torch.zeros(1, t, 1 + hw, width)
    for f in range(t):
        for table, g in ((xattn.previous, f - 1), (xattn.next, f + 1)):
            if not 0 <= g < t:
                continue
            for p in range(hw):
                logits = torch.stack([(q[0, f, :, 1 + p] * k[0, g, :, 1 + r]).sum(-1) / math.sqrt(d)
                                      for r in range(hw)], dim=-1)  # [heads, HW]
                attn = logits.softmax(-1).mean(0)
                for r in range(hw):
                    dy = p // grid[1] - r // grid[1] + grid[0] - 1
                    dx = p % grid[1] - r % grid[1] + grid[1] - 1
                    expected[0, f, 1 + p] += attn[r] * table[dy * (2 * grid[1] - 1) + dx]
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("backbone", FAMILIES)
def test_timesformer_at_zero_init_is_the_image_model_with_one_video_class_token(backbone):
    """TimeSformer's new parts start at zero (the temporal projection, the time embedding), so at initialisation it
    is its base: the image model run frame by frame with the frames' class outputs averaged into one video token
    after every spatial attention. Computed here from the blocks themselves."""
    model = _model("timesformer", backbone).eval()
    vit, video = model.video_vit, _video()
    with torch.no_grad():
        x = vit.backbone.embed(video.flatten(0, 1))
        for block in vit.backbone.blocks:
            x, _ = block.attention_residual(x)
            x = block.mlp_residual(average_class_tokens(x, 4))
        base = vit.backbone.pool(x).reshape(2, 4, -1)
        torch.testing.assert_close(vit(video).frames, base, rtol=1e-5, atol=1e-5)


def test_timesformer_ila_carries_one_video_class_token_and_ilas_mi_token():
    """TimeSformer + ILA: TimeSformer's temporal attention replaced by ILA's module, its video-level class token
    kept (the same in every frame after every block), ILA's MI token and alignment loss in every block."""
    model = _model("timesformer_ila", head="linear", prompt_generator=False).eval()
    with torch.no_grad():
        feats = model.video_vit(_video(), range(4))
    for i in range(4):
        cls = feats.intermediates[i][:, :, 0]
        torch.testing.assert_close(cls, cls[:, :1].expand_as(cls), rtol=1e-5, atol=1e-5)
    assert feats.aux_loss > 0
    assert all(type(op).__name__ == "ILAOperator" and op.video_cls for op in model.video_vit.operators.values())


def test_evl_needs_a_linear_head():
    with pytest.raises(ConfigError, match="model.aggregator: 'evl'.*set model.head: linear"):
        resolve_model_config({"variant": "evl", "head": "text"})

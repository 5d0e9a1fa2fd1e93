"""The backbone adapters and what the video ViT gives back: block outputs and attention queries/keys that match
each library's own blocks, on both adapted families; the operators' block hooks."""

import pytest
import torch

from ila.models import create_model
from ila.models.adapters import adapt_backbone

CLASSES = ["a", "b", "c"]
FAMILIES = ["ILA-mini-32", "ILA-mini-timm-32"]


def _model(variant, backbone, **over):
    torch.manual_seed(0)
    return create_model({"variant": variant, "backbone": backbone, "num_frames": 4, **over}, CLASSES).eval()


def _video(seed=1):
    return torch.randn(2, 4, 3, 32, 32, generator=torch.Generator().manual_seed(seed))


def _library_blocks(model):
    """The image tower's blocks as the library itself holds them (not through the adapter)."""
    visual = model.clip.visual
    return list(visual.trunk.blocks) if hasattr(visual, "trunk") else list(visual.transformer.resblocks)


def _library_qk(block, x):
    """Queries and keys of ``block``'s attention for input tokens ``x``, from the library's own weights."""
    if hasattr(block, "ln_1"):  # open_clip: nn.MultiheadAttention's packed projection
        attn, h = block.attn, block.attn.num_heads
        q, k, _ = torch.nn.functional.linear(block.ln_1(x), attn.in_proj_weight, attn.in_proj_bias).chunk(3, -1)
    else:  # timm: fused qkv Linear
        attn, h = block.attn, block.attn.num_heads
        q, k, _ = block.attn.qkv(block.norm1(x)).chunk(3, -1)
    return tuple(t.reshape(*t.shape[:2], h, -1).transpose(1, 2) for t in (q, k))


@pytest.mark.parametrize("backbone", FAMILIES)
def test_forward_intermediates_are_the_library_blocks_outputs(backbone):
    model = _model("baseline", backbone)
    seen = {}
    hooks = [blk.register_forward_hook(lambda m, inp, out, i=i: seen.__setitem__(i, (inp[0], out)))
             for i, blk in enumerate(_library_blocks(model))]
    video = _video()
    try:
        with torch.no_grad():
            model.clip.encode_image(video.flatten(0, 1))  # the library's own forward fills `seen`
    finally:
        for h in hooks:
            h.remove()
    with torch.no_grad():
        feats = model.video_vit.forward_intermediates(video, [0, -1], attention_qk=True)
    depth = model.video_vit.depth
    assert sorted(feats.intermediates) == [0, depth - 1] == sorted(feats.qk)
    for i in (0, depth - 1):
        block_in, block_out = seen[i]
        torch.testing.assert_close(feats.intermediates[i], block_out.reshape(2, 4, *block_out.shape[1:]),
                                   rtol=1e-5, atol=1e-5)
        for ours, theirs in zip(feats.qk[i], _library_qk(_library_blocks(model)[i], block_in), strict=True):
            torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(feats.patches, feats.intermediates[depth - 1][:, :, 1:])
    early = model.video_vit.forward_intermediates(video, [1], stop_early=True)
    assert early.frames is None and list(early.intermediates) == [1]
    with pytest.raises(ValueError, match="block index 9 outside the backbone's 4 blocks"):
        model.video_vit.forward_intermediates(video, [9])


def test_open_clip_attention_weights_match_the_library():
    """The queries and keys give the library's own attention weights (nn.MultiheadAttention's)."""
    model = _model("baseline", "ILA-mini-32")
    blk = _library_blocks(model)[2]
    x = torch.randn(8, 17, 128)
    with torch.no_grad():
        _, weights = blk.attn(blk.ln_1(x), blk.ln_1(x), blk.ln_1(x), need_weights=True, average_attn_weights=False)
        block = adapt_backbone(model.clip.visual).blocks[2]
        q, k = block.attend(block.attn, blk.ln_1(x), want_qk=True)[1]
    ours = (q @ k.transpose(-1, -2) / q.shape[-1] ** 0.5).softmax(-1)
    torch.testing.assert_close(ours, weights, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("backbone", FAMILIES)
def test_adapter_reads_the_towers_shape(backbone):
    model = _model("baseline", backbone)
    adapter = model.video_vit.backbone
    assert (adapter.depth, adapter.width, adapter.heads, adapter.grid, adapter.output_dim) == (4, 128, 4, (4, 4), 128)


def test_an_unknown_tower_is_refused_by_name():
    with pytest.raises(ValueError, match="no backbone adapter for image tower Linear"):
        adapt_backbone(torch.nn.Linear(2, 2))


def _perturbed(model):
    """Move the zero-initialised temporal projections off zero, as training would."""
    torch.manual_seed(4)
    for op in model.video_vit.operators.values():
        torch.nn.init.normal_(op.temporal.fc.weight, std=0.2)
    torch.nn.init.normal_(model.video_vit.time_embed, std=0.5)
    return model


@pytest.mark.parametrize("backbone", FAMILIES)
def test_timesformer_carries_one_video_class_token(backbone):
    """The operator's hook after the attention averages the frames' class outputs: every block's class token is
    the same in every frame of a video (one video-level token), and so are the frames' pooled embeddings.
    divided_st, the same operator without the hook, keeps one class token per frame."""
    video = _video()
    for variant, shared in (("timesformer", True), ("divided_st", False)):
        model = _perturbed(_model(variant, backbone))
        with torch.no_grad():
            feats = model.video_vit.forward_intermediates(video, range(4))
        for i in range(4):
            cls = feats.intermediates[i][:, :, 0]  # [B, T, D]
            assert torch.allclose(cls, cls[:, :1].expand_as(cls), atol=1e-5) == shared, (variant, i)
        frames = feats.frames
        assert torch.allclose(frames, frames[:, :1].expand_as(frames), atol=1e-5) == shared, variant


def test_a_tower_that_drops_patches_is_refused():
    import open_clip

    visual = open_clip.create_model("ILA-mini-32", force_patch_dropout=0.5).visual
    with pytest.raises(ValueError, match="drops patches in training"):
        adapt_backbone(visual)


def test_checkpoints_and_configs_from_before_the_aggregators_still_load():
    """Runs saved when X-CLIP's head was the boolean ``model.mit`` (weights under ``mit.*``) load into today's
    model, and their saved config still counts as the run's config (so an interrupted run resumes)."""
    from ila.config import load_run_config, to_dict
    from ila.engine.train import _same_config

    model = _model("xclip", "ILA-mini-32")
    old = {k.replace("aggregator.", "mit.", 1): v.clone() + 1 for k, v in model.state_dict().items()}
    assert any(k.startswith("mit.") for k in old)
    model.load_state_dict(old)
    torch.testing.assert_close(model.aggregator.pos, old["mit.pos"])
    cfg = load_run_config(None, ["model.variant=xclip"])
    saved = to_dict(cfg)
    saved["model"]["mit"] = saved["model"].pop("aggregator") == "mit"
    with pytest.warns(FutureWarning):
        assert _same_config(saved, cfg)
        assert not _same_config({**saved, "seed": 5}, cfg)

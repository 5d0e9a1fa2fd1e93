"""Every registered variant gets the same forward/backward checks (as timm does), plus the ILA-specific ones."""

import itertools

import pytest
import torch
import torch.nn.functional as F

from ila.config import ConfigError
from ila.models import create_model, list_variants, resolve_model_config
from ila.models.backbone import MissingWeightsError, build_clip
from ila.models.operators.ila import ILAOperator, axis_weights, frame_pairs, interactive_masks

CLASSES = ["an object moving from left to right", "an object moving from right to left", "a big square"]
MINI = {"backbone": "ILA-mini-32", "num_frames": 4}
# One small backbone per adapted family: open_clip's own ViT and a timm ViT inside open_clip (same sizes).
FAMILIES = ["ILA-mini-32", "ILA-mini-timm-32"]


def _model(variant, seed=0, **over):
    torch.manual_seed(seed)
    return create_model({**MINI, "variant": variant, **over}, CLASSES)


def _video(b=2, t=4, seed=1):
    return torch.randn(b, t, 3, 32, 32, generator=torch.Generator().manual_seed(seed))


ILA_OPTIONS = [
    dict(zip(("strategy", "operator", "mi_token"), combo, strict=False))
    for combo in itertools.product(("adjacent", "first", "middle"), ("conv2d", "window_attention"),
                                   ("pool_concat", "add", "concat_all"))
]  # fmt: skip
CASES = [(v, {"backbone": f}) for f in FAMILIES for v in list_variants()] + [
    ("ila", {"operator_args": opts}) for opts in ILA_OPTIONS
] + [
    ("ila", {"operator_args": {"conv_stack": "ssv2"}}),
    ("ila", {"blocks": [0, 1]}),
    ("ila", {"head": "linear"}),
    ("ila", {"prompt_generator": False, "aggregator": "mit"}),
    ("ila_released", {"operator_args": {"conv_stack": "ssv2"}}),
]


@pytest.mark.parametrize("variant,over", CASES, ids=[f"{v}-{o.get('backbone', 'mini')}-{i}"
                                                      for i, (v, o) in enumerate(CASES)])
def test_forward_backward_reaches_new_parameters(variant, over):
    model = _model(variant, **over).train()
    out = model(_video())
    assert out.logits.shape == (2, len(CLASSES))
    loss = F.cross_entropy(out.logits, torch.tensor([0, 2])) + out.aux_loss
    assert torch.isfinite(loss)
    loss.backward()
    groups = model.param_groups()
    for group in groups.values():
        for p in group:
            assert p.grad is None or torch.isfinite(p.grad).all()
    op_params = [p for p in model.video_vit.operators.parameters() if p.requires_grad]
    if op_params:  # avg_pool adds no parameters
        assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in op_params)
    # Every new parameter that the forward used has a gradient.
    assert all(p.grad is not None for p in groups["new"] if p.requires_grad), variant


def test_every_variant_resolves_and_registers_an_operator_or_none():
    assert {"baseline", "avg_pool", "ila", "ila_released"} <= set(list_variants())
    for v in list_variants():
        cfg = resolve_model_config({"variant": v})
        assert cfg.variant == v
    with pytest.raises(ConfigError, match="model.variant: unknown model variant"):
        resolve_model_config({"variant": "nope"})
    with pytest.raises(ConfigError, match="model.operator_args.stratgy: unknown key"):
        create_model({**MINI, "variant": "ila", "operator_args": {"stratgy": "first"}}, CLASSES)


@pytest.mark.parametrize("backbone", FAMILIES)
def test_wrapper_without_operator_is_the_image_model(backbone):
    model = _model("baseline", backbone=backbone).eval()
    video = _video()
    feats = model.video_vit(video)
    frames, aux = feats.frames, feats.aux_loss
    with torch.no_grad():
        ref = model.clip.encode_image(video.flatten(0, 1)).reshape(2, 4, -1)
    torch.testing.assert_close(frames, ref, rtol=1e-5, atol=1e-5)
    assert aux.item() == 0


def test_released_ila_is_exactly_the_image_model_at_init():
    base, released = _model("baseline", seed=3).eval(), _model("ila_released", seed=3).eval()
    video = _video()
    # Same CLIP weights (same seed); the zero-initialised skip layers add exact zeros.
    torch.testing.assert_close(released.video_vit(video).frames, base.video_vit(video).frames, rtol=0, atol=0)


def _permuted_frames_equal(model, video):
    perm = torch.tensor([2, 0, 3, 1])
    frames = model.video_vit(video).frames
    frames_perm = model.video_vit(video[:, perm]).frames
    return torch.allclose(frames[:, perm], frames_perm, atol=1e-5)


def test_paper_ila_processes_each_frame_on_its_own_at_init():
    """At init every point is the centre, so a frame's MI token is a fixed centre-weighted mean of its own patch
    tokens: the model is the image model plus one self-derived token, with no mixing across frames."""
    model = _model("ila").eval()
    video = _video()
    assert _permuted_frames_equal(model, video)
    # The MI token is exactly the centre-weighted mean of the frame's own tokens.
    op: ILAOperator = model.video_vit.operator_at(0)
    x = torch.randn(2 * 4, 17, 128)
    out = op(x, 4)
    centre = interactive_masks(torch.zeros(1, 2), (4, 4))[0].reshape(16, 1)
    torch.testing.assert_close(out.extra[:, 0], (centre * x[:, 1:]).mean(1), rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(out.x, x, rtol=0, atol=0)


def test_baseline_ignores_frame_order_and_trained_ila_does_not():
    video = _video()
    rev = video.flip(1)
    base = _model("baseline").eval()
    torch.testing.assert_close(base(video).logits, base(rev).logits, rtol=1e-5, atol=1e-5)
    ila = _model("ila").eval()
    torch.testing.assert_close(ila(video).logits, ila(rev).logits, rtol=1e-5, atol=1e-5)  # still frame-wise
    torch.manual_seed(0)
    for op in ila.video_vit.operators.values():  # move the point head off its zero initialisation
        torch.nn.init.normal_(op.align.point_head[2].weight, std=0.5)
        torch.nn.init.normal_(op.align.point_head[2].bias, std=0.5)
    assert not torch.allclose(ila(video).logits, ila(rev).logits, atol=1e-4)
    assert not _permuted_frames_equal(ila, video)


@pytest.mark.parametrize("variant", ["divided_st", "ata"])
def test_temporal_attention_sees_frame_order_only_with_the_time_embedding(variant):
    """Attention over T is permutation-equivariant and the frame mean removes the rest: without TimeSformer's
    temporal position embedding a clip and its reverse get the same logits however the weights are set."""
    video = _video()
    rev = video.flip(1)

    def perturbed(**over):
        model = _model(variant, **over).eval()
        torch.manual_seed(3)
        for op in model.video_vit.operators.values():  # the zero-initialised projection, as after training
            torch.nn.init.normal_(op.temporal.fc.weight, std=0.2)
        if model.video_vit.time_embed is not None:
            torch.nn.init.normal_(model.video_vit.time_embed, std=0.5)
        return model

    assert resolve_model_config({"variant": variant}).time_embed
    fresh = _model(variant).eval()  # zero embedding and projection: the image model, blind to order
    torch.testing.assert_close(fresh(video).logits, fresh(rev).logits, rtol=1e-5, atol=1e-5)
    blind = perturbed(time_embed=False)
    torch.testing.assert_close(blind(video).logits, blind(rev).logits, rtol=1e-4, atol=1e-4)
    aware = perturbed()
    assert not torch.allclose(aware(video).logits, aware(rev).logits, atol=1e-3)
    assert aware.video_vit.time_embed in aware.param_groups()["new"]


def test_mask_values_at_known_points():
    w = axis_weights(torch.tensor([0.0]), 7)[0]
    torch.testing.assert_close(w, torch.tensor([0.0, 0.375, 0.875, 1.0, 0.875, 0.375, 0.0]))
    w = axis_weights(torch.tensor([0.75]), 5)[0]  # grid -1, -.5, 0, .5, 1
    torch.testing.assert_close(w, torch.tensor([0.0, 0.0, 0.25, 1.0, 1.0]))
    m = interactive_masks(torch.tensor([[0.5, -0.5]]), (5, 5))[0]  # (x, y)
    assert m[1, 3] == 1.0 and m[3, 1] == 0.0 and m.argmax() == 1 * 5 + 3
    # Jitter 0.2 at the centre: the nine offsets are every (dx, dy) in {-0.2, 0, 0.2}^2, so the mean mask is the outer
    # product of the per-axis means. Worked by hand on the 7-point grid (-1, -2/3, -1/3, 0, 1/3, 2/3, 1) with
    # w(d) = 1 for d <= 0.25 else max(0, 1 - 1.5 (d - 0.25)):
    #   point  0.0: 0,     0.375, 0.875, 1, 0.875, 0.375, 0
    #   point  0.2: 0,     0.075, 0.575, 1, 1,     0.675, 0.175
    #   point -0.2: 0.175, 0.675, 1,     1, 0.575, 0.075, 0
    #   mean:       7/120, 3/8,   49/60, 1, 49/60, 3/8,   7/120
    axis = torch.tensor([7 / 120, 3 / 8, 49 / 60, 1.0, 49 / 60, 3 / 8, 7 / 120])
    jittered = interactive_masks(torch.tensor([[0.0, 0.0]]), (7, 7), jitter=0.2)[0]
    torch.testing.assert_close(jittered, axis[:, None] * axis[None, :])
    assert jittered[3, 3] == 1.0 and abs(jittered[0, 0] - (7 / 120) ** 2) < 1e-7


def test_mask_gradient_reaches_the_points():
    p = torch.tensor([[0.1, -0.2]], requires_grad=True)
    (interactive_masks(p, (7, 7)) * torch.arange(49.0).view(7, 7)).sum().backward()
    assert p.grad.abs().sum() > 0


def test_frame_pairs_follow_the_paper_and_table_6():
    pairs, use = frame_pairs(4, "adjacent")
    assert pairs == [(0, 1), (1, 2), (2, 3)] and use == [(0, 0), (1, 0), (2, 0), (2, 1)]
    pairs, use = frame_pairs(4, "first")
    assert pairs == [(1, 0), (2, 0), (3, 0)] and use == [(0, 1), (0, 0), (1, 0), (2, 0)]
    pairs, use = frame_pairs(5, "middle")
    assert pairs == [(0, 2), (1, 2), (3, 2), (4, 2)] and use[2] == (1, 1) and use[4] == (3, 0)
    for t, s in itertools.product((2, 3, 8), ("adjacent", "first", "middle")):
        pairs, use = frame_pairs(t, s)
        assert all(pairs[p][side] == f for f, (p, side) in enumerate(use))


def test_prompt_generator_changes_logits_only_when_on():
    on, off = _model("ila", seed=5), _model("ila", seed=5, prompt_generator=False)
    on.eval(), off.eval()
    video = _video()
    assert not torch.allclose(on(video).logits, off(video).logits)
    with torch.no_grad():
        on.prompt.alpha.zero_()
    # Equal up to float rounding (per-video einsum vs one shared matmul).
    torch.testing.assert_close(on(video).logits, off(video).logits, rtol=1e-6, atol=1e-6)
    # Off: the class embeddings are shared by every video; on: each video gets its own.
    with torch.no_grad():
        torch.nn.init.constant_(on.prompt.alpha, 0.1)
        text = on.class_text_embeddings()
        patches = on.video_vit(video).patches
        per_video = on.prompt(text, patches)
    assert text.shape == (3, 128) and per_video.shape == (2, 3, 128)
    assert not torch.allclose(per_video[0], per_video[1])


def test_param_groups_and_freezing():
    model = _model("ila")
    groups = model.param_groups()
    clip_ids = {id(p) for p in model.clip.parameters()}
    assert groups["clip"] and all(id(p) in clip_ids for p in groups["clip"])
    assert not any(p.requires_grad for n, p in model.clip.named_parameters() if not n.startswith("visual."))
    released = _model("ila_released")
    assert released.param_groups()["clip"] == []
    assert all(not p.requires_grad for p in released.clip.visual.parameters())
    unfrozen = _model("ila", freeze_text=False)
    assert len(unfrozen.param_groups()["clip"]) > len(groups["clip"])


@pytest.mark.parametrize("variant", ["divided_st", "ata"])
def test_copies_of_pretrained_weights_train_at_the_backbone_rate(variant):
    """The temporal attention copied from the spatial one joins the CLIP group; its zero-initialised projection is
    new. Every trainable parameter is in exactly one group."""
    model = _model(variant)
    groups = model.param_groups()
    temporal = model.video_vit.operators["0"].temporal
    clip_ids, new_ids = {id(p) for p in groups["clip"]}, {id(p) for p in groups["new"]}
    assert {id(p) for p in temporal.attn.parameters()} <= clip_ids
    assert {id(p) for p in temporal.norm.parameters()} <= clip_ids
    assert {id(p) for p in temporal.fc.parameters()} <= new_ids
    assert not clip_ids & new_ids
    assert clip_ids | new_ids == {id(p) for p in model.parameters() if p.requires_grad}


def test_linear_head_and_blocks_subset():
    model = _model("ila", head="linear", blocks=[2, 3])
    assert sorted(model.video_vit.operators.keys()) == ["2", "3"]
    assert model(_video()).logits.shape == (2, 3)
    with pytest.raises(ValueError, match="model.blocks"):
        _model("ila", blocks=[7])


def test_block_group_places_the_operator_in_the_kth_of_n_groups_on_any_depth():
    """Table 7: "group k of 4" is 3 consecutive blocks of ViT-B/32's 12 and one block of the mini-CLIP's 4."""
    assert sorted(_model("ila", block_group=[2, 4]).video_vit.operators.keys()) == ["1"]
    big = create_model({"variant": "ila", "backbone": "ViT-B-32", "block_group": [2, 4]}, CLASSES, device="meta")
    assert sorted(big.video_vit.operators.keys(), key=int) == ["3", "4", "5"]
    with pytest.raises(ConfigError, match="model.block_group: 3 groups do not divide the backbone's 4 blocks"):
        _model("ila", block_group=[1, 3])
    with pytest.raises(ConfigError, match=r"model.block_group: expected \[k, n\]"):
        _model("ila", block_group=[5, 4])
    with pytest.raises(ConfigError, match="either blocks or block_group"):
        _model("ila", block_group=[1, 4], blocks=[0])


def test_local_weights_load_without_network_and_missing_file_explains(tmp_path):
    torch.manual_seed(11)
    src = build_clip("ILA-mini-32")
    path = tmp_path / "mini.pt"
    torch.save(src.state_dict(), path)
    loaded = build_clip("ILA-mini-32", str(path))
    for (n, a), (_, b) in zip(src.state_dict().items(), loaded.state_dict().items(), strict=True):
        assert torch.equal(a, b), n
    with pytest.raises(MissingWeightsError, match="Fetch them"):
        build_clip("ViT-B-32", str(tmp_path / "nope" / "vit_b_32.pt"))
    with pytest.raises(ValueError, match="unknown backbone"):
        build_clip("ViT-Q-99")


def test_clip_length_must_match():
    with pytest.raises(ValueError, match="built for 4 frames"):
        _model("baseline")(torch.randn(1, 5, 3, 32, 32))


@pytest.mark.parametrize("variant,over", CASES, ids=[f"{v}-{o.get('backbone', 'mini')}-{i}"
                                                      for i, (v, o) in enumerate(CASES)])
def test_forward_backward_under_bf16_autocast(variant, over):
    """The GPU recipe trains under bf16 autocast; CPU autocast runs the same casts, so dtype bugs (e.g. a bf16 matrix
    handed to numpy) show up here without a GPU."""
    model = _model(variant, **over).train()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(_video())
        loss = F.cross_entropy(out.logits.float(), torch.tensor([0, 2])) + out.aux_loss.float()
    assert torch.isfinite(loss)
    loss.backward()
    new = [p for p in model.param_groups()["new"] if p.requires_grad]
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in new), variant


def test_alignment_loss_features_raw_detached_ln1():
    """At initialisation the point head is zero, so the points do not depend on the tokens: the alignment loss's
    gradient reaches the tokens only through the pooled features — and not at all when they are detached."""
    grads, losses = {}, {}
    for mode in ("raw", "detached", "ln_1"):
        model = _model("ila", operator_args={"align_features": mode})
        op: ILAOperator = model.video_vit.operator_at(0)
        assert op.align_features == mode
        assert not any(n.startswith("_block_ln_1") for n, _ in op.named_parameters())  # used, not owned
        x = torch.randn(2 * 4, 17, 128, generator=torch.Generator().manual_seed(0), requires_grad=True)
        out = op(x, 4)
        out.aux_loss.backward()
        grads[mode], losses[mode] = (x.grad if x.grad is not None else torch.zeros_like(x)), out.aux_loss.item()
    assert grads["raw"].abs().sum() > 0 and grads["ln_1"].abs().sum() > 0
    assert grads["detached"].abs().sum() == 0
    assert losses["detached"] == pytest.approx(losses["raw"]) and losses["ln_1"] != pytest.approx(losses["raw"])
    with pytest.raises(ValueError, match="align_features"):
        _model("ila", operator_args={"align_features": "sideways"})


def test_window_attention_is_local_with_swins_shifted_windows():
    """Table 8's window attention replaces the two 3x3 convolutions with two layers of 3x3-window attention, the
    second shifted by one (Swin): a change at one corner of a 9x9 map reaches exactly the 4x4 block the two layers
    span, never the far corner that the shift's roll wraps it next to (Swin's region mask)."""
    from ila.models.operators.ila import WindowAttentionInteraction

    torch.manual_seed(0)
    interaction = WindowAttentionInteraction(8, 16, heads=2).eval()
    x = torch.randn(1, 8, 9, 9)
    moved = x.clone()
    moved[:, :, 0, 0] += 10
    with torch.no_grad():
        reached = (interaction(moved) - interaction(x)).abs().sum(1)[0] > 1e-6
    expected = torch.zeros(9, 9, dtype=torch.bool)
    expected[:4, :4] = True
    assert torch.equal(reached, expected)


def test_rows_of_one_seed_share_the_heads_initialisation_and_the_generator_after_it():
    """Common random numbers: the temporal operator a row adds draws its own numbers, so every row trained with a
    seed starts its linear head from the same weights and leaves the global generator where every other row does
    (without this the head's initialisation shifted with the operator's parameter count)."""
    heads, after = {}, {}
    for variant in ("baseline", "xclip", "ila", "ata", "temporal_shift"):
        model = _model(variant, seed=5, head="linear")
        heads[variant], after[variant] = model.classifier.weight.detach(), torch.rand(4)
    for variant in heads:
        torch.testing.assert_close(heads[variant], heads["baseline"], rtol=0, atol=0, msg=variant)
        torch.testing.assert_close(after[variant], after["baseline"], rtol=0, atol=0, msg=variant)
    assert not torch.equal(_model("baseline", seed=6, head="linear").classifier.weight, heads["baseline"])

"""Table 4's comparison operators: the properties their reference implementations define."""

import pytest
import torch

from ila.models import create_model
from ila.models.operators.comparisons import assignment_trajectories, temporal_shift

CLASSES = ["a", "b", "c"]
MINI = {"backbone": "ILA-mini-32", "num_frames": 4}


def _model(variant, seed=0, **over):
    torch.manual_seed(seed)
    return create_model({**MINI, "variant": variant, **over}, CLASSES).eval()


def test_temporal_shift_moves_exactly_the_right_channels():
    b, t, n, c = 1, 4, 2, 16
    x = torch.arange(b * t * n * c, dtype=torch.float32).reshape(b, t, n, c)
    out = temporal_shift(x)  # fold = 2
    for f in range(t):
        nxt = x[:, f + 1, :, :2] if f + 1 < t else torch.zeros(b, n, 2)
        prev = x[:, f - 1, :, 2:4] if f > 0 else torch.zeros(b, n, 2)
        torch.testing.assert_close(out[:, f, :, :2], nxt)
        torch.testing.assert_close(out[:, f, :, 2:4], prev)
        torch.testing.assert_close(out[:, f, :, 4:], x[:, f, :, 4:])


def test_temporal_shift_leaves_class_tokens_alone():
    model = _model("temporal_shift")
    op = model.video_vit.operator_at(0)
    x = torch.randn(8, 17, 128)
    out = op(x, 4).x
    torch.testing.assert_close(out[:, 0], x[:, 0], rtol=0, atol=0)
    assert not torch.equal(out[:, 1:], x[:, 1:])


def test_assignment_recovers_a_known_permutation_and_is_identity_on_identical_frames():
    g = torch.Generator().manual_seed(0)
    frame0 = torch.randn(1, 1, 9, 32, generator=g)
    perms = [torch.randperm(9, generator=g) for _ in range(3)]
    frames = [frame0[:, 0]]
    for p in perms:
        frames.append(frames[-1][:, p])  # frame t+1 holds frame t's patches in a new order
    traj = assignment_trajectories(torch.stack(frames, dim=1))
    # Track k must follow patch k of frame 0 through every frame.
    for t in range(1, 4):
        followed = torch.stack(frames, 1)[0, t, traj[0, t]]
        torch.testing.assert_close(followed, frame0[0, 0])
    same = frame0.expand(2, 4, 9, 32).contiguous()
    assert torch.equal(assignment_trajectories(same), torch.arange(9).expand(2, 4, 9))


@pytest.mark.parametrize("variant", ["divided_st", "ata"])
def test_temporal_attention_rows_are_the_image_model_at_init(variant):
    base, model = _model("baseline", seed=4), _model(variant, seed=4)
    video = torch.randn(2, 4, 3, 32, 32)
    torch.testing.assert_close(model.video_vit(video).frames, base.video_vit(video).frames, rtol=0, atol=0)


def test_divided_attention_starts_from_the_spatial_weights():
    model = _model("divided_st")
    blk = model.video_vit.visual.transformer.resblocks[1]
    op = model.video_vit.operator_at(1)
    assert torch.equal(op.temporal.attn.in_proj_weight, blk.attn.in_proj_weight)
    assert op.temporal.attn.in_proj_weight is not blk.attn.in_proj_weight
    assert torch.equal(op.temporal.norm.weight, blk.ln_1.weight)


def test_message_tokens_never_reach_the_mlp():
    model = _model("xclip")
    seen = []
    blk = model.video_vit.visual.transformer.resblocks[0]
    handle = blk.mlp.register_forward_hook(lambda m, i, o: seen.append(i[0].shape))
    model(torch.randn(2, 4, 3, 32, 32))
    handle.remove()
    assert seen == [torch.Size([8, 17, 128])]  # 1 CLS + 16 patches; the message token was dropped
    op = model.video_vit.operator_at(0)
    out = op(torch.randn(8, 17, 128), 4)
    assert out.extra.shape == (8, 1, 128)


def test_xclip_messages_mix_frames():
    op = _model("xclip").video_vit.operator_at(0)
    x = torch.randn(8, 17, 128)
    y = x.clone()
    y[3, 0] += 1.0  # change the CLS of the last frame of video 0
    a, b = op(x, 4).extra, op(y, 4).extra
    assert not torch.allclose(a[0], b[0])  # frame 0's message saw frame 3
    torch.testing.assert_close(a[4:], b[4:])  # video 1 untouched


def test_ata_trajectories_match_one_assignment_at_a_time():
    """The thread pool changes how the Hungarian problems are scheduled, never their answers."""
    import numpy as np
    import torch.nn.functional as F
    from scipy.optimize import linear_sum_assignment

    patches = torch.randn(5, 6, 16, 24, generator=torch.Generator().manual_seed(4))
    cost = -(F.normalize(patches[:, :-1], dim=-1) @ F.normalize(patches[:, 1:], dim=-1).transpose(-1, -2))
    ref = np.empty((5, 6, 16), dtype=np.int64)
    ref[:, 0] = np.arange(16)
    for i in range(5):
        for j in range(5):
            rows, cols = linear_sum_assignment(cost[i, j].numpy())
            step = np.empty(16, dtype=np.int64)
            step[rows] = cols
            ref[i, j + 1] = step[ref[i, j]]
    assert (assignment_trajectories(patches).numpy() == ref).all()

"""Implicit Learnable Alignment as the paper describes it (§3), and its Average Pooling ablation.

Per IST block: frames are paired, an :class:`AlignmentModule` predicts one *interactive point* per frame of each
pair, a mask peaked at each point weights that frame's patch tokens (the aligned feature, Eq. 7), the aligned
feature is mean-pooled into one *mutual-information (MI) token* per frame (Eq. 3a) that joins the frame's tokens
for the spatial attention and is dropped before the MLP (Eq. 3b-4), and the alignment loss pulls the two pooled
aligned features of a pair together (Eq. 9-10).

Information crosses frames only through *where* the masks sit: the points are predicted from both frames of a pair.
With the point head zero-initialised (as released) every point starts at the centre, so at initialisation each
frame's MI token is a fixed centre-weighted mean of its own patch tokens: the model processes every frame on its
own, exactly like the image model given one extra self-derived token (the test suite checks this).
"""

from __future__ import annotations

from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn

from ila.models.operators.base import (
    BlockContext,
    OperatorOutput,
    TemporalOperator,
    average_class_tokens,
    split_frames,
)
from ila.operator_options import ILAOptions, NoOptions

# --------------------------------------------------------------------------- masks

# Eq. 6 leaves the distance function and its parameters unspecified; these constants are the release's:
# weight 1 within 0.25 of the point on each axis, then a linear ramp down with slope 1.5 (zero beyond ~0.92).
MASK_FLAT = 0.25
MASK_SLOPE = 1.5
POINT_RANGE = 0.75  # points live in [-0.75, 0.75] of the [-1, 1] grid (tanh x 0.75)


def axis_weights(coord: torch.Tensor, size: int) -> torch.Tensor:
    """Per-axis mask weights of points ``coord [...]`` on a ``size``-point grid over [-1, 1] -> ``[..., size]``.

    ``clamp(1 - slope * (|g - p| - flat), 0, 1)``: 1 within ``flat`` of the point, then the linear ramp, then 0 —
    the release's piecewise function in one expression (the gradient reaches the point through the ramp only)."""
    grid = torch.linspace(-1.0, 1.0, size, device=coord.device, dtype=coord.dtype)
    return (1 - MASK_SLOPE * ((grid - coord.unsqueeze(-1)).abs() - MASK_FLAT)).clamp(0, 1)


def decayed_jitter(base: float, step: int, train: Any) -> float:
    """The point jitter at ``step``: ``base`` until ``train.jitter_decay_start``, then halved every
    ``train.jitter_halve_every`` steps (the release's schedule; off when either is None)."""
    start, every = train.jitter_decay_start, train.jitter_halve_every
    if start is None or every is None or step < start:
        return base
    return base * 0.5 ** (1 + (step - start) // every)


def interactive_masks(points: torch.Tensor, grid: tuple[int, int], jitter: float = 0.0) -> torch.Tensor:
    """Masks ``[N, H, W]`` (float32) for points ``[N, 2]`` given as (x, y) in [-1, 1].

    With ``jitter > 0`` (training) the point is also shifted by the 8 neighbouring offsets times ``jitter`` and the
    nine masks are averaged, as in the release. The nine offsets are every (dx, dy) in {-j, 0, j}^2 and a mask is
    the outer product of its two axis weights, so their mean is the outer product of the per-axis means over the
    three offsets: computed that way, not as nine masks. Always float32: under bf16 autocast the points arrive in
    bf16, whose 8-bit mantissa would put the grid and the ramp's breakpoints visibly off.
    """
    h, w = grid
    points = points.float()
    coords = points.unsqueeze(-1)  # [N, 2, 1]
    if jitter > 0:
        # linspace, not torch.tensor: a kernel rather than a host-to-device copy, so CUDA graphs can capture it.
        coords = coords + torch.linspace(-jitter, jitter, 3, device=points.device)  # [N, 2, 3]
    if h == w:
        weights = axis_weights(coords, w).mean(-2)  # [N, 2, S]: x then y
        mx, my = weights[:, 0], weights[:, 1]
    else:
        mx, my = axis_weights(coords[:, 0], w).mean(-2), axis_weights(coords[:, 1], h).mean(-2)
    return my.unsqueeze(-1) * mx.unsqueeze(-2)


def predict_pair_masks(align: AlignmentModule, first: torch.Tensor, second: torch.Tensor, grid: tuple[int, int],
                       jitter: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Both frames' interactive points and masks for a batch of pairs, in one alignment call and one mask call.

    ``first``, ``second``: patch tokens ``[B, P, HW, D]`` of each pair's two frames. Returns the points
    ``[B, P, 4]`` ((x, y) in the first frame, then in the second), the masks ``[B, P, 2, HW]`` in the tokens' dtype
    (computed in float32) and the interaction features ``[B*P, C, H, W]``.
    """
    b, p, hw, _ = first.shape
    points, interactive = align(to_maps(first, grid).flatten(0, 1), to_maps(second, grid).flatten(0, 1))
    masks = interactive_masks(points.reshape(-1, 2), grid, jitter).reshape(b, p, 2, hw).to(first.dtype)
    return points.reshape(b, p, 4), masks, interactive


# --------------------------------------------------------------------------- alignment module


def _conv_bn_relu(cin: int, cout: int, k: int = 3, groups: int = 1) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, k, padding=k // 2, groups=groups), nn.BatchNorm2d(cout), nn.ReLU()]


def _windows(x: torch.Tensor, ws: int) -> torch.Tensor:
    """``[N, H, W, ...]`` (H, W multiples of ``ws``) -> ``[N * windows, ws * ws, ...]``, windows row-major."""
    n, h, w = x.shape[:3]
    rest = x.shape[3:]
    x = x.reshape(n, h // ws, ws, w // ws, ws, *rest).transpose(2, 3)
    return x.reshape(n * (h // ws) * (w // ws), ws * ws, *rest)


def _unwindows(win: torch.Tensor, n: int, h: int, w: int, ws: int) -> torch.Tensor:
    rest = win.shape[2:]
    x = win.reshape(n, h // ws, w // ws, ws, ws, *rest).transpose(2, 3)
    return x.reshape(n, h, w, *rest)


def window_regions(h: int, w: int, ws: int, shift: int) -> torch.Tensor:
    """Swin's attention regions on the ``h x w`` map padded to multiples of ``ws``, rolled by ``-shift``: a window
    attends only within one region, so the rows and columns the roll wraps around (and the padding) never mix with
    the map's far side. ``[Hp, Wp]`` integer labels."""
    hp, wp = -(-h // ws) * ws, -(-w // ws) * ws
    rows = (torch.arange(hp) < shift).long()
    cols = (torch.arange(wp) < shift).long()
    labels = rows[:, None] * 2 + cols[None]
    labels[h:], labels[:, w:] = 4, 4  # padding: a region of its own
    return labels.roll((-shift, -shift), dims=(0, 1))


class WindowAttentionInteraction(nn.Module):
    """Table 8's alternative to the interaction convolutions (Eq. 5): window self-attention over the paired maps.

    As a replacement of the K400 stack's two 3x3 spatial convolutions: two pre-norm layers of self-attention within
    non-overlapping ``window`` x ``window`` windows (3: the convolutions' kernel), the second one's windows shifted by
    half a window as in Swin (so windows exchange information across the first layer's borders; Swin's region mask
    keeps the wrapped rows and columns apart), each with a 4x MLP, at the convolutions' width (the paired maps
    projected to ``cout``). A window as large as the map (7 on ViT-B/32's 7x7 grid) would be global attention."""

    def __init__(self, cin: int, cout: int = 256, window: int = 3, heads: int = 8, layers: int = 2):
        super().__init__()
        self.window, self.heads = window, heads
        self.proj = nn.Linear(cin, cout)
        self.norms1 = nn.ModuleList(nn.LayerNorm(cout) for _ in range(layers))
        self.attns = nn.ModuleList(nn.MultiheadAttention(cout, heads, batch_first=True) for _ in range(layers))
        self.norms2 = nn.ModuleList(nn.LayerNorm(cout) for _ in range(layers))
        self.mlps = nn.ModuleList(
            nn.Sequential(nn.Linear(cout, 4 * cout), nn.GELU(), nn.Linear(4 * cout, cout)) for _ in range(layers)
        )

    def forward(self, pairs: torch.Tensor) -> torch.Tensor:
        n, _, h, w = pairs.shape
        ws = self.window
        x = self.proj(pairs.permute(0, 2, 3, 1))  # [N, H, W, C]
        x = F.pad(x, (0, 0, 0, (-w) % ws, 0, (-h) % ws))
        hp, wp = x.shape[1:3]
        for i, (ln1, attn, ln2, mlp) in enumerate(zip(self.norms1, self.attns, self.norms2, self.mlps, strict=True)):
            shift = ws // 2 if i % 2 else 0
            labels = _windows(window_regions(h, w, ws, shift).to(x.device)[None], ws)  # [windows, ws*ws]
            blocked = (labels[:, :, None] != labels[:, None, :]).repeat_interleave(self.heads, 0)
            win = _windows(x.roll((-shift, -shift), dims=(1, 2)), ws)
            y = ln1(win)
            mask = blocked.repeat(n, 1, 1)  # [N*windows*heads, L, L], batch-major as MultiheadAttention wants
            win = win + attn(y, y, y, attn_mask=mask, need_weights=False)[0]
            win = win + mlp(ln2(win))
            x = _unwindows(win, n, hp, wp, ws).roll((shift, shift), dims=(1, 2))
        return x[:, :h, :w].permute(0, 3, 1, 2)


class AlignmentModule(nn.Module):
    """Predicts two interactive points from a pair of frame token maps (Eq. 5).

    Interaction stage (``conv_stack``): ``k400`` — depthwise 3x3 on the 2D concatenated channels, pointwise to 256,
    3x3 256->256 (each + BN + ReLU), as released for Kinetics; ``ssv2`` — a full 3x3 2D->256 first stage and two
    extra 3x3 conv + BN + ReLU layers (paper appendix); or window attention (``operator='window_attention'``,
    Table 8). Point head as released: two 3x3 conv + BN + max-pool 2 + ReLU, global max pool, two grouped 1x1
    layers, tanh, x 0.75; its last layer is zero-initialised so both points start at the centre.

    Returns the points ``[N, 4]`` = (x, y) in the first frame, (x, y) in the second, and the interaction features
    ``[N, 256, H, W]`` (the released variant injects them).
    """

    def __init__(
        self,
        width: int,
        operator: Literal["conv2d", "window_attention"] = "conv2d",
        conv_stack: Literal["k400", "ssv2"] = "k400",
        hidden: int = 256,
    ):
        super().__init__()
        cin = 2 * width
        if operator == "window_attention":
            self.interaction: nn.Module = nn.Sequential(WindowAttentionInteraction(cin, hidden), nn.ReLU())
        elif operator != "conv2d":
            raise ValueError(f"alignment operator must be 'conv2d' or 'window_attention', got {operator!r}")
        elif conv_stack == "k400":
            self.interaction = nn.Sequential(
                *_conv_bn_relu(cin, cin, 3, groups=cin), *_conv_bn_relu(cin, hidden, 1), *_conv_bn_relu(hidden, hidden)
            )
        elif conv_stack == "ssv2":
            self.interaction = nn.Sequential(
                *_conv_bn_relu(cin, hidden), *_conv_bn_relu(hidden, hidden),
                *_conv_bn_relu(hidden, hidden), *_conv_bn_relu(hidden, hidden),
            )  # fmt: skip
        else:
            raise ValueError(f"conv_stack must be 'k400' or 'ssv2', got {conv_stack!r}")
        half = hidden // 2
        # ceil_mode keeps tiny grids (the embedded default's 4x4) from pooling to nothing.
        self.point_convs = nn.Sequential(
            nn.Conv2d(hidden, half, 3, padding=1), nn.BatchNorm2d(half), nn.MaxPool2d(2, ceil_mode=True), nn.ReLU(),
            nn.Conv2d(half, half, 3, padding=1), nn.BatchNorm2d(half), nn.MaxPool2d(2, ceil_mode=True), nn.ReLU(),
            nn.AdaptiveMaxPool2d(1),
        )  # fmt: skip
        self.point_head = nn.Sequential(
            nn.Conv1d(half, half // 2, 1, groups=2), nn.ReLU(), nn.Conv1d(half // 2, 4, 1, groups=2), nn.Tanh()
        )
        nn.init.zeros_(self.point_head[2].weight)
        nn.init.zeros_(self.point_head[2].bias)

    def forward(self, first: torch.Tensor, second: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        interactive = self.interaction(torch.cat([first, second], dim=1))
        pooled = self.point_convs(interactive).flatten(2)  # [N, C, 1]
        points = self.point_head(pooled).squeeze(-1) * POINT_RANGE
        return points, interactive


# --------------------------------------------------------------------------- pairing


def frame_pairs(num_frames: int, strategy: str) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    """Pairs ``(i, j)`` to align, and for each frame the ``(pair, side)`` whose aligned feature it uses.

    ``adjacent`` (the paper): pairs (t, t+1); frame t uses its side of pair (t, t+1) (§3.2), and the last frame,
    which has no successor, uses its side of the last pair. ``first`` / ``middle`` (Table 6): every other frame is
    paired with the anchor and uses its own side; the anchor uses its side of the pair with its nearest frame.
    """
    t = num_frames
    if t < 2:
        raise ValueError("ILA needs at least 2 frames")
    if strategy == "adjacent":
        pairs = [(i, i + 1) for i in range(t - 1)]
        use = [(i, 0) for i in range(t - 1)] + [(t - 2, 1)]
        return pairs, use
    if strategy in ("first", "middle"):
        anchor = 0 if strategy == "first" else t // 2
        others = [i for i in range(t) if i != anchor]
        pairs = [(i, anchor) for i in others]
        nearest = min(range(len(others)), key=lambda k: (abs(others[k] - anchor), others[k]))
        use = [(nearest, 1) if f == anchor else (others.index(f), 0) for f in range(t)]
        return pairs, use
    raise ValueError(f"aligning strategy must be 'adjacent', 'first' or 'middle', got {strategy!r}")


def to_maps(patches: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
    """``[..., HW, D]`` -> ``[..., D, H, W]``."""
    *lead, hw, d = patches.shape
    return patches.transpose(-1, -2).reshape(*lead, d, *grid)


def alignment_loss(pooled_a: torch.Tensor, pooled_b: torch.Tensor) -> torch.Tensor:
    """Eq. 9-10 for one block: 1 - cosine similarity of the pooled aligned features, averaged over pairs (in
    float32: under autocast the pooled sums arrive in bf16)."""
    return (1 - F.cosine_similarity(pooled_a.float(), pooled_b.float(), dim=-1)).mean()


# --------------------------------------------------------------------------- operators


class ILAOperator(TemporalOperator):
    """The paper's IST block hook.

    Options (``ila.operator_options.ILAOptions``): ``strategy`` adjacent | first | middle (Table 6); ``operator``
    conv2d | window_attention (Table 8);
    ``mi_token`` pool_concat (the paper) | add (element-wise addition of the aligned feature to the frame's
    patch tokens) | concat_all (all aligned tokens appended, 2x tokens in attention) (Table 9); ``conv_stack``
    k400 | ssv2; ``jitter`` the training-time point jitter (0 disables; the trainer may decay it); ``hidden`` the
    interaction channels (256 as released); ``align_features`` what the alignment loss compares: ``raw`` (the paper:
    the block's input tokens, so the loss also pulls the backbone's features of adjacent frames together),
    ``detached`` (the same tokens without gradient: the loss trains only where the points go) or ``ln_1`` (the
    tokens after the block's own first LayerNorm, open_clip's ``ln_1`` or timm's ``norm1``, so a shrinking or
    shared offset of the features cannot satisfy it). The diagnostics table uses the last two as controls.
    ``video_cls``: TimeSformer's one video-level class token (``average_class_tokens`` after the attention), for
    Table 3's "TimeSformer + ILA": TimeSformer with its temporal attention replaced by this module.
    """

    def __init__(self, ctx: BlockContext, options: ILAOptions):
        super().__init__()
        self.align_features = options.align_features
        # The block's LayerNorm, used (not owned) for the 'ln_1' loss: kept out of this module's parameters.
        object.__setattr__(self, "_block_ln_1", ctx.block.norm1)
        self.grid = ctx.grid
        self.strategy, self.mi_token, self.jitter = options.strategy, options.mi_token, float(options.jitter)
        self.base_jitter = self.jitter
        pairs, use = frame_pairs(ctx.num_frames, options.strategy)
        # Index tensors built once (not per forward); non-persistent, so checkpoints hold only weights.
        for name, values in (("pair_first", [i for i, _ in pairs]), ("pair_second", [j for _, j in pairs]),
                             ("use_pair", [q for q, _ in use]), ("use_side", [s for _, s in use])):
            self.register_buffer(name, torch.tensor(values, dtype=torch.long), persistent=False)
        self.align = AlignmentModule(ctx.width, options.operator, options.conv_stack, options.hidden)
        self.video_cls = options.video_cls

    def after_attention(self, x: torch.Tensor, num_frames: int) -> torch.Tensor:
        return average_class_tokens(x, num_frames) if self.video_cls else x

    def on_train_step(self, step: int, train: Any) -> None:
        self.jitter = decayed_jitter(self.base_jitter, step, train)

    def forward(self, x: torch.Tensor, num_frames: int) -> OperatorOutput:
        cls, patches = split_frames(x, num_frames)
        bt, n, d = x.shape
        _b, hw = bt // num_frames, n - 1
        first, second = patches.index_select(1, self.pair_first), patches.index_select(1, self.pair_second)
        _, masks, _ = predict_pair_masks(self.align, first, second, self.grid, self.jitter if self.training else 0.0)
        # Pooled aligned features (Eq. 7 summed over positions) as one batched product per side: the masked token
        # maps themselves are never materialised unless the MI-token variant needs them.
        pooled_a = torch.einsum("bph,bphd->bpd", masks[:, :, 0], first)
        pooled_b = torch.einsum("bph,bphd->bpd", masks[:, :, 1], second)
        loss = alignment_loss(*self._loss_features(masks, first, second, pooled_a, pooled_b))
        if self.mi_token == "pool_concat":
            # Eq. 3a: each frame's MI token is the mean over positions of its side of its pair.
            mi = torch.stack([pooled_a, pooled_b], dim=2)[:, self.use_pair, self.use_side] / hw  # [B, T, D]
            return OperatorOutput(x, extra=mi.reshape(bt, 1, d), aux_loss=loss)
        # The frame's own aligned tokens: its side's mask on its own patches (pairs[use[f]][side] == f).
        per_frame = masks[:, self.use_pair, self.use_side].unsqueeze(-1) * patches  # [B, T, HW, D]
        if self.mi_token == "add":
            patches = patches + per_frame
            return OperatorOutput(torch.cat([cls, patches], dim=2).reshape(bt, n, d), aux_loss=loss)
        return OperatorOutput(x, extra=per_frame.reshape(bt, hw, d), aux_loss=loss)

    def _loss_features(self, masks, first, second, pooled_a, pooled_b) -> tuple[torch.Tensor, torch.Tensor]:
        """The two pooled aligned features the alignment loss compares (the release pools with a sum; cosine
        ignores the scale)."""
        if self.align_features == "raw":
            return pooled_a, pooled_b
        if self.align_features == "detached":
            first, second = first.detach(), second.detach()
        else:
            first, second = self._block_ln_1(first), self._block_ln_1(second)
        return (torch.einsum("bph,bphd->bpd", masks[:, :, 0], first),
                torch.einsum("bph,bphd->bpd", masks[:, :, 1], second))


class AveragePoolOperator(TemporalOperator):
    """Table 4's "CLIP + Average Pooling": the MI token without alignment, the plain mean of the frame's patches."""

    def __init__(self, ctx: BlockContext, options: NoOptions):
        super().__init__()

    def forward(self, x: torch.Tensor, num_frames: int) -> OperatorOutput:
        return OperatorOutput(x, extra=x[:, 1:].mean(1, keepdim=True))


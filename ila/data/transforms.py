"""Clip transforms: every random choice is drawn once per clip and applied to all of its frames.

Clips are uint8 tensors ``[T, 3, H, W]``; the output is float ``[T, 3, S, S]`` normalised with CLIP's mean and
std. Randomness comes only from the ``torch.Generator`` passed in, so a clip's augmentation is a function of
the generator's seed (the dataset derives it from seed, epoch and index: resumable and worker-count independent).
The pixel operations are torchvision's.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torchvision.transforms.v2 import functional as TF

from ila.config import AugmentConfig

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)

BRIGHTNESS, CONTRAST, SATURATION, HUE = 0.4, 0.4, 0.4, 0.1


def _uniform(g: torch.Generator, lo: float, hi: float) -> float:
    return lo + (hi - lo) * torch.rand(1, generator=g, dtype=torch.float64).item()


def _randint(g: torch.Generator, n: int) -> int:
    return int(torch.randint(n, (1,), generator=g).item())


def _bernoulli(g: torch.Generator, p: float) -> bool:
    return torch.rand(1, generator=g, dtype=torch.float64).item() < p


def resize_short(clip: torch.Tensor, size: int) -> torch.Tensor:
    h, w = clip.shape[-2:]
    if min(h, w) == size:
        return clip
    return TF.resize(clip, [size], antialias=True)


def resized_short_size(height: int, width: int, size: int) -> tuple[int, int]:
    """The frame size :func:`resize_short` gives: the short side ``size``, the long side scaled and truncated (as
    torchvision's ``resize`` with one size does)."""
    if min(height, width) == size:
        return height, width
    if height <= width:
        return size, int(size * width / height)
    return int(size * height / width), size


def multiscale_crop_box(
    h: int, w: int, scales: tuple[float, ...], g: torch.Generator, max_aspect_gap: int = 1
) -> tuple[int, int, int, int]:
    """TSN's multi-scale crop: a (height, width) pair from the scaled sizes, at one of 13 fixed positions.

    Returns ``(top, left, height, width)``.
    """
    base = min(h, w)
    sizes = [max(1, int(base * s)) for s in scales]
    pairs = [(ch, cw) for i, ch in enumerate(sizes) for j, cw in enumerate(sizes) if abs(i - j) <= max_aspect_gap]
    ch, cw = pairs[_randint(g, len(pairs))]
    hs, ws = (h - ch) // 4, (w - cw) // 4
    grid = [(0, 0), (0, 4), (4, 0), (4, 4), (2, 2),  # corners and centre
            (2, 0), (2, 4), (4, 2), (0, 2), (1, 1), (1, 3), (3, 1), (3, 3)]  # fmt: skip
    gy, gx = grid[_randint(g, len(grid))]
    return gy * hs, gx * ws, ch, cw


COLOR_OPS = ("brightness", "contrast", "saturation", "hue")
_ADJUST = {"brightness": TF.adjust_brightness, "contrast": TF.adjust_contrast,
           "saturation": TF.adjust_saturation, "hue": TF.adjust_hue}  # fmt: skip


def draw_color_jitter(g: torch.Generator) -> tuple[dict[str, float], list[str]]:
    """Brightness, contrast, saturation and hue factors, and the random order to apply them in."""
    factors = {
        "brightness": _uniform(g, 1 - BRIGHTNESS, 1 + BRIGHTNESS),
        "contrast": _uniform(g, 1 - CONTRAST, 1 + CONTRAST),
        "saturation": _uniform(g, 1 - SATURATION, 1 + SATURATION),
        "hue": _uniform(g, -HUE, HUE),
    }
    return factors, [COLOR_OPS[i] for i in torch.randperm(4, generator=g).tolist()]


# --------------------------------------------------------------------------- photometric part, apart


# A clip's photometric parameters as one row of floats, so they batch with default_collate and travel with the clip:
# [jitter on, brightness, contrast, saturation, hue, order of the four ops (4 indices into COLOR_OPS), grayscale on].
PHOTOMETRIC_SIZE = 10


def draw_photometric(g: torch.Generator, augment: AugmentConfig) -> torch.Tensor:
    """Draw a clip's colour jitter and grayscale choices (in the order TrainTransform draws them)."""
    row = torch.zeros(PHOTOMETRIC_SIZE, dtype=torch.float64)
    if _bernoulli(g, augment.color_jitter_p):
        factors, order = draw_color_jitter(g)
        row[0] = 1
        row[1:5] = torch.tensor([factors[k] for k in COLOR_OPS], dtype=torch.float64)
        row[5:9] = torch.tensor([COLOR_OPS.index(k) for k in order], dtype=torch.float64)
    row[9] = float(_bernoulli(g, augment.grayscale_p))
    return row


def apply_photometric(clip: torch.Tensor, row: torch.Tensor) -> torch.Tensor:
    """One uint8 clip ``[T, 3, S, S]`` (any device) with its drawn parameters -> normalised float clip."""
    params = row.tolist()
    if params[0]:
        for k in params[5:9]:
            name = COLOR_OPS[int(k)]
            clip = _ADJUST[name](clip, params[1 + COLOR_OPS.index(name)])
    if params[9]:
        clip = TF.rgb_to_grayscale(clip, num_output_channels=3)
    return normalize(clip)


def apply_photometric_batch(video: torch.Tensor, params: torch.Tensor,
                            clips_per_pass: int | None = None) -> torch.Tensor:
    """The photometric half of training augmentation on a whole batch where it lives (e.g. the GPU): uint8
    ``[B, T, 3, S, S]`` and ``[B, PHOTOMETRIC_SIZE]`` parameters -> normalised float ``[B, T, 3, S, S]``.

    Batched, with no loop over clips: at each of the four positions of the jitter order, each op runs once on the
    clips that have it there, with their own factors. The arithmetic is torchvision's (its uint8 rounding after
    every op, its grayscale weights and HSV conversion, its float32 factors) with per-clip factors: on the CPU the
    clips equal the per-clip path's (:func:`apply_photometric`) bit for bit (tests/test_transforms.py). The
    parameters were drawn in the loader from (seed, epoch, index), so the clips do not depend on the workers.

    ``clips_per_pass``: clips per pass (default: the whole batch on an accelerator; 4 on the CPU, where a whole
    batch of 224-pixel clips overflows the caches and ran 40-70% slower per clip than passes of 4)."""
    per_pass = clips_per_pass or (4 if video.device.type == "cpu" else len(video))
    if len(video) > per_pass:
        return torch.cat([_photometric_pass(video[i : i + per_pass], params[i : i + per_pass])
                          for i in range(0, len(video), per_pass)])
    return _photometric_pass(video, params)


def _photometric_pass(video: torch.Tensor, params: torch.Tensor) -> torch.Tensor:
    params = params.detach().to("cpu", torch.float64)
    device = video.device
    out = video
    jitter = torch.nonzero(params[:, 0] > 0).flatten()
    if len(jitter):
        clips, rows = video.index_select(0, jitter.to(device)), params[jitter]
        for position in range(4):
            op_at = rows[:, 5 + position].long()
            for k, name in enumerate(COLOR_OPS):
                sel = torch.nonzero(op_at == k).flatten()
                if len(sel):
                    factor = rows[sel, 1 + k].to(device)
                    sel = sel.to(device)
                    clips.index_copy_(0, sel, _BATCHED[name](clips.index_select(0, sel), factor))
        out = video.clone().index_copy_(0, jitter.to(device), clips)
    gray = torch.nonzero(params[:, 9] > 0).flatten().to(device)
    if len(gray):
        out = out.clone() if out is video else out
        out.index_copy_(0, gray, TF.rgb_to_grayscale(out.index_select(0, gray), num_output_channels=3))
    return normalize(out)


def _per_clip(factor: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return factor.to(torch.float32).reshape(-1, *([1] * (like.ndim - 1)))


# The factors arrive as float64 and are rounded to float32 where torchvision rounds its Python-float factor; the
# blend's second weight is formed in float64 first (torchvision's ``alpha=1.0 - ratio``), and addcmul_ rounds like
# its ``add_(other, alpha=...)``.
def _blend_uint8(image: torch.Tensor, other: torch.Tensor, ratio: torch.Tensor) -> torch.Tensor:
    out = image.float().mul_(_per_clip(ratio, image)).addcmul_(other, _per_clip(1.0 - ratio, image))
    return out.clamp_(0, 255).to(torch.uint8)


def _batched_brightness(clips: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    return clips.float().mul_(_per_clip(factor, clips)).clamp_(0, 255).to(torch.uint8)


def _batched_contrast(clips: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    # Each frame blends with the mean of its own (floored) grayscale, as torchvision does per image.
    mean = TF.rgb_to_grayscale(clips, num_output_channels=1).float().mean(dim=(-3, -2, -1), keepdim=True)
    return _blend_uint8(clips, mean, factor)


def _batched_saturation(clips: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    return _blend_uint8(clips, TF.rgb_to_grayscale(clips, num_output_channels=1).float(), factor)


def _batched_hue(clips: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    # torchvision's HSV round trip; its hue shift is the only step that takes the factor, and it broadcasts.
    from torchvision.transforms.v2.functional._color import _hsv_to_rgb, _rgb_to_hsv

    hsv = _rgb_to_hsv(TF.to_dtype(clips, torch.float32, scale=True))
    h, s, v = hsv.unbind(dim=-3)
    h = h.add_(_per_clip(factor, h)).remainder_(1.0)
    return TF.to_dtype(_hsv_to_rgb(torch.stack((h, s, v), dim=-3)), torch.uint8, scale=True)


_BATCHED = {"brightness": _batched_brightness, "contrast": _batched_contrast,
            "saturation": _batched_saturation, "hue": _batched_hue}  # fmt: skip


def normalize(clip: torch.Tensor) -> torch.Tensor:
    return TF.normalize(clip.float().div_(255.0), CLIP_MEAN, CLIP_STD)


@dataclass
class TrainTransform:
    input_size: int
    short_side: int
    augment: AugmentConfig
    flip: bool

    def __call__(self, clip: torch.Tensor, g: torch.Generator) -> tuple[torch.Tensor, bool]:
        """Returns the augmented clip and whether it was flipped horizontally (labels may need remapping)."""
        clip, flipped = self.geometry(clip, g)
        return apply_photometric(clip, draw_photometric(g, self.augment)), flipped

    def geometry(self, clip: torch.Tensor, g: torch.Generator) -> tuple[torch.Tensor, bool]:
        """Resize, multi-scale crop and flip: uint8 ``[T, 3, S, S]`` and whether it was flipped. The photometric
        part is drawn next from the same generator (``draw_photometric``), so splitting the two changes nothing."""
        draw = self.draw_geometry(*clip.shape[-2:], g)
        return self.apply_geometry(clip, draw), bool(draw[6])

    def draw_geometry(self, height: int, width: int, g: torch.Generator) -> torch.Tensor:
        """The geometric choices for frames of ``height x width``, drawn as :meth:`geometry` draws them, as one row
        ``[resized height, resized width, top, left, crop height, crop width, flipped]``: what a loader worker sends
        when the frames are decoded elsewhere (``data.decode_on: device``)."""
        h, w = resized_short_size(height, width, self.short_side)
        top, left, ch, cw = multiscale_crop_box(h, w, self.augment.multiscale_scales, g)
        flipped = self.flip and _bernoulli(g, self.augment.flip_p)
        return torch.tensor([h, w, top, left, ch, cw, int(flipped)], dtype=torch.int64)

    def apply_geometry(self, clip: torch.Tensor, draw: torch.Tensor) -> torch.Tensor:
        """Frames ``[T, 3, H, W]`` (any device) with drawn choices -> uint8 ``[T, 3, S, S]``."""
        h, w, top, left, ch, cw, flipped = (int(v) for v in draw)
        clip = resize_short(clip, self.short_side)
        if tuple(clip.shape[-2:]) != (h, w):  # two decoders that disagree on a video's frame size
            raise ValueError(f"frames resized to {tuple(clip.shape[-2:])}, but the crop was drawn for {(h, w)}")
        clip = TF.resized_crop(clip, top, left, ch, cw, [self.input_size, self.input_size], antialias=True)
        return TF.horizontal_flip(clip) if flipped else clip


@dataclass
class EvalTransform:
    """Resize the short side, then ``num_crops`` crops (1: centre; 3: both ends and centre of the long side)."""

    input_size: int
    short_side: int
    num_crops: int = 1

    def __call__(self, clip: torch.Tensor) -> torch.Tensor:
        """``[T, 3, H, W]`` uint8 -> ``[num_crops, T, 3, S, S]`` normalised."""
        clip = resize_short(clip, self.short_side)
        h, w = clip.shape[-2:]
        s = self.input_size
        if self.num_crops == 1:
            boxes = [((h - s) // 2, (w - s) // 2)]
        elif self.num_crops == 3:
            if h > w:
                boxes = [(0, (w - s) // 2), ((h - s) // 2, (w - s) // 2), (h - s, (w - s) // 2)]
            else:
                boxes = [((h - s) // 2, 0), ((h - s) // 2, (w - s) // 2), ((h - s) // 2, w - s)]
        else:
            raise ValueError(f"num_crops must be 1 or 3, got {self.num_crops}")
        return torch.stack([normalize(TF.crop(clip, top, left, s, s)) for top, left in boxes])

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


def apply_photometric_batch(video: torch.Tensor, params: torch.Tensor) -> torch.Tensor:
    """The photometric half of training augmentation on a whole batch where it lives (e.g. the GPU): uint8
    ``[B, T, 3, S, S]`` and ``[B, PHOTOMETRIC_SIZE]`` parameters -> normalised float ``[B, T, 3, S, S]``.

    Each clip goes through the same torchvision functions as on the loader's CPU, with the parameters drawn there
    from (seed, epoch, index): identical results on the same device, and independent of the number of workers."""
    return torch.stack([apply_photometric(clip, row) for clip, row in zip(video, params.cpu())])


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
        clip = resize_short(clip, self.short_side)
        top, left, ch, cw = multiscale_crop_box(*clip.shape[-2:], self.augment.multiscale_scales, g)
        clip = TF.resized_crop(clip, top, left, ch, cw, [self.input_size, self.input_size], antialias=True)
        flipped = self.flip and _bernoulli(g, self.augment.flip_p)
        if flipped:
            clip = TF.horizontal_flip(clip)
        return clip, flipped


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

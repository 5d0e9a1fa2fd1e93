"""Contrastive pretraining of the embedded default's mini-CLIP on synthetic image-caption pairs.

No CLIP weights can be downloaded for the embedded default, and the paper's whole point is *adapting a pretrained
image-text model*. So the suite pretrains a small open_clip model (image and text towers, ``ILA-mini-32``) with
CLIP's own loss on single frames drawn by the benchmark's renderer, captioned with what is in them: size, colour,
shape and position ("a big red ring at the top left"). The paper profiles use open_clip's pretrained weights
instead; after this step both go through the same code.
"""

from __future__ import annotations

import json
import logging
import math
import time
from pathlib import Path

import numpy as np
import torch
from open_clip.loss import ClipLoss
from tqdm import tqdm

from ila.data.synth import STATIC_SHAPES, Canvas, _make_scene, shape_mask
from ila.data.transforms import normalize
from ila.engine.checkpoint import save_atomic
from ila.engine.distributed import job_threads
from ila.models.backbone import build_clip, tokenizer_for

log = logging.getLogger(__name__)

COLOURS = {
    "red": (0.92, 0.15, 0.12), "orange": (0.98, 0.55, 0.1), "yellow": (0.95, 0.9, 0.15),
    "green": (0.2, 0.85, 0.25), "cyan": (0.2, 0.85, 0.9), "blue": (0.2, 0.35, 0.95),
    "purple": (0.6, 0.25, 0.9), "pink": (0.95, 0.45, 0.75), "white": (0.95, 0.95, 0.95),
}  # fmt: skip
SHAPES = [(kind, name.replace("a big ", "").replace("a ", "")) for kind, name in STATIC_SHAPES] + [("hand", "hand")]


def sample_pair(rng: np.random.Generator, size: int = 32, supersample: int = 4) -> tuple[np.ndarray, str]:
    """One rendered image ``[H, W, 3]`` uint8 and its caption."""
    canvas = Canvas(size, supersample)
    scene = _make_scene(canvas, rng, 1)
    img = scene.background.copy()
    for start, _, colour, r in scene.distractors:
        canvas.paint(img, shape_mask("disc", canvas.x - start[0], canvas.y - start[1], r), colour)
    kind, shape_name = SHAPES[rng.integers(len(SHAPES))]
    colour_name = list(COLOURS)[rng.integers(len(COLOURS))]
    colour = np.clip(np.array(COLOURS[colour_name]) + rng.normal(0, 0.04, 3), 0, 1)
    big = bool(rng.random() < 0.5)
    r = rng.uniform(5.5, 8.0) if big else rng.uniform(2.5, 4.0)
    if kind == "hand":
        r += 2.0
    pos = rng.uniform(r + 1, size - r - 1, 2)
    canvas.paint(img, shape_mask(kind, canvas.x - pos[0], canvas.y - pos[1], r, rng.uniform(0, 2 * math.pi)), colour)
    third = size / 3
    vertical = ("top", "middle", "bottom")[min(2, int(pos[1] // third))]
    horizontal = ("left", "center", "right")[min(2, int(pos[0] // third))]
    where = "center" if (vertical, horizontal) == ("middle", "center") else f"{vertical} {horizontal}"
    caption = f"a {'big' if big else 'small'} {colour_name} {shape_name} at the {where}"
    return canvas.downsample(img), caption


def make_pool(n: int, seed: int, size: int = 32) -> tuple[torch.Tensor, list[str]]:
    rng = np.random.default_rng(seed)
    images, captions = [], []
    for _ in range(n):
        img, cap = sample_pair(rng, size)
        images.append(img)
        captions.append(cap)
    return torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2), captions


def pretrain_clip(
    out: str | Path,
    backbone: str = "ILA-mini-32",
    steps: int = 1500,
    batch_size: int = 256,
    pool_size: int = 16384,
    lr: float = 1e-3,
    seed: int = 0,
    threads: int | None = None,
    progress: bool = True,
) -> dict:
    """Pretrain and save the model's state dict to ``out`` (atomically); returns a summary with held-out
    image-to-text retrieval accuracy (top-1 within batches of 64)."""
    torch.set_num_threads(job_threads(threads))
    torch.manual_seed(seed)
    start = time.perf_counter()
    model = build_clip(backbone)
    size = model.visual.image_size[0]
    tokenizer = tokenizer_for(backbone)
    images, captions = make_pool(pool_size, seed, size)
    tokens = tokenizer(captions)
    held_images, held_captions = make_pool(1024, seed + 1, size)
    held_tokens = tokenizer(held_captions)
    log.info("rendered %d training and 1024 held-out pairs in %.1f s", pool_size, time.perf_counter() - start)
    loss_fn = ClipLoss()
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.1, betas=(0.9, 0.98), eps=1e-6)
    warmup = max(1, steps // 20)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: (s + 1) / warmup if s < warmup
        else 0.5 * (1 + math.cos(math.pi * (s - warmup) / max(1, steps - warmup)))
    )
    g = torch.Generator().manual_seed(seed)
    model.train()
    losses = []
    for _ in tqdm(range(steps), desc="pretrain mini-CLIP", unit="step", disable=None if progress else True):
        idx = torch.randint(pool_size, (batch_size,), generator=g)
        img = normalize(images[idx])
        feats_i = model.encode_image(img, normalize=True)
        feats_t = model.encode_text(tokens[idx], normalize=True)
        loss = loss_fn(feats_i, feats_t, model.logit_scale.exp())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        with torch.no_grad():
            model.logit_scale.clamp_(0, math.log(100))
        losses.append(loss.item())
    model.eval()
    hits = 0
    with torch.no_grad():
        for i in range(0, 1024, 64):
            fi = model.encode_image(normalize(held_images[i : i + 64]), normalize=True)
            ft = model.encode_text(held_tokens[i : i + 64], normalize=True)
            hits += int((fi @ ft.T).argmax(1).eq(torch.arange(len(fi))).sum())
    summary = {
        "backbone": backbone,
        "steps": steps,
        "final_loss": float(np.mean(losses[-50:])),
        "heldout_image_to_text_top1_in_64": hits / 1024,
        "seconds": time.perf_counter() - start,
    }
    out = Path(out)
    save_atomic(model.state_dict(), out)
    out.with_suffix(".json").write_text(json.dumps(summary, indent=2) + "\n")
    log.info("mini-CLIP pretrained: %s", summary)
    return summary


__all__ = ["pretrain_clip", "sample_pair", "make_pool"]

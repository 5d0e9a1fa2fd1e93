"""Pretraining of the embedded default's mini-CLIPs on synthetic image-caption pairs: contrastive, or supervised.

No CLIP weights can be downloaded for the embedded default, and the paper's whole point is *adapting a pretrained
image-text model*. So the suite pretrains a small open_clip model (image and text towers, ``ILA-mini-32``) with
CLIP's own loss on single frames drawn by the benchmark's renderer, captioned with what is in them: size, colour,
shape and position ("a big red ring at the top left"). The paper profiles use open_clip's pretrained weights
instead; after this step both go through the same code.

``objective='supervised'`` pretrains the image tower alone with one-hot labels instead, as an ImageNet-21k ViT is
(Table 10's question: does ILA need a language-image backbone?): a caption's size, colour, shape and position, the
information it carries, are four one-hot labels, each predicted by a linear classifier over the image embedding with
cross-entropy (the classifiers are dropped after); the text tower stays at its initialisation (a linear-head video
model never runs it).
"""

from __future__ import annotations

import json
import logging
import math
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from open_clip.loss import ClipLoss

from ila.config import PretrainConfig
from ila.data.synth import STATIC_SHAPES, Canvas, _make_scene, shape_mask
from ila.data.transforms import normalize
from ila.engine.checkpoint import save_atomic
from ila.engine.distributed import job_threads
from ila.models.backbone import build_clip, tokenizer_for
from ila.progress import progress_bar

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


PLACES = ["top left", "top center", "top right", "middle left", "center", "middle right", "bottom left",
          "bottom center", "bottom right"]  # fmt: skip


def caption_labels(caption: str) -> tuple[int, int, int, int]:
    """A caption of :func:`sample_pair` as its four one-hot labels: (size, colour, shape, place) indices."""
    head, place = caption.split(" at the ")
    _, size, colour, shape = head.split(" ", 3)
    return (("big", "small").index(size), list(COLOURS).index(colour), [n for _, n in SHAPES].index(shape),
            PLACES.index(place))


LABEL_SIZES = (2, len(COLOURS), len(SHAPES), len(PLACES))


class _Objective:
    """The loss a pretraining step minimises and the held-out score it is judged by."""

    def __init__(self, kind: str, model: torch.nn.Module, tokenizer, captions: list[str], held: list[str]):
        self.kind = kind
        if kind == "contrastive":
            self.loss_fn, self.targets, self.held_targets = ClipLoss(), tokenizer(captions), tokenizer(held)
            self.classifier = None
        elif kind == "supervised":
            self.targets = torch.tensor([caption_labels(c) for c in captions])  # [N, 4]
            self.held_targets = torch.tensor([caption_labels(c) for c in held])
            self.classifier = torch.nn.Linear(model.visual.output_dim, sum(LABEL_SIZES))
        else:
            raise ValueError(f"objective: expected 'contrastive' or 'supervised', got {kind!r}")
        self.model = model

    def parameters(self) -> list[torch.nn.Parameter]:
        if self.classifier is None:
            return list(self.model.parameters())
        return [*self.model.visual.parameters(), *self.classifier.parameters()]

    def loss(self, images: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
        if self.classifier is None:
            feats_i = self.model.encode_image(images, normalize=True)
            feats_t = self.model.encode_text(self.targets[idx], normalize=True)
            return self.loss_fn(feats_i, feats_t, self.model.logit_scale.exp())
        logits = self.classifier(self.model.encode_image(images)).split(LABEL_SIZES, dim=1)
        return sum(F.cross_entropy(z, t) for z, t in zip(logits, self.targets[idx].T, strict=True))

    @torch.no_grad()
    def heldout_top1(self, images: torch.Tensor) -> tuple[str, float]:
        """Contrastive: image-to-text retrieval top-1 within batches of 64; supervised: all four labels right."""
        hits = 0
        for i in range(0, len(images), 64):
            batch, targets = normalize(images[i : i + 64]), self.held_targets[i : i + 64]
            if self.classifier is None:
                fi = self.model.encode_image(batch, normalize=True)
                ft = self.model.encode_text(targets, normalize=True)
                hits += int((fi @ ft.T).argmax(1).eq(torch.arange(len(fi))).sum())
            else:  # all four labels right
                logits = self.classifier(self.model.encode_image(batch)).split(LABEL_SIZES, dim=1)
                right = torch.stack([z.argmax(1) for z in logits], 1).eq(targets).all(1)
                hits += int(right.sum())
        name = "heldout_image_to_text_top1_in_64" if self.classifier is None else "heldout_all_labels_top1"
        return name, hits / len(images)


def pretrain_clip(
    out: str | Path,
    backbone: str = "ILA-mini-32",
    steps: int = PretrainConfig.steps,
    batch_size: int = PretrainConfig.batch_size,
    pool_size: int = PretrainConfig.pool_size,
    lr: float = PretrainConfig.lr,
    seed: int = PretrainConfig.seed,
    threads: int | None = None,
    progress: bool = True,
    objective: str = "contrastive",
) -> dict:
    """Pretrain and save the model's state dict to ``out`` (atomically); returns a summary with the held-out score
    (:meth:`_Objective.heldout_top1`)."""
    torch.set_num_threads(job_threads(threads))
    torch.manual_seed(seed)
    start = time.perf_counter()
    model = build_clip(backbone)
    size = model.visual.image_size[0]
    images, captions = make_pool(pool_size, seed, size)
    held_images, held_captions = make_pool(1024, seed + 1, size)
    task = _Objective(objective, model, tokenizer_for(backbone), captions, held_captions)
    log.info("rendered %d training and 1024 held-out pairs in %.1f s", pool_size, time.perf_counter() - start)
    opt = torch.optim.AdamW(task.parameters(), lr=lr, weight_decay=0.1, betas=(0.9, 0.98), eps=1e-6)
    warmup = max(1, steps // 20)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: (s + 1) / warmup if s < warmup
        else 0.5 * (1 + math.cos(math.pi * (s - warmup) / max(1, steps - warmup)))
    )
    g = torch.Generator().manual_seed(seed)
    model.train()
    losses = []
    for _ in progress_bar(range(steps), desc=f"pretrain mini-CLIP ({objective})", unit="step",
                  disable=None if progress else True):
        idx = torch.randint(pool_size, (batch_size,), generator=g)
        loss = task.loss(normalize(images[idx]), idx)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        with torch.no_grad():
            model.logit_scale.clamp_(0, math.log(100))
        losses.append(loss.item())
    model.eval()
    score_name, score = task.heldout_top1(held_images)
    summary = {"backbone": backbone, "objective": objective, "steps": steps,
               "final_loss": float(np.mean(losses[-50:])), score_name: score,
               "seconds": time.perf_counter() - start}  # fmt: skip
    out = Path(out)
    save_atomic(model.state_dict(), out)
    out.with_suffix(".json").write_text(json.dumps(summary, indent=2) + "\n")
    log.info("mini-CLIP pretrained: %s", summary)
    return summary


__all__ = ["pretrain_clip", "sample_pair", "make_pool", "caption_labels"]

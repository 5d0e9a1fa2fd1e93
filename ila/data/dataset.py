"""The file-based video dataset and the DataLoader builder every stage uses.

Unreadable videos never stop a run on their own: a missing or zero-byte file is dropped when the dataset is
built, a file that fails to decode is returned as a :class:`BadSample` and dropped by :func:`collate_clips`;
each is logged once by name and counted. Loading fails only when the bad fraction passes
``data.max_bad_fraction`` (default 1%), with the files listed.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Sampler, default_collate

from ila.config import ConfigError, DataConfig
from ila.data.annotations import ClassInfo, VideoRecord, first_per_class, read_labels, read_video_list
from ila.data.readers import FrameCache, VideoDecodeError, open_video, resolve_backend
from ila.data.sampling import eval_indices, train_indices
from ila.data.transforms import EvalTransform, TrainTransform, draw_photometric
from ila.errors import IlaError
from ila.paths import resolve_root

log = logging.getLogger(__name__)


class BadDataError(IlaError, RuntimeError):
    """Too many listed videos are missing or unreadable."""

    kind = "data error"


@dataclass(frozen=True)
class BadSample:
    index: int
    path: str
    reason: str


class ClipKey(NamedTuple):
    """What a training item is drawn from: the epoch travels with the index from the sampler, so one set of loader
    workers serves the whole run and a clip stays a function of (seed, epoch, index)."""

    epoch: int
    batch: int  # position of its batch in the epoch (what a checkpoint resumes after)
    index: int


def clip_seed(seed: int, epoch: int, index: int) -> int:
    """Seed of one training clip's randomness: independent of worker count, so runs resume exactly."""
    return int(np.random.SeedSequence([seed, epoch, index]).generate_state(1, dtype=np.uint64)[0] >> 1)


class VideoDataset(Dataset):
    """Videos listed in a Kinetics-format file; ``train=True`` gives augmented single views, else test views.

    Items are dicts ``{"video", "label", "index"}``: ``video`` is ``[T, 3, S, S]`` for training and
    ``[V, T, 3, S, S]`` for testing, with ``V = test_clips * test_crops`` views in clip-major order. With
    ``data.augment_on: device`` a training item's video is still uint8 and carries its drawn ``"photometric"``
    parameters; with ``data.decode_on: device`` it has no video, only ``"frame_indices"``, ``"geometry"`` and
    ``"photometric"``. :class:`ila.data.device.BatchOnDevice` finishes either on the training device.
    """

    def __init__(self, cfg: DataConfig, split: str, train: bool | None = None, seed: int = 0):
        if split not in ("train", "val"):
            raise ValueError(f"split must be 'train' or 'val', got {split!r}")
        self.cfg = cfg
        self.split = split
        self.train = (split == "train") if train is None else train
        self.seed = seed
        self.epoch = 0
        self.backend = resolve_backend(cfg.reader)
        root = resolve_root(cfg.root)
        self.classes: list[ClassInfo] = read_labels(root / cfg.labels)
        listed = read_video_list(root / (cfg.train_list if split == "train" else cfg.val_list), len(self.classes), root)
        self.flip_map = self._flip_map()
        self.num_listed = len(listed)
        self.bad: dict[str, str] = {}
        self.records: list[VideoRecord] = []
        for rec in listed:
            reason = _missing_or_empty(rec.path)
            if reason:
                self._note_bad(str(rec.path), reason)
            else:
                self.records.append(rec)
        self._check_bad_fraction()
        per_class = cfg.train_per_class if split == "train" else cfg.val_per_class
        if per_class is not None:
            # The first videos of each class that are on disk, taken after the whole list was checked, so that a
            # subset (a rehearsal's) fails, or not, on missing files as the whole run would; from here on the
            # subset is the list (a video that later fails to decode counts against it).
            self.records = first_per_class(self.records, per_class)
            self.num_listed, self.bad = len(self.records), {}
        # Training clips decoded by the training process (data.decode_on: device): the workers only read headers.
        self.decode_elsewhere = self.train and cfg.decode_on == "device"
        if self.decode_elsewhere:
            resolve_backend("torchcodec")  # the training process decodes with it: name the extra now if missing
        # Only training draws a video more than once; evaluation reads each once.
        cache = self.train and cfg.frame_cache_mb and not self.decode_elsewhere
        self.frame_cache = FrameCache(cfg.frame_cache_mb, self.backend) if cache else None
        if self.train:
            self.transform = TrainTransform(cfg.crop_size, cfg.short_side, cfg.augment, flip=cfg.hflip != "off")
        else:
            self.eval_transform = EvalTransform(cfg.crop_size, cfg.short_side, cfg.test_crops)

    # ------------------------------------------------------------------ labels

    def _flip_map(self) -> list[int] | None:
        mirrored = [c for c in self.classes if c.flip_to is not None and c.flip_to != c.id]
        if self.cfg.hflip == "on" and mirrored:
            names = ", ".join(f"{c.name!r}->{self.classes[c.flip_to].name!r}" for c in mirrored[:3])
            raise ConfigError(
                f"data.hflip: 'on' would flip direction-labelled classes without fixing their labels ({names}); "
                "use 'remap' to map each flipped clip to its mirror class, or 'off'"
            )
        if self.cfg.hflip != "remap":
            return None
        if all(c.flip_to is None for c in self.classes):
            raise ConfigError(
                f"data.hflip: 'remap' needs a flip_to column in {self.cfg.labels}; use 'on' if flipping never "
                "changes a class, or 'off'"
            )
        return [c.id if c.flip_to is None else c.flip_to for c in self.classes]

    @property
    def class_names(self) -> list[str]:
        return [c.name for c in self.classes]

    # ------------------------------------------------------------------ bad input

    def _note_bad(self, path: str, reason: str) -> None:
        if path not in self.bad:
            log.warning("skipping unreadable video %s: %s", path, reason)
            self.bad[path] = reason

    def _check_bad_fraction(self) -> None:
        frac = len(self.bad) / max(1, self.num_listed)
        if frac > self.cfg.max_bad_fraction:
            shown = "\n".join(f"  {p}: {r}" for p, r in list(self.bad.items())[:10])
            raise BadDataError(
                f"{len(self.bad)} of {self.num_listed} videos in the {self.split} list are missing or unreadable "
                f"({frac:.1%} > data.max_bad_fraction={self.cfg.max_bad_fraction:.1%}):\n{shown}"
            )

    def record_bad(self, sample: BadSample) -> None:
        """Count a video that failed to decode in a worker; raises once the threshold is passed."""
        self._note_bad(sample.path, sample.reason)
        self._check_bad_fraction()

    # ------------------------------------------------------------------ items

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, key: int | ClipKey) -> dict[str, Any] | BadSample:
        """``key``: a :class:`ClipKey` (what the training loader's sampler sends) or a plain index (at
        :meth:`set_epoch`'s epoch)."""
        extra: dict[str, Any] = {}
        if isinstance(key, ClipKey):
            epoch, index = key.epoch, key.index
            extra = {"epoch": key.epoch, "batch": key.batch}
        else:
            epoch, index = self.epoch, int(key)
        rec = self.records[index]
        try:
            reader = self.frame_cache.open(rec.path) if self.frame_cache else open_video(rec.path, self.backend)
            try:
                video, label = self._item(reader, rec.label, epoch, index, extra)
            finally:
                reader.close()
        except VideoDecodeError as exc:
            return BadSample(index, str(rec.path), str(exc))
        if video is not None:
            extra["video"] = video
        return {"label": label, "index": index, **extra}

    def _item(self, reader, label: int, epoch: int, index: int,
              extra: dict[str, Any]) -> tuple[torch.Tensor | None, int]:
        n = len(reader)
        if self.train:
            g = torch.Generator().manual_seed(clip_seed(self.seed, epoch, index))
            idx = train_indices(n, self.cfg.num_frames, self.cfg.sampling, g)
            if self.decode_elsewhere:  # the training process decodes: send what to decode and how to augment it
                extra["frame_indices"] = torch.tensor(idx, dtype=torch.int64)
                extra["geometry"] = self.transform.draw_geometry(*reader.frame_size, g)
                extra["photometric"] = draw_photometric(g, self.cfg.augment)
                if extra["geometry"][6] and self.flip_map is not None:
                    label = self.flip_map[label]
                return None, label
            clip = torch.from_numpy(reader.get_frames(idx)).permute(0, 3, 1, 2)
            if self.cfg.augment_on == "device":
                video, flipped = self.transform.geometry(clip, g)
                extra["photometric"] = draw_photometric(g, self.cfg.augment)
            else:
                video, flipped = self.transform(clip, g)
            if flipped and self.flip_map is not None:
                label = self.flip_map[label]
            return video, label
        return self._test_views(reader, n), label

    def _test_views(self, reader, n: int) -> torch.Tensor:
        t, clips = self.cfg.num_frames, self.cfg.test_clips
        per_clip = [eval_indices(n, t, self.cfg.sampling, k, clips) for k in range(clips)]
        frames = torch.from_numpy(reader.get_frames([i for idx in per_clip for i in idx])).permute(0, 3, 1, 2)
        views = [self.eval_transform(frames[k * t : (k + 1) * t]) for k in range(clips)]  # each [crops, T, 3, S, S]
        return torch.cat(views, dim=0)


def _missing_or_empty(path: Path) -> str | None:
    if not path.is_file():
        return "file not found"
    if path.stat().st_size == 0:
        return "file is empty (0 bytes)"
    return None


def collate_clips(batch: list[dict[str, Any] | BadSample]) -> dict[str, Any]:
    """Stack the good items; unreadable ones travel separately under ``"skipped"`` so the main process counts them."""
    good = [b for b in batch if not isinstance(b, BadSample)]
    out: dict[str, Any] = default_collate(good) if good else {}
    out["skipped"] = [b for b in batch if isinstance(b, BadSample)]
    return out


def iterate_batches(loader: DataLoader) -> Iterator[dict[str, Any]]:
    """Yield batches that hold at least one clip, recording skipped videos on the dataset (main process)."""
    dataset: VideoDataset = loader.dataset  # type: ignore[assignment]
    for batch in loader:
        for sample in batch["skipped"]:
            dataset.record_bad(sample)
        if "label" in batch:
            yield batch


class ShardSampler(Sampler[int]):
    """Evaluation sharding without padding: rank ``r`` of ``w`` gets indices ``r, r + w, ...``.

    Unlike DistributedSampler it never repeats samples to even out shards, so summing counts across ranks counts
    every video exactly once.
    """

    def __init__(self, length: int, world_size: int = 1, rank: int = 0):
        self.length, self.world_size, self.rank = length, world_size, rank

    def __iter__(self):
        return iter(range(self.rank, self.length, self.world_size))

    def __len__(self) -> int:
        return len(range(self.rank, self.length, self.world_size))


class RunBatchSampler(Sampler[list[ClipKey]]):
    """Training batches epoch after epoch, from ``(start_epoch, start_batch)`` on, for ``epochs`` epochs (None: until
    the consumer stops). Each epoch's order is DistributedSampler's for (seed, epoch); every item carries its epoch.

    One sampler for the whole run keeps one set of loader workers busy across epoch boundaries (no restart, no wait
    for a first batch each epoch), and resuming after batch ``b`` of epoch ``e`` starts at ``(e, b + 1)`` without
    decoding the batches before it.
    """

    def __init__(self, length: int, batch_size: int, seed: int, world_size: int = 1, rank: int = 0,
                 start_epoch: int = 0, start_batch: int = 0, epochs: int | None = 1):
        self.length, self.batch_size, self.seed = length, batch_size, seed
        self.world_size, self.rank = world_size, rank
        self.start_epoch, self.start_batch, self.epochs = start_epoch, start_batch, epochs
        if length < 1:
            raise ValueError("no training videos to sample from")
        self._sampler = DistributedSampler(range(length), num_replicas=world_size, rank=rank, shuffle=True, seed=seed,
                                           drop_last=False)
        # A last short batch is dropped, as before (unless the epoch is shorter than one batch).
        self.drop_last = len(self._sampler) >= batch_size

    def _order(self, epoch: int) -> list[int]:
        self._sampler.set_epoch(epoch)
        return list(self._sampler)

    def epoch_batches(self, epoch: int) -> list[list[ClipKey]]:
        order = self._order(epoch)
        stop = len(order) - len(order) % self.batch_size if self.drop_last else len(order)
        return [[ClipKey(epoch, b, i) for i in order[start : start + self.batch_size]]
                for b, start in enumerate(range(0, stop, self.batch_size))]

    def __iter__(self) -> Iterator[list[ClipKey]]:
        epoch, skip = self.start_epoch, self.start_batch
        while self.epochs is None or epoch < self.start_epoch + self.epochs:
            yield from self.epoch_batches(epoch)[skip:]
            epoch, skip = epoch + 1, 0

    def __len__(self) -> int:
        if self.epochs is None:
            raise TypeError("a RunBatchSampler without an epoch count has no length")
        per_rank = len(self._sampler)
        per_epoch = per_rank // self.batch_size if self.drop_last else -(-per_rank // self.batch_size)
        return self.epochs * per_epoch - self.start_batch


def build_dataset(cfg: DataConfig, split: str, train: bool | None = None, seed: int = 0) -> VideoDataset:
    return VideoDataset(cfg, split, train=train, seed=seed)


def build_dataloader(
    dataset: VideoDataset,
    batch_size: int | None = None,
    world_size: int = 1,
    rank: int = 0,
    epoch: int = 0,
    skip_batches: int = 0,
    epochs: int | None = 1,
) -> DataLoader:
    """Training loaders shuffle with a seed and epoch (identical order for any worker count, resumable) from
    ``(epoch, skip_batches)`` for ``epochs`` epochs (None: the whole run, one set of workers); evaluation loaders
    keep list order and shard without padding."""
    cfg = dataset.cfg
    batch_size = batch_size or cfg.batch_size
    dataset.set_epoch(epoch)
    common = dict(num_workers=cfg.num_workers, collate_fn=collate_clips, pin_memory=torch.cuda.is_available())
    if dataset.train:
        batches = RunBatchSampler(len(dataset), batch_size, dataset.seed, world_size, rank, start_epoch=epoch,
                                  start_batch=skip_batches, epochs=epochs)
        return DataLoader(dataset, batch_sampler=batches, **common)
    return DataLoader(dataset, batch_size=batch_size, sampler=ShardSampler(len(dataset), world_size, rank), **common)

"""The last steps of a training batch, on the training device: decoding planned clips there (``data.decode_on:
device``, with torchcodec: the GPU's video decoder on CUDA) and the photometric augmentation (``data.augment_on:
device``, batched).

The loader's workers drew every random choice from (seed, epoch, index), so a clip finished here is the clip the
workers would have made: bit for bit on the CPU (torchcodec decodes PyAV's frames there; tested), and on a GPU within
its decoder's colour conversion (tests/test_gpu.py states the tolerance).
"""

from __future__ import annotations

from typing import Any

import torch

from ila.data.dataset import BadSample, VideoDataset
from ila.data.readers import TorchCodecReader, VideoDecodeError
from ila.data.transforms import apply_photometric_batch


class BatchOnDevice:
    """``finish(batch) -> (video, labels)`` on ``device``, or None when no clip of the batch could be decoded (each
    failure is counted on the dataset, as a worker's would be)."""

    def __init__(self, dataset: VideoDataset, device: torch.device):
        self.dataset, self.device = dataset, device
        self.decode = dataset.decode_elsewhere

    def __call__(self, batch: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor] | None:
        labels, params = batch["label"], batch.get("photometric")
        if self.decode:
            video, kept = self._decode(batch)
            if video is None:
                return None
            labels, params = labels[kept], params[kept]
        else:
            video = batch["video"].to(self.device, non_blocking=True)
        if params is not None:
            video = apply_photometric_batch(video, params)
        return video, labels.to(self.device)

    def _decode(self, batch: dict[str, Any]) -> tuple[torch.Tensor | None, list[int]]:
        clips, kept = [], []
        rows = zip(batch["index"].tolist(), batch["frame_indices"], batch["geometry"], strict=True)
        for k, (index, frames, draw) in enumerate(rows):
            path = self.dataset.records[index].path
            try:
                reader = TorchCodecReader(path, device=str(self.device))
                clip = reader.frames_tensor(frames.tolist()).permute(0, 3, 1, 2)
                reader.close()
            except VideoDecodeError as exc:
                self.dataset.record_bad(BadSample(index, str(path), str(exc)))
                continue
            clips.append(self.dataset.transform.apply_geometry(clip, draw))
            kept.append(k)
        return (torch.stack(clips) if clips else None), kept

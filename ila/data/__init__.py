"""Data layer: annotation files, video readers, frame sampling, clip transforms, the dataset and the synthetic benchmark."""

from ila.data.dataset import BadDataError, VideoDataset, build_dataloader, build_dataset, iterate_batches

__all__ = ["BadDataError", "VideoDataset", "build_dataloader", "build_dataset", "iterate_batches"]

"""Data layer: annotation files, video readers, frame sampling, clip transforms, the dataset and the synthetic
benchmark.

The dataset's names are loaded on first use (PEP 562), so that importing a light submodule (the synthetic
benchmark's spec, the annotation files) does not import torch: ``ila --help`` stays quick.
"""

from typing import Any

__all__ = ["BadDataError", "VideoDataset", "build_dataloader", "build_dataset", "iterate_batches"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from ila.data import dataset

        return getattr(dataset, name)
    raise AttributeError(f"module 'ila.data' has no attribute {name!r}")

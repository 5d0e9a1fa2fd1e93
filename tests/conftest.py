import os

# Tests never touch the network: a hub lookup must fail at once instead of retrying.
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import shutil
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory) -> Path:
    """The `tiny` synthetic preset, generated once per test session (read-only for tests)."""
    from ila.data.synth import PRESETS, generate

    return generate(PRESETS["tiny"], tmp_path_factory.mktemp("synth") / "tiny", workers=1, progress=False)


@pytest.fixture
def tiny_copy(tiny_dataset, tmp_path) -> Path:
    """A private copy of the tiny dataset that a test may damage."""
    dst = tmp_path / "tiny"
    shutil.copytree(tiny_dataset, dst)
    return dst


@pytest.fixture
def data_cfg(tiny_dataset):
    from ila.config import DataConfig

    return DataConfig(root=str(tiny_dataset), input_size=32, num_frames=8, hflip="remap")

"""Checkpoint faults: a full disk, a truncated or overwritten file, a file carrying arbitrary Python objects."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from ila.cli import main
from ila.engine import checkpoint as ckpt
from ila.engine.checkpoint import CheckpointError


def _state(seed=0):
    g = torch.Generator().manual_seed(seed)
    return {"model": {"w": torch.randn(300, 300, generator=g), "b": torch.randn(7, generator=g)}, "step": seed}


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full to simulate a full disk")
def test_disk_full_names_the_path_removes_the_partial_file_and_keeps_the_previous(tmp_path):
    path = tmp_path / "last.pt"
    ckpt.save_atomic(_state(1), path)
    tmp = path.with_name("last.pt.tmp")
    tmp.symlink_to("/dev/full")  # every write to the temporary file fails with ENOSPC, as on a full disk
    with pytest.raises(CheckpointError, match=rf"no space left on device while writing checkpoint {path}") as err:
        ckpt.save_atomic(_state(2), path)
    assert "previous checkpoint" in str(err.value) and "is kept" in str(err.value)
    assert not os.path.lexists(tmp)  # the partial file is gone
    assert ckpt.load(path)["step"] == 1  # and the previous checkpoint is intact


def test_disk_filling_inside_torchs_writer_is_reported_as_disk_full(tmp_path, monkeypatch):
    """On a really full disk torch's zip writer swallows the OSError and raises "unexpected pos" (seen here when
    /tmp filled during a workflow run): with the device almost full at that moment, it is still named as such."""
    import shutil
    from collections import namedtuple

    path = tmp_path / "last.pt"
    ckpt.save_atomic({"step": 1}, path)

    def fail(obj, fh):
        fh.write(b"partial")
        raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 6666688 vs 6666576")

    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(torch, "save", fail)
    monkeypatch.setattr(shutil, "disk_usage", lambda p: usage(100 * 2**30, 100 * 2**30, 15 * 2**20))
    with pytest.raises(CheckpointError, match=r"no space left on device .* \(15 MiB free there\)"):
        ckpt.save_atomic({"step": 2}, path)
    assert not (tmp_path / "last.pt.tmp").exists()
    # The same error with plenty of space is not a disk problem: it propagates as it is.
    monkeypatch.setattr(shutil, "disk_usage", lambda p: usage(100 * 2**30, 10 * 2**30, 90 * 2**30))
    with pytest.raises(RuntimeError, match="unexpected pos"):
        ckpt.save_atomic({"step": 2}, path)


def test_truncated_checkpoint_names_the_file_and_what_to_do(tmp_path):
    path = tmp_path / "last.pt"
    ckpt.save_atomic(_state(), path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match=rf"{path}: not a complete checkpoint .* \(do this\)"):
        ckpt.load(path, what_to_do="do this")


@pytest.mark.parametrize("where", [0.3, 0.5, 0.7])
def test_overwritten_block_is_detected(tmp_path, where):
    """A 4 KiB overwrite inside the file: torch alone loads it (with wrong tensors); the stored CRC-32s catch it."""
    path = tmp_path / "last.pt"
    ckpt.save_atomic(_state(), path)
    size = path.stat().st_size
    with path.open("r+b") as fh:
        fh.seek(int(size * where))
        fh.write(os.urandom(4096))
    with pytest.raises(CheckpointError, match=rf"{path}: (corrupt checkpoint|not a complete checkpoint)"):
        ckpt.load(path)


class Payload:
    """Unpickling this calls ``os.mkdir(marker)``: the directory existing afterwards means the payload ran."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.mkdir, (self.marker,))


def test_checkpoint_with_arbitrary_objects_is_refused(tmp_path):
    path = tmp_path / "evil.pt"
    marker = tmp_path / "payload-ran"
    torch.save({"model": {}, "extra": Payload(marker)}, path)
    with pytest.raises(CheckpointError, match=rf"{path}: refused: the file holds Python objects"):
        ckpt.load(path)
    assert not marker.exists(), "the payload ran while the checkpoint was being refused"
    # The same file through an unrestricted unpickler does run it: the check above can fail.
    torch.load(path, weights_only=False)
    assert marker.is_dir()


def _train_args(tiny_dataset, out, steps=4):
    return ["train", f"data.root={tiny_dataset}", "data.input_size=32", "data.hflip=remap", "data.batch_size=8",
            "model.variant=baseline", "model.backbone=ILA-mini-32", f"train.steps={steps}", "train.checkpoint_every=2",
            "train.threads=1", "tracking.enabled=false", f"output_dir={out}", "--skip-eval"]


def test_resume_from_a_damaged_checkpoint_stops_with_advice_and_no_resume_recovers(tiny_dataset, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(_train_args(tiny_dataset, out, steps=2)) == 0
    last = out / "checkpoints" / "last.pt"
    data = last.read_bytes()
    last.write_bytes(data[: len(data) - 5000])
    assert main(_train_args(tiny_dataset, out)) == 2
    err = capsys.readouterr().err
    assert f"checkpoint error: {last}: not a complete checkpoint" in err and "--no-resume" in err
    assert main([*_train_args(tiny_dataset, out), "--no-resume"]) == 0
    assert ckpt.load(last)["step"] == 4


def test_evaluate_refuses_a_corrupt_checkpoint_in_one_line(tiny_dataset, tmp_path):
    out = tmp_path / "run"
    assert main(_train_args(tiny_dataset, out, steps=2)) == 0
    last = out / "checkpoints" / "last.pt"
    size = last.stat().st_size
    with last.open("r+b") as fh:
        fh.seek(size // 2)
        fh.write(os.urandom(4096))
    res = subprocess.run([sys.executable, "-m", "ila.cli", "evaluate", str(out / "config.yaml")], capture_output=True,
                         text=True, timeout=300, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert res.returncode == 2
    assert f"ila evaluate: checkpoint error: {last}: corrupt checkpoint" in res.stderr and "Traceback" not in res.stderr

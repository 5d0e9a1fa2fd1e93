"""Real datasets at paper scale, in miniature: Kinetics-400 served over loopback HTTP in the CVDF mirror's formats and
Something-Something-v2 from a user's files, prepared by the workflow's data rules of the paper profiles."""

import json
import os
from pathlib import Path

import pytest
import yaml
from loopback import LoopbackServer
from mini_datasets import build_mini_k400, build_mini_ssv2, encode_clip
from workflow_runner import snakemake

from ila.data.annotations import read_labels, read_video_list
from ila.data.preprocess import EncodeSettings, preprocess_videos, report_path, target_size
from ila.data.readers import available_backends, open_video

REPO = Path(__file__).resolve().parents[1]
CONFIGS = REPO / "workflow" / "config"

pytestmark = pytest.mark.skipif(not available_backends(), reason="needs a video backend (decord or PyAV)")


def _overlay(tmp_path, **dataset):
    path = tmp_path / "overlay.yaml"
    path.write_text(yaml.safe_dump({"dataset": dataset}))
    return str(path)


@pytest.fixture
def mini_k400(tmp_path):
    served = tmp_path / "mirror"
    expected = build_mini_k400(served, tmp_path / "clips")
    with LoopbackServer(served) as server:
        yield server, expected


@pytest.mark.slow
def test_k400_workflow_downloads_extracts_reencodes_and_lists(mini_k400, tmp_path):
    server, expected = mini_k400
    work = tmp_path / "work"
    work.mkdir()
    overlay = _overlay(tmp_path, root="data/k400", base_url=server.url, short_side=64, download_jobs=2)
    res = snakemake("--cores", "2", "data/k400/train.txt", "--configfile", str(CONFIGS / "paper-k400.yaml"),
                    overlay, cwd=work)
    assert res.returncode == 0, res.stderr[-4000:]
    root = work / "data" / "k400"
    for rule in ("k400_download", "k400_extract", "preprocess_videos", "dataset_lists"):
        assert f"rule {rule}:" in res.stderr

    # Labels: the CSV strings sorted as Python sorts them (X-CLIP's order), tricky names intact.
    classes = read_labels(root / "labels.csv")
    assert [c.name for c in classes] == expected["labels"]
    assert classes[expected["labels"].index("skiing (not slalom or crosscountry)")].id == 4
    # Table 13's class groups (ila.data.class_groups): the benchmark's temporal and static Kinetics-400 classes.
    groups = {c.name: c.group for c in classes}
    assert groups["skiing crosscountry"] == groups["skiing (not slalom or crosscountry)"] == "temporal"
    assert groups["yoga"] == "static" and groups["abseiling"] == groups["air drumming"] == ""
    # Lists: every usable clip once, with its label, pointing at the re-encoded copy; the missing and the corrupt
    # clips are counted, not listed; the replaced one is listed (its replacement decodes).
    train = read_video_list(root / "train.txt", len(classes))
    val = read_video_list(root / "val.txt", len(classes))
    assert len(val) == expected["val_listed"] and len(train) == expected["train_listed"] - 2
    for record in train + val:
        assert record.path.parent.parent.name == "videos_s64" and record.path.suffix == ".mp4"
        assert expected["label_of"][record.path.name] == record.label
    names = {r.path.name for r in train}
    assert expected["replaced"] in names and expected["missing"] not in names and expected["corrupt"] not in names
    report = json.loads((root / "prepare_report.json").read_text())["splits"]
    assert report["train"]["listed"] == expected["train_listed"]
    assert report["train"]["missing_examples"] == [expected["missing"]] and report["train"]["missing"] == 1
    assert list(report["train"]["undecodable_examples"]) == [expected["corrupt"]]
    assert report["val"] == {**report["val"], "missing": 0, "undecodable": 0}
    # The re-encoded clips (144x96 before): short side 64, frames intact, readable by the training reader.
    reader = open_video(train[0].path)
    assert reader.get_frames([0, 7]).shape == (2, 64, 96, 3)
    # The manifest: every part with its server size and sha256.
    manifest = json.loads((root / "downloads" / "train" / "manifest.json").read_text())["files"]
    assert sorted(manifest) == ["k400_train_path.txt", "part_0.tar.gz", "part_1.tar.gz", "train.csv"]
    served = server.root / "train" / "part_1.tar.gz"
    import hashlib

    assert manifest["part_1.tar.gz"]["size"] == served.stat().st_size
    assert manifest["part_1.tar.gz"]["sha256"] == hashlib.sha256(served.read_bytes()).hexdigest()
    assert manifest["part_1.tar.gz"]["url"] == f"{server.url}/train/part_1.tar.gz"

    # A second run has nothing to do and fetches nothing.
    before = len(server.requests)
    res = snakemake("--cores", "2", "data/k400/train.txt", "--configfile", str(CONFIGS / "paper-k400.yaml"),
                    overlay, cwd=work)
    assert res.returncode == 0 and "Nothing to be done" in res.stderr + res.stdout
    assert len(server.requests) == before


@pytest.mark.slow
def test_k400_corrupt_part_is_named_moved_aside_and_fetched_again(mini_k400, tmp_path):
    server, expected = mini_k400
    work = tmp_path / "work"
    work.mkdir()
    part = server.root / "train" / "part_1.tar.gz"
    good = part.read_bytes()
    part.write_bytes(good[: len(good) // 2])  # the server's copy is damaged: a valid transfer of a bad file
    overlay = _overlay(tmp_path, root="data/k400", base_url=server.url, download_jobs=2)
    res = snakemake("--cores", "2", "data/k400/train.txt", "--configfile", str(CONFIGS / "paper-k400.yaml"),
                    overlay, cwd=work)
    assert res.returncode != 0
    log = (work / "results" / "logs" / "data" / "k400-extract-train.log").read_text()
    assert "1 of 2 train tarball(s) do not extract" in log and "part_1.tar.gz.corrupt" in log
    downloads = work / "data" / "k400" / "downloads" / "train"
    assert (downloads / "part_1.tar.gz.corrupt").exists() and not (downloads / "part_1.tar.gz").exists()
    assert "part_1.tar.gz" not in json.loads((downloads / "manifest.json").read_text())["files"]
    assert (work / "data" / "k400" / "videos" / ".train-parts" / "part_0.tar.gz.done").exists()  # kept

    part.write_bytes(good)  # the mirror is fixed: the rerun fetches only that part and finishes
    res = snakemake("--cores", "2", "data/k400/train.txt", "--configfile", str(CONFIGS / "paper-k400.yaml"),
                    overlay, cwd=work)
    assert res.returncode == 0, res.stderr[-4000:]
    assert server.gets("train/part_0.tar.gz") == [None] and len(server.gets("train/part_1.tar.gz")) == 2
    listed = read_video_list(work / "data" / "k400" / "train.txt", len(expected["labels"]))
    assert len(listed) == expected["train_listed"] - 2  # the missing and the corrupt clip, as before


@pytest.mark.slow
def test_ssv2_from_the_users_files(tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    overlay = _overlay(tmp_path, root="data/ssv2")
    # Without the files: fails at once, saying what to download from where and where to put it.
    res = snakemake("--cores", "2", "data/ssv2/train.txt", "--configfile", str(CONFIGS / "paper-ssv2.yaml"),
                    overlay, cwd=work)
    out = res.stderr + res.stdout
    assert res.returncode != 0
    assert "qualcomm.com/developer/software/something-something-v-2-dataset" in out
    assert "20bn-something-something-v2-00" in out and str(work / "data" / "ssv2" / "downloads") in out.replace(
        "\n", "")

    expected = build_mini_ssv2(work / "data" / "ssv2" / "downloads", tmp_path / "clips")
    res = snakemake("--cores", "2", "data/ssv2/train.txt", "--configfile", str(CONFIGS / "paper-ssv2.yaml"),
                    overlay, cwd=work)
    assert res.returncode == 0, res.stderr[-4000:]
    root = work / "data" / "ssv2"
    classes = read_labels(root / "labels.csv")
    assert [c.name for c in classes] == expected["classes"]
    train = read_video_list(root / "train.txt", len(classes))
    val = read_video_list(root / "val.txt", len(classes))
    assert len(train) == len(expected["train"]) - 1 and len(val) == len(expected["val"])  # "9999" has no clip
    by_id = {e["id"]: e for e in expected["train"] + expected["val"]}
    for record in train + val:
        template = by_id[record.path.stem]["template"].replace("[", "").replace("]", "")
        assert classes[record.label].name == template
        assert record.path.suffix == ".webm"
    assert open_video(val[0].path).get_frames([0, 7]).shape == (2, 48, 64, 3)  # VP9 through the same readers
    report = json.loads((root / "prepare_report.json").read_text())["splits"]
    assert report["train"]["missing"] == 1 and report["train"]["missing_examples"] == ["9999.webm"]


def test_ssv2_missing_part_is_named(tmp_path):
    from ila.data import ssv2

    build_mini_ssv2(tmp_path / "downloads", tmp_path / "clips")
    (tmp_path / "downloads" / "20bn-something-something-v2-01").unlink()
    with pytest.raises(ssv2.MissingUserFilesError, match="video parts 01 are missing"):
        ssv2.check_downloads(tmp_path)


def test_preprocess_downscales_resumes_and_counts_undecodable(tmp_path):
    src, dst = tmp_path / "src", tmp_path / "dst"
    src.mkdir()
    encode_clip(src / "wide.mp4", 1, size=(192, 128))
    encode_clip(src / "small.webm", 2, size=(80, 48), codec="libvpx-vp9")
    (src / "broken.mp4").write_bytes(b"\x00" * 100)
    report = preprocess_videos(src, dst, EncodeSettings(short_side=64), workers=1, progress=False)
    assert report["videos"] == 3 and report["encoded_now"] == 2 and list(report["undecodable"]) == ["broken.mp4"]
    assert open_video(dst / "wide.mp4").get_frames([0]).shape == (1, 64, 96, 3)
    assert open_video(dst / "small.mp4").get_frames([7]).shape == (1, 48, 80, 3)  # never upscaled
    assert json.loads(report_path(dst).read_text()) == report
    again = preprocess_videos(src, dst, EncodeSettings(short_side=64), workers=1, progress=False)
    assert again["already_done"] == 2 and again["encoded_now"] == 0
    assert not list(dst.glob(".*partial*"))



def _packets(path):
    """(frame number, decode position, keyframe?) of each packet, in decode order."""
    import av

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        packets = [(p.pts, p.is_keyframe) for p in container.demux(stream) if p.size]
    order = {pts: i for i, pts in enumerate(sorted(pts for pts, _ in packets))}
    return [(order[pts], position, key) for position, (pts, key) in enumerate(packets)]


def test_preprocess_writes_short_groups_of_pictures_and_redoes_videos_of_other_settings(tmp_path, caplog):
    src, dst = tmp_path / "src", tmp_path / "dst"
    src.mkdir()
    encode_clip(src / "long.mp4", 1, size=(192, 128), frames=40)
    preprocess_videos(src, dst, EncodeSettings(short_side=64), workers=1, progress=False)
    packets = _packets(dst / "long.mp4")
    keyframes = sorted(pts for pts, _, key in packets if key)
    assert len(packets) == 40 and keyframes == list(range(0, 40, EncodeSettings().keyframe_interval))
    assert all(frame == position for frame, position, _ in packets)  # no B-frames: no frame held back

    # Other settings: every video is written again (and an interrupted run keeps the new settings' record).
    before = (dst / "long.mp4").stat().st_mtime_ns
    report = preprocess_videos(src, dst, EncodeSettings(short_side=64, keyframe_interval=20), workers=1,
                               progress=False)
    assert report["encoded_now"] == 1 and (dst / "long.mp4").stat().st_mtime_ns != before
    assert sorted(pts for pts, _, key in _packets(dst / "long.mp4") if key) == [0, 20]
    assert "other settings" in caplog.text
    # Videos from before settings were recorded count as other settings too.
    (dst / ".encode-settings.json").unlink()
    assert preprocess_videos(src, dst, EncodeSettings(short_side=64), workers=1, progress=False)["encoded_now"] == 1
    assert preprocess_videos(src, dst, EncodeSettings(short_side=64), workers=1, progress=False)["encoded_now"] == 0


# The data code's process pools and DataLoader workers, run under one start method in a fresh interpreter (a script
# file, so that spawn and forkserver workers import it as __mp_main__ and get its re-encoder patch). Python 3.14's
# Linux default is forkserver; spawn is macOS's and Windows'.
START_METHOD_SCRIPT = r"""
import json, os, shutil, sys, tarfile
from pathlib import Path
import multiprocessing as mp

import ila.data.preprocess as preprocess

_real_reencode = preprocess.reencode


def _crashing(src, dst, settings):  # a decoder that kills its process on one video, as a segfault would
    if src.name == "crash.mp4":
        os._exit(1)
    return _real_reencode(src, dst, settings)


preprocess.reencode = _crashing  # in this process and, through __mp_main__, in spawned / forkserver workers


def main(method, work, tiny):
    mp.set_start_method(method, force=True)
    import torch
    from ila.config import DataConfig
    from ila.data import kinetics, synth
    from ila.data.dataset import VideoDataset, build_dataloader, iterate_batches
    from ila.data.preprocess import EncodeSettings, preprocess_videos

    torch.set_num_threads(1)
    work = Path(work)
    out = {"start_method": mp.get_start_method()}
    # Re-encoding: a pool whose one video crashes its worker; the rest is re-encoded, the crash named. Under fork,
    # where processes are cheap, a pool of 2 (another video may be in flight when the pool breaks); else of 1: every
    # new spawn/forkserver process imports torch, and the pool is rebuilt twice.
    workers = 2 if method == "fork" else 1
    report = preprocess_videos(work / "src", work / "dst", EncodeSettings(short_side=64), workers=workers,
                               progress=False)
    out["preprocess"] = {"encoded_now": report["encoded_now"], "undecodable": report["undecodable"],
                         "files": sorted(p.name for p in (work / "dst").iterdir())}
    # Kinetics-400 tarballs extracted in a pool (of 1: the start method is what is tested, not the parallelism).
    root = work / "k400"
    downloads = kinetics.downloads_dir(root, "train")
    downloads.mkdir(parents=True)
    parts = []
    for i, names in enumerate([["ok0.mp4", "ok1.mp4"], ["ok2.mp4"]]):
        with tarfile.open(downloads / f"part_{i}.tar.gz", "w:gz") as tar:
            for name in names:
                tar.add(work / "src" / name, arcname=f"train/{name}")
        parts.append(f"part_{i}.tar.gz")
    (downloads / kinetics.path_list_name("train")).write_text("".join(f"{p}\n" for p in parts))
    summary = kinetics.extract_split(root, "train", workers=1, replacement=False)
    out["extract"] = {"extracted": summary["videos_extracted_now"],
                      "same_bytes": all((root / "videos" / "train" / n).read_bytes() == (work / "src" / n).read_bytes()
                                        for n in ("ok0.mp4", "ok1.mp4", "ok2.mp4"))}
    # Synthetic clips from a pool of 2 (>= 32 clips), byte for byte those of one process.
    spec = synth.SynthSpec(temporal_pairs=1, static_classes=2, train_per_class=8, val_per_class=2, frames=4)
    pooled = synth.generate(spec, work / "synth_pool", workers=2, progress=False)
    serial = synth.generate(spec, work / "synth_serial", workers=1, progress=False)
    clips = sorted(p.relative_to(pooled) for p in pooled.rglob("*.mp4"))
    same = clips == sorted(p.relative_to(serial) for p in serial.rglob("*.mp4"))
    same = same and all((pooled / c).read_bytes() == (serial / c).read_bytes() for c in clips)
    out["synth"] = {"clips": len(clips), "same_bytes": same}
    # A DataLoader worker: the same training and evaluation batches as without workers.
    loaders = {}
    for workers in (0, 1):
        cfg = DataConfig(root=tiny, input_size=32, num_frames=8, hflip="remap", batch_size=4, num_workers=workers,
                         test_clips=2, frame_cache_mb=8)
        got = []
        for train in (True, False):
            ds = VideoDataset(cfg, "train" if train else "val", train=train, seed=3)
            batch = next(iterate_batches(build_dataloader(ds, epoch=1)))
            got.append((batch["video"], batch["label"], batch["index"]))
        loaders[workers] = got
    same = all(torch.equal(a, b) for x, y in zip(loaders[0], loaders[1]) for a, b in zip(x, y))
    out["loader"] = {"same_batches": same, "shapes": [list(v.shape) for v, _, _ in loaders[1]]}
    print("RESULT " + json.dumps(out))


if __name__ == "__main__":
    main(*sys.argv[1:])
"""


@pytest.mark.parametrize("method", ["fork", "forkserver", "spawn"])
def test_data_processes_under_every_start_method(method, tiny_dataset, tmp_path):
    """Under fork, forkserver and spawn: re-encoding in a pool survives a decoder that kills its process (the video is
    found, retried alone and named; every other video is re-encoded), Kinetics-400 tarballs extract in a pool,
    synthetic clips from a pool are those of one process, and a DataLoader worker gives the batches of the main
    process. Small clips and pools of 1-2 processes: under spawn and forkserver each new process imports the data code
    (and torch), which is most of the time."""
    import multiprocessing
    import subprocess
    import sys

    if method not in multiprocessing.get_all_start_methods():
        pytest.skip(f"{method} is not available on this platform")
    src = tmp_path / "src"
    src.mkdir()
    for i in range(3):
        encode_clip(src / f"ok{i}.mp4", i, size=(96, 64))
    encode_clip(src / "crash.mp4", 9, size=(96, 64))
    script = tmp_path / "start_method_probe.py"
    script.write_text(START_METHOD_SCRIPT)
    res = subprocess.run([sys.executable, str(script), method, str(tmp_path), str(tiny_dataset)], cwd=tmp_path,
                         capture_output=True, text=True, timeout=600,
                         env={**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"})
    lines = [line for line in res.stdout.splitlines() if line.startswith("RESULT ")]
    assert res.returncode == 0 and lines, (res.stdout + res.stderr)[-4000:]
    out = json.loads(lines[-1][len("RESULT "):])
    assert out["start_method"] == method
    pre = out["preprocess"]
    assert pre["encoded_now"] == 3 and list(pre["undecodable"]) == ["crash.mp4"], pre
    assert "died on it" in pre["undecodable"]["crash.mp4"]
    assert pre["files"] == [".encode-settings.json", "ok0.mp4", "ok1.mp4", "ok2.mp4"]  # and nothing half-written
    assert out["extract"] == {"extracted": 3, "same_bytes": True}
    assert out["synth"] == {"clips": 40, "same_bytes": True}
    assert out["loader"] == {"same_batches": True, "shapes": [[4, 8, 3, 32, 32], [4, 2, 8, 3, 32, 32]]}


@pytest.mark.parametrize("size,short,expected", [((1280, 720), 256, (456, 256)), ((340, 256), 256, (340, 256)),
                                                  ((256, 340), 128, (128, 170)), ((100, 50), 256, (100, 50))])
def test_target_size_keeps_aspect_and_never_upscales(size, short, expected):
    assert target_size(*size, short) == expected

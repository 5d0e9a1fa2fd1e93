import dataclasses
import itertools
import logging
import shutil
from collections import Counter

import pytest
import torch

from ila.config import ConfigError
from ila.data.annotations import AnnotationError, read_labels
from ila.data.dataset import BadDataError, VideoDataset, build_dataloader, iterate_batches


def test_train_and_test_items(data_cfg):
    train = VideoDataset(data_cfg, "train", seed=0)
    item = train[0]
    assert item["video"].shape == (8, 3, 32, 32) and item["video"].dtype == torch.float32
    cfg = dataclasses.replace(data_cfg, test_clips=2, test_crops=3)
    val = VideoDataset(cfg, "val")
    assert val[0]["video"].shape == (6, 8, 3, 32, 32)
    torch.testing.assert_close(val[3]["video"], val[3]["video"], rtol=0, atol=0)


def test_training_clip_depends_only_on_seed_epoch_index(data_cfg):
    a, b = VideoDataset(data_cfg, "train", seed=1), VideoDataset(data_cfg, "train", seed=1)
    torch.testing.assert_close(a[5]["video"], b[5]["video"], rtol=0, atol=0)
    b.set_epoch(1)
    assert not torch.equal(a[5]["video"], b[5]["video"])


def test_loader_batches_do_not_depend_on_worker_count(data_cfg):
    def batches(workers):
        ds = VideoDataset(dataclasses.replace(data_cfg, num_workers=workers, batch_size=4), "train", seed=3)
        return [(b["index"], b["video"]) for b in iterate_batches(build_dataloader(ds, epoch=2))]

    zero, two = batches(0), batches(2)
    assert len(zero) == len(two) == 90 // 4
    for (ia, va), (ib, vb) in zip(zero, two, strict=False):
        assert torch.equal(ia, ib)
        torch.testing.assert_close(va, vb, rtol=0, atol=0)


def test_eval_shards_cover_every_video_once(data_cfg):
    ds = VideoDataset(data_cfg, "val")
    seen = []
    for rank in range(3):
        for b in iterate_batches(build_dataloader(ds, batch_size=5, world_size=3, rank=rank)):
            seen += b["index"].tolist()
    assert sorted(seen) == list(range(len(ds)))


def test_flip_remaps_direction_labels(data_cfg):
    classes = read_labels(data_cfg_root(data_cfg) / "labels.csv")
    cfg = dataclasses.replace(data_cfg, augment=dataclasses.replace(data_cfg.augment, flip_p=1.0))
    ds = VideoDataset(cfg, "train")
    for i, rec in enumerate(ds.records):
        expected = classes[rec.label].flip_to
        assert ds[i]["label"] == expected
    assert {classes[r.label].flip_to != r.label for r in ds.records} == {True, False}


def data_cfg_root(cfg):
    from pathlib import Path

    return Path(cfg.root)


def test_hflip_off_never_flips(data_cfg):
    """With flip_p = 1, 'off' gives exactly the unflipped clip and label; 'remap' (the control) flips every clip."""
    no_colour = dataclasses.replace(data_cfg.augment, color_jitter_p=0.0, grayscale_p=0.0)

    def items(hflip, flip_p):
        aug = dataclasses.replace(no_colour, flip_p=flip_p)
        ds = VideoDataset(dataclasses.replace(data_cfg, hflip=hflip, augment=aug), "train", seed=4)
        return ds, [ds[i] for i in range(0, len(ds), 9)]

    off_ds, off = items("off", 1.0)
    _, unflipped = items("remap", 0.0)
    _, flipped = items("remap", 1.0)
    for a, b, c in zip(off, unflipped, flipped, strict=False):
        torch.testing.assert_close(a["video"], b["video"], rtol=0, atol=0)
        assert not torch.equal(a["video"], c["video"])
        assert a["label"] == b["label"] == off_ds.records[a["index"]].label
    assert any(a["label"] != c["label"] for a, c in zip(off, flipped, strict=False))  # direction classes were remapped


def test_flip_without_remap_is_refused_for_direction_classes(data_cfg):
    with pytest.raises(ConfigError, match="hflip.*remap"):
        VideoDataset(dataclasses.replace(data_cfg, hflip="on"), "train")
    assert VideoDataset(dataclasses.replace(data_cfg, hflip="off"), "train")[0]["label"] >= 0


def _damage(root, list_name="val.txt"):
    """Damage four listed videos in four ways; returns their paths."""
    lines = (root / list_name).read_text().splitlines()
    paths = [root / ln.rsplit(maxsplit=1)[0] for ln in lines[:4]]
    paths[0].unlink()  # missing
    paths[1].write_bytes(b"")  # zero bytes
    data = paths[2].read_bytes()
    paths[2].write_bytes(data[: len(data) // 3])  # truncated
    paths[3].write_bytes(b"not a video at all" * 100)  # undecodable
    return paths


def test_bad_videos_are_skipped_counted_and_named(tiny_copy, data_cfg, caplog):
    paths = _damage(tiny_copy)
    cfg = dataclasses.replace(data_cfg, root=str(tiny_copy), max_bad_fraction=0.2)
    with caplog.at_level(logging.WARNING):
        ds = VideoDataset(cfg, "val")
        assert len(ds) == ds.num_listed - 2  # missing and empty dropped up front
        n = sum(len(b["index"]) for b in iterate_batches(build_dataloader(ds, batch_size=4)))
    assert n == ds.num_listed - 4
    assert set(ds.bad) == {str(p) for p in paths}
    for p in paths:
        assert str(p) in caplog.text


def test_bad_fraction_over_threshold_fails_with_the_files(tiny_copy, data_cfg):
    paths = _damage(tiny_copy)
    cfg = dataclasses.replace(data_cfg, root=str(tiny_copy))  # default threshold 1%
    with pytest.raises(BadDataError, match="max_bad_fraction") as err:
        ds = VideoDataset(cfg, "val")
        list(iterate_batches(build_dataloader(ds)))
    assert str(paths[0]) in str(err.value)


def test_bad_videos_in_workers_reach_the_main_process(tiny_copy, data_cfg):
    lines = (tiny_copy / "val.txt").read_text().splitlines()
    victim = tiny_copy / lines[7].rsplit(maxsplit=1)[0]
    victim.write_bytes(b"\x00" * 1000)
    ds = VideoDataset(dataclasses.replace(data_cfg, root=str(tiny_copy), num_workers=2, max_bad_fraction=0.05), "val")
    n = sum(len(b["index"]) for b in iterate_batches(build_dataloader(ds, batch_size=4)))
    assert n == len(ds) - 1 and list(ds.bad) == [str(victim)]


def test_decode_failures_in_workers_past_the_threshold_stop_with_the_files(tiny_copy, data_cfg):
    """Videos that exist but fail to decode inside loader workers (not dropped up front) count towards
    max_bad_fraction: the second of 36 passes 5% and loading stops, naming them."""
    lines = (tiny_copy / "val.txt").read_text().splitlines()
    victims = [tiny_copy / lines[i].rsplit(maxsplit=1)[0] for i in (3, 11, 20)]
    for v in victims:
        v.write_bytes(b"\x00garbage" * 500)
    ds = VideoDataset(dataclasses.replace(data_cfg, root=str(tiny_copy), num_workers=2, max_bad_fraction=0.05), "val")
    assert len(ds) == ds.num_listed  # nothing looked wrong before decoding
    with pytest.raises(BadDataError, match=r"2 of 36 videos in the val list .* > data.max_bad_fraction=5.0%") as err:
        for _ in iterate_batches(build_dataloader(ds, batch_size=4)):
            pass
    assert str(victims[0]) in str(err.value) and str(victims[1]) in str(err.value)


@pytest.mark.parametrize(
    "line,match",
    [
        ("videos/x.mp4", r"val.txt:3: expected '<video path> <label id>'"),
        ("videos/x.mp4 seven", r"val.txt:3: expected an integer label id"),
        ("videos/x.mp4 99", r"val.txt:3: unknown label 99"),
    ],
)
def test_malformed_annotation_fails_with_file_and_line(tiny_copy, data_cfg, line, match):
    lines = (tiny_copy / "val.txt").read_text().splitlines()
    lines.insert(2, line)
    (tiny_copy / "val.txt").write_text("\n".join(lines) + "\n")
    with pytest.raises(AnnotationError, match=match):
        VideoDataset(dataclasses.replace(data_cfg, root=str(tiny_copy)), "val")


@pytest.mark.parametrize(
    "edit,match",
    [
        (lambda t: t.replace("0,an object", "zero,an object", 1), r"labels.csv:2: expected an integer class id"),
        (lambda t: t.replace("id,name", "idx,name"), r"labels.csv:1: expected a header"),
        (lambda t: t.replace(",1,1\n", ",1,42\n", 1), r"labels.csv:2: flip_to 42 is not a class id"),
    ],
)
def test_malformed_labels_fail_with_file_and_line(tiny_copy, data_cfg, edit, match):
    path = tiny_copy / "labels.csv"
    path.write_text(edit(path.read_text()))
    with pytest.raises(AnnotationError, match=match):
        VideoDataset(dataclasses.replace(data_cfg, root=str(tiny_copy)), "val")


def test_kinetics_style_labels_without_extra_columns(tiny_copy, data_cfg):
    path = tiny_copy / "labels.csv"
    rows = [ln.split(",")[:2] for ln in path.read_text().splitlines()]
    path.write_text("\n".join(",".join(r) for r in rows) + "\n")
    ds = VideoDataset(dataclasses.replace(data_cfg, root=str(tiny_copy), hflip="on"), "train")
    assert ds.classes[0].group == "" and ds.flip_map is None
    shutil.rmtree(tiny_copy / "videos")
    with pytest.raises(BadDataError, match="90 of 90 videos"):
        VideoDataset(dataclasses.replace(data_cfg, root=str(tiny_copy), hflip="on"), "train")


def test_device_augmentation_gives_the_loaders_clips(data_cfg):
    """data.augment_on=device: workers hand over uint8 clips and drawn parameters; finishing them on the device
    (here the CPU) gives exactly the clips the loader would have made, for any worker count."""
    from ila.data.transforms import apply_photometric_batch

    loader_ds = VideoDataset(data_cfg, "train", seed=2)
    for workers in (0, 2):
        cfg = dataclasses.replace(data_cfg, augment_on="device", num_workers=workers, batch_size=6)
        ds = VideoDataset(cfg, "train", seed=2)
        batch = next(iterate_batches(build_dataloader(ds, epoch=1)))
        assert batch["video"].dtype == torch.uint8 and batch["photometric"].shape == (6, 10)
        finished = apply_photometric_batch(batch["video"], batch["photometric"])
        loader_ds.set_epoch(1)
        for i, index in enumerate(batch["index"].tolist()):
            ref = loader_ds[index]
            torch.testing.assert_close(finished[i], ref["video"], rtol=0, atol=0)
            assert batch["label"][i] == ref["label"]


@pytest.mark.parametrize("reader", ["decord", "pyav"])
def test_frame_cache_gives_the_decoders_clips_and_decodes_each_video_once(data_cfg, reader, monkeypatch):
    from ila.data import dataset as dataset_module
    from ila.data import readers

    if reader not in readers.available_backends():
        pytest.skip(f"{reader} is not installed")
    cfg = dataclasses.replace(data_cfg, reader=reader)
    plain = VideoDataset(cfg, "train", seed=4)
    cached = VideoDataset(dataclasses.replace(cfg, frame_cache_mb=64), "train", seed=4)
    opened = []
    real_open = readers.open_video
    monkeypatch.setattr(readers, "open_video", lambda path, backend: opened.append(path) or real_open(path, backend))
    for epoch in (0, 1):
        plain.set_epoch(epoch), cached.set_epoch(epoch)
        for i in range(len(cached)):
            a, b = plain[i], cached[i]
            assert a["label"] == b["label"]
            torch.testing.assert_close(a["video"], b["video"], rtol=0, atol=0)
    assert len(opened) == len(cached)  # the cache opened each video once over two epochs
    assert cached.frame_cache.used == sum(f.nbytes for f in cached.frame_cache.videos.values()) > 0
    assert dataset_module.VideoDataset(cfg, "val").frame_cache is None  # evaluation reads each video once


def test_frame_cache_stops_growing_at_its_budget(data_cfg):
    from ila.data.readers import FrameCache

    ds = VideoDataset(data_cfg, "train", seed=0)
    one = FrameCache(1, ds.backend).open(ds.records[0].path)
    per_video = one.frames.nbytes
    cache = FrameCache(1, ds.backend)  # 1 MiB
    for rec in ds.records:
        reader = cache.open(rec.path)
        assert len(reader.get_frames([0, len(reader) - 1])) == 2
    assert cache.full and cache.used <= 2**20 and len(cache.videos) == 2**20 // per_video


def test_negative_frame_cache_is_a_config_error(data_cfg):
    with pytest.raises(ConfigError, match="data.frame_cache_mb"):
        dataclasses.replace(data_cfg, frame_cache_mb=-1).validate()


@pytest.mark.parametrize("world_size", [1, 3])
def test_run_sampler_is_distributed_samplers_order_epoch_after_epoch_and_resumes_anywhere(world_size):
    from torch.utils.data import DistributedSampler

    from ila.data.dataset import ClipKey, RunBatchSampler

    n, batch = 23, 4
    for rank in range(world_size):
        whole = list(itertools.islice(iter(RunBatchSampler(n, batch, 7, world_size, rank, epochs=None)), 20))
        per_epoch = len(DistributedSampler(range(n), world_size, rank)) // batch
        for b, keys in enumerate(whole):
            epoch, pos = divmod(b, per_epoch)
            ds = DistributedSampler(range(n), world_size, rank, shuffle=True, seed=7)
            ds.set_epoch(epoch)
            assert keys == [ClipKey(epoch, pos, i) for i in list(ds)[pos * batch : (pos + 1) * batch]]
        for start in range(len(whole)):
            epoch, pos = whole[start][0].epoch, whole[start][0].batch
            resumed = RunBatchSampler(n, batch, 7, world_size, rank, start_epoch=epoch, start_batch=pos, epochs=None)
            assert list(itertools.islice(iter(resumed), len(whole) - start)) == whole[start:]


def test_one_loader_serves_several_epochs_with_the_clips_of_each_epoch(data_cfg):
    cfg = dataclasses.replace(data_cfg, num_workers=2)
    ds = VideoDataset(cfg, "train", seed=3)
    loader = build_dataloader(ds, batch_size=16, epochs=3)
    seen = {}
    for batch in iterate_batches(loader):
        for e, i, v in zip(batch["epoch"].tolist(), batch["index"].tolist(), batch["video"], strict=True):
            seen[e, i] = v
    assert {e for e, _ in seen} == {0, 1, 2} and len(seen) == 3 * (len(ds) // 16) * 16
    direct = VideoDataset(data_cfg, "train", seed=3)
    for (e, i), v in list(seen.items())[::17]:
        direct.set_epoch(e)
        torch.testing.assert_close(direct[i]["video"], v, rtol=0, atol=0)


def test_decoding_on_the_device_gives_the_loaders_clips(data_cfg, torchcodec_cpu):
    """data.decode_on: device on the CPU: the workers send frame indices and drawn choices, the training process
    decodes with torchcodec and finishes the clips: bit for bit the clips the workers make with PyAV."""
    from ila.data.device import BatchOnDevice

    base = dataclasses.replace(data_cfg, augment_on="device", reader="pyav", num_workers=2)
    loader_ds = VideoDataset(base, "train", seed=5)
    planned_ds = VideoDataset(dataclasses.replace(base, decode_on="device"), "train", seed=5)
    item = planned_ds[3]
    assert "video" not in item and item["frame_indices"].shape == (8,) and item["geometry"].shape == (7,)
    device = torch.device(torchcodec_cpu)
    made = [BatchOnDevice(loader_ds, device)(b) for b in iterate_batches(build_dataloader(loader_ds, epoch=1))]
    planned = [BatchOnDevice(planned_ds, device)(b) for b in iterate_batches(build_dataloader(planned_ds, epoch=1))]
    assert len(made) == len(planned) > 1
    for (video_a, labels_a), (video_b, labels_b) in zip(made, planned, strict=True):
        assert labels_a.equal(labels_b)  # flip-remapped labels included
        torch.testing.assert_close(video_b, video_a, rtol=0, atol=0)


def test_a_clip_that_fails_to_decode_on_the_device_is_dropped_and_counted(data_cfg, torchcodec_cpu, monkeypatch):
    from ila.data import device as device_mod
    from ila.data.readers import TorchCodecReader, VideoDecodeError

    cfg = dataclasses.replace(data_cfg, augment_on="device", decode_on="device", max_bad_fraction=0.5)
    ds = VideoDataset(cfg, "train", seed=0)
    batch = next(iterate_batches(build_dataloader(ds, batch_size=4)))
    victim = ds.records[int(batch["index"][1])].path

    class Failing(TorchCodecReader):
        def __init__(self, path, device="cpu"):
            if path == victim:
                raise VideoDecodeError(f"{path}: broken on the device")
            super().__init__(path, device)

    monkeypatch.setattr(device_mod, "TorchCodecReader", Failing)
    video, labels = device_mod.BatchOnDevice(ds, torch.device("cpu"))(batch)
    assert video.shape[0] == labels.shape[0] == 3 and str(victim) in ds.bad
    assert labels.tolist() == [batch["label"][k].item() for k in (0, 2, 3)]


def test_decoding_on_the_device_needs_device_augmentation_and_names_the_missing_extra(data_cfg, monkeypatch):
    from ila.data import readers

    with pytest.raises(ConfigError, match=r"data.decode_on: 'device'.*augment_on: device"):
        dataclasses.replace(data_cfg, decode_on="device").validate()
    real_find_spec = readers.importlib.util.find_spec
    monkeypatch.setattr(readers.importlib.util, "find_spec",
                        lambda name, *a: None if name == "torchcodec" else real_find_spec(name, *a))
    with pytest.raises(RuntimeError, match=r"torchcodec.*not installed.*ila-repro\[torchcodec\]"):
        VideoDataset(dataclasses.replace(data_cfg, augment_on="device", decode_on="device"), "train")


def test_per_class_subset_takes_the_first_videos_of_each_class(data_cfg):
    """data.train_per_class / val_per_class (the rehearsal's few videos per class): the first of each class in list
    order, the same on every run; null keeps the whole list."""
    whole = VideoDataset(data_cfg, "train")
    few = VideoDataset(dataclasses.replace(data_cfg, train_per_class=1, val_per_class=2), "train")
    expected = [next(r for r in whole.records if r.label == c) for c in sorted({r.label for r in whole.records})]
    assert sorted(few.records, key=lambda r: r.label) == expected and len(few) < len(whole)
    val = VideoDataset(dataclasses.replace(data_cfg, val_per_class=2), "val")
    assert max(Counter(r.label for r in val.records).values()) == 2
    with pytest.raises(ConfigError, match="data.val_per_class: expected a positive integer"):
        dataclasses.replace(data_cfg, val_per_class=0).validate()


def test_per_class_subset_skips_missing_videos_and_judges_the_whole_list(tiny_copy, data_cfg):
    """The subset takes the first videos of each class that are on disk; the missing-file check covers the whole
    list, as the full-size run's would."""
    cfg = dataclasses.replace(data_cfg, root=str(tiny_copy), train_per_class=1, max_bad_fraction=1.0)
    first = VideoDataset(cfg, "train").records[0]
    first.path.unlink()
    again = VideoDataset(cfg, "train")
    replacement = next(r for r in again.records if r.label == first.label)
    assert replacement.path != first.path and len(again.bad) == 0 and again.num_listed == len(again.records)
    strict = dataclasses.replace(cfg, max_bad_fraction=0.0)
    with pytest.raises(BadDataError, match="1 of .* videos in the train list are missing"):
        VideoDataset(strict, "train")

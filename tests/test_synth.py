import filecmp
import json

import numpy as np
import pytest

from ila.data.annotations import read_labels, read_video_list
from ila.data.readers import open_video
from ila.data.synth import PRESETS, SynthSpec, build_classes, generate, render_clip

SMALL = SynthSpec(temporal_pairs=2, static_classes=2, train_per_class=3, val_per_class=2, frames=12)


def _decode_all(path):
    r = open_video(path, "pyav")
    return r.get_frames(range(len(r)))


def test_same_seed_gives_identical_files_and_frames(tmp_path):
    a = generate(SMALL, tmp_path / "a", workers=1, progress=False)
    b = generate(SMALL, tmp_path / "b", workers=2, progress=False)
    for name in ("train.txt", "val.txt", "labels.csv", "synth.json"):
        assert filecmp.cmp(a / name, b / name, shallow=False), name
    classes = read_labels(a / "labels.csv")
    for split in ("train", "val"):
        recs = read_video_list(a / f"{split}.txt", len(classes))
        assert len(recs) == len(classes) * (3 if split == "train" else 2)
        for rec in recs:
            other = b / rec.path.relative_to(a)
            np.testing.assert_array_equal(_decode_all(rec.path), _decode_all(other))


def test_other_seed_gives_other_clips():
    cls = build_classes(SMALL)[0]
    other = SynthSpec(**{**SMALL.__dict__, "seed": 1})
    assert not np.array_equal(render_clip(SMALL, cls, "train", 0), render_clip(other, cls, "train", 0))
    assert not np.array_equal(render_clip(SMALL, cls, "train", 0), render_clip(SMALL, cls, "val", 0))


def test_labels_record_group_twin_and_mirror(tiny_dataset):
    classes = read_labels(tiny_dataset / "labels.csv")
    spec = PRESETS["tiny"]
    assert len(classes) == 2 * spec.temporal_pairs + spec.static_classes
    temporal = [c for c in classes if c.group == "temporal"]
    static = [c for c in classes if c.group == "static"]
    assert len(temporal) == 2 * spec.temporal_pairs and len(static) == spec.static_classes
    for c in temporal:
        assert classes[c.twin].twin == c.id and c.twin != c.id
    assert all(c.twin is None and c.flip_to == c.id for c in static)
    by_name = {c.name: c for c in classes}
    # A horizontal flip turns left->right into right->left, but leaves up/down alone.
    assert by_name["an object moving from left to right"].flip_to == by_name["an object moving from right to left"].id
    assert by_name["an object moving upward"].flip_to == by_name["an object moving upward"].id
    assert len({c.name for c in classes}) == len(classes)


@pytest.mark.parametrize("preset,index", [(p, i) for p in ("default", "transfer") for i in range(4)])
def test_time_reversed_twin_is_exactly_the_other_class(preset, index):
    spec = PRESETS[preset]
    classes = build_classes(spec)
    for cls in classes:
        if cls.info.group != "temporal" or cls.reverse:
            continue
        fwd = render_clip(spec, cls, "train", index)
        bwd = render_clip(spec, classes[cls.info.twin], "train", index)
        np.testing.assert_array_equal(bwd, fwd[::-1])
        # Same frames in another order: any order-invariant pooling sees identical input...
        np.testing.assert_array_equal(fwd.mean(axis=0), bwd.mean(axis=0))
        # ...while the clip is not a palindrome, so order carries the class.
        assert np.abs(fwd.astype(int) - bwd.astype(int)).mean() > 1.0


def _foreground_x(clip: np.ndarray) -> np.ndarray:
    """x-centroid per frame of what departs from the clip's temporal median (the moving object)."""
    clip = clip.astype(np.float32)
    energy = np.abs(clip - np.median(clip, axis=0)).sum(-1)  # [T, H, W]
    xs = np.arange(clip.shape[2])
    return (energy.sum(1) * xs).sum(1) / energy.sum((1, 2))


def test_left_to_right_moves_right_and_its_mirror_is_the_twin():
    spec = PRESETS["default"]
    classes = build_classes(spec)
    ltr = next(c for c in classes if c.info.name == "an object moving from left to right")
    for i in range(6):
        clip = render_clip(spec, ltr, "val", i)
        x = _foreground_x(clip)
        assert x[-1] - x[0] > 4, x
        mirrored = clip[:, :, ::-1]
        xm = _foreground_x(mirrored)
        assert xm[-1] - xm[0] < -4  # mirrored clip moves right to left: flip must remap the label


def test_decoded_video_matches_rendered_frames(tiny_dataset):
    spec = PRESETS["tiny"]
    cls = build_classes(spec)[0]
    rendered = render_clip(spec, cls, "train", 0)
    path = read_video_list(tiny_dataset / "train.txt", len(build_classes(spec)))[0].path
    decoded = _decode_all(path)
    assert decoded.shape == rendered.shape
    # H.264 at crf 12 with 4:2:0 chroma: close, not bit-exact.
    assert np.abs(decoded.astype(int) - rendered.astype(int)).mean() < 6


def test_refuses_to_mix_specs_in_one_directory(tmp_path):
    generate(SMALL, tmp_path / "d", workers=1, progress=False)
    with pytest.raises(FileExistsError, match="different spec"):
        generate(SynthSpec(**{**SMALL.__dict__, "seed": 3}), tmp_path / "d", workers=1, progress=False)


def test_resume_keeps_finished_videos(tmp_path):
    out = generate(SMALL, tmp_path / "d", workers=1, progress=False)
    videos = sorted((out / "videos").rglob("*.mp4"))
    kept, victim = videos[0], videos[1]
    kept_mtime = kept.stat().st_mtime_ns
    victim.unlink()
    generate(SMALL, out, workers=1, progress=False)
    assert victim.exists()
    assert kept.stat().st_mtime_ns == kept_mtime  # not rewritten
    assert len(list((out / "videos").rglob("*.mp4"))) == 6 * 5
    assert not list(out.rglob("*.part.mp4"))


def test_the_transfer_set_holds_motions_the_default_never_shows():
    """Table 12's probe set: its temporal classes are new motion families (none of the default's class names),
    its static classes the default's shapes in new clips (another seed), every class its own mirror."""
    default, transfer = build_classes(PRESETS["default"]), build_classes(PRESETS["transfer"])
    temporal = {c.info.name for c in transfer if c.info.group == "temporal"}
    assert len(temporal) == 6 and not temporal & {c.info.name for c in default}
    assert all(c.info.flip_to == c.info.id for c in transfer)
    static = next(c for c in transfer if c.info.group == "static")
    same = next(c for c in default if c.info.name == static.info.name)
    assert not np.array_equal(render_clip(PRESETS["transfer"], static, "train", 0),
                              render_clip(PRESETS["default"], same, "train", 0))


def test_a_directory_written_before_motion_families_existed_is_the_same_spec(tmp_path):
    out = generate(SMALL, tmp_path / "d", workers=1, progress=False)
    meta = json.loads((out / "synth.json").read_text())
    del meta["spec"]["motion_families"]
    (out / "synth.json").write_text(json.dumps(meta))
    generate(SMALL, out, workers=1, progress=False)  # no "different spec"


@pytest.mark.parametrize("bad", [{"temporal_pairs": 0}, {"static_classes": 99}, {"size": 31}, {"frames": 1},
                                 {"motion_families": "other"}, {"motion_families": "transfer", "temporal_pairs": 4}])
def test_spec_validation(bad):
    with pytest.raises(ValueError):
        SynthSpec(**{**SMALL.__dict__, **bad}).validate()

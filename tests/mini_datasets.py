"""Tiny Kinetics-400 and Something-Something-v2 in their official formats, for the data-preparation tests.

Kinetics-400 (as served by the CVDF mirror): ``<split>/k400_<split>_path.txt`` naming ``part_N.tar.gz`` tarballs of
flat ``<youtube_id>_<start:06d>_<end:06d>.mp4`` H.264 clips, ``annotations/<split>.csv`` with quoted labels, and
``replacement_for_corrupted_k400.tgz`` (``replacement_for_corrupted_k400/<clip>.mp4``).
Something-Something-v2 (as downloaded by a user): one .tar.gz split into parts ``20bn-something-something-v2-NN``
(some wrapped in zips), holding ``20bn-something-something-v2/<id>.webm`` VP9 clips, and ``labels/*.json``.
"""

from __future__ import annotations

import io
import json
import tarfile
import zipfile
from pathlib import Path

import numpy as np

# Labels that trip naive parsers: spaces, capitals, parentheses, an apostrophe, and the two skiing classes whose
# order flips when punctuation is stripped before sorting.
K400_LABELS = [
    "skiing crosscountry",
    "passing American football (in game)",
    "massaging person's head",
    "abseiling",
    "skiing (not slalom or crosscountry)",
    "air drumming",
    "yoga",  # with the two skiing classes: Table 13's groups (static; temporal)
]


def encode_clip(path: Path, seed: int, size=(96, 64), frames: int = 8, codec: str = "libx264") -> None:
    import av

    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, (size[1] // 8, size[0] // 8, 3), dtype=np.uint8)
    fmt = "webm" if codec == "libvpx-vp9" else "mp4"
    with av.open(str(path), mode="w", format=fmt) as container:
        stream = container.add_stream(codec, rate=12)
        stream.width, stream.height, stream.pix_fmt = size[0], size[1], "yuv420p"
        for t in range(frames):
            image = np.roll(np.kron(base, np.ones((8, 8, 1), dtype=np.uint8)), 4 * t, axis=1)
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
            frame.pts = t
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def _tar_gz(path: Path, members: dict[str, bytes]) -> None:
    with tarfile.open(path, "w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


def build_mini_k400(server_root: Path, work: Path, size=(144, 96), frames: int = 8, labels=K400_LABELS) -> dict:
    """Write the mirror's files under ``server_root`` (clips of ``size`` pixels, width x height, and ``frames``
    frames, 2 training and 1 validation clip of each of ``labels``); return what a correct preparation must find."""
    work.mkdir(parents=True, exist_ok=True)
    rows = {"train": [], "val": []}
    clips = {"train": {}, "val": {}}
    seed = 0
    for split, per_class in (("train", 2), ("val", 1)):
        for label in labels:
            for i in range(per_class):
                seed += 1
                ytid = f"-{seed:03d}ab_cd{i}"[:11].ljust(11, "x")
                start = 10 * seed
                name = f"{ytid}_{start:06d}_{start + 10:06d}.mp4"
                encode_clip(work / name, seed, size=size, frames=frames)
                rows[split].append((label, ytid, start, start + 10, split))
                clips[split][name] = (work / name).read_bytes()
    train_names = list(clips["train"])
    missing = train_names[0]  # listed in the CSV, in no tarball (as ~2.5% of real Kinetics-400)
    corrupt = train_names[1]  # garbage in the tarball, not replaced: the preprocessing must skip and count it
    replaced = train_names[2]  # garbage in the tarball, a good copy in the replacement tarball
    good_replacement = clips["train"][replaced]
    del clips["train"][missing]
    clips["train"][corrupt] = b"\x00\x00\x00\x18ftypmp42 truncated"
    clips["train"][replaced] = b"not a video either"

    for split in ("train", "val"):
        (server_root / split).mkdir(parents=True, exist_ok=True)
        names = list(clips[split])
        parts = [names[: len(names) // 2], names[len(names) // 2:]] if split == "train" else [names]
        urls = []
        for n, members in enumerate(parts):
            # Members carry a leading "./" as in tarballs made with `tar -C dir .`; extraction keeps file names only.
            _tar_gz(server_root / split / f"part_{n}.tar.gz", {f"./{m}": clips[split][m] for m in members})
            urls.append(f"https://s3.amazonaws.com/kinetics/400/{split}/part_{n}.tar.gz")
        (server_root / split / f"k400_{split}_path.txt").write_text("\n".join(urls) + "\n")
        (server_root / "annotations").mkdir(exist_ok=True)
        # As the mirror writes them: a label with a space is quoted ("air drumming"), one without is not.
        lines = ["label,youtube_id,time_start,time_end,split,is_cc"]
        for label, ytid, start, end, sp in rows[split]:
            quoted = f'"{label}"' if " " in label else label
            lines.append(f"{quoted},{ytid},{start},{end},{sp},0")
        (server_root / "annotations" / f"{split}.csv").write_text("\n".join(lines) + "\n")
    _tar_gz(server_root / "replacement_for_corrupted_k400.tgz",
            {f"replacement_for_corrupted_k400/{replaced}": good_replacement})
    sorted_labels = sorted(labels)
    return {
        "labels": sorted_labels,
        "train_listed": len(rows["train"]),
        "val_listed": len(rows["val"]),
        "missing": missing,
        "corrupt": corrupt,
        "replaced": replaced,
        "label_of": {f"{y}_{s:06d}_{e:06d}.mp4": sorted_labels.index(lab) for split in rows
                     for lab, y, s, e, _ in rows[split]},
    }


SSV2_TEMPLATES = [
    "Approaching [something] with your camera",
    "Pretending to put [something] into [something]",
    "Putting [something], [something] and [something] on the table",
    "[Something] falling like a feather or paper",
]


def build_mini_ssv2(downloads: Path, work: Path, zipped_parts=(0, 2)) -> dict:
    """Write the user's download into ``downloads/``; return what a correct preparation must find."""
    work.mkdir(parents=True, exist_ok=True)
    downloads.mkdir(parents=True, exist_ok=True)
    members, train, val = {}, [], []
    for i in range(12):
        vid = str(1000 + i)
        encode_clip(work / f"{vid}.webm", 100 + i, size=(64, 48), codec="libvpx-vp9")
        members[f"20bn-something-something-v2/{vid}.webm"] = (work / f"{vid}.webm").read_bytes()
        template = SSV2_TEMPLATES[i % len(SSV2_TEMPLATES)]
        entry = {"id": vid, "label": template.replace("[something]", "a cup"), "template": template,
                 "placeholders": ["a cup"]}
        (val if i in (3, 7, 10, 11) else train).append(entry)
    train.append({"id": "9999", "label": "gone", "template": SSV2_TEMPLATES[0], "placeholders": []})  # no clip
    whole = io.BytesIO()
    with tarfile.open(fileobj=whole, mode="w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    blob = whole.getvalue()
    cuts = [0, len(blob) // 3, 2 * len(blob) // 3, len(blob)]
    for n in range(3):
        name = f"20bn-something-something-v2-{n:02d}"
        piece = blob[cuts[n]: cuts[n + 1]]
        if n in zipped_parts:
            with zipfile.ZipFile(downloads / f"{name}.zip", "w") as zf:
                zf.writestr(name, piece)
        else:
            (downloads / name).write_bytes(piece)
    labels = downloads / "labels"
    labels.mkdir(exist_ok=True)
    # labels.json: template (brackets removed) -> id as a string, in alphabetical order as the release has it.
    names = sorted(t.replace("[", "").replace("]", "") for t in SSV2_TEMPLATES)
    (labels / "labels.json").write_text(json.dumps({name: str(i) for i, name in enumerate(names)}))
    (labels / "train.json").write_text(json.dumps(train))
    (labels / "validation.json").write_text(json.dumps(val))
    return {"classes": names, "train": train, "val": val}

"""A synthetic video benchmark on which temporal modelling provably matters.

Two groups of classes, mirroring Temporal-50 / Static-50 of the paper's Table 13:

* **temporal** classes come in *twins* that differ only in the order of frames (left->right vs right->left,
  upward vs downward, growing vs shrinking, clockwise vs counterclockwise, approaching vs moving away). A twin's
  clip is rendered by rendering the first class's clip and reversing it in time, so the reversed clip of one
  twin is, by construction, a clip of the other: a model that averages frames cannot beat chance within a pair.
* **static** classes are decided by appearance alone: large, high-contrast shapes and textures, drifting slowly
  in random directions (their motion says nothing about the class).

Nuisances: a cluttered background of soft blobs, small drifting distractor dots, random speed, start position,
size and colour, and a small per-frame camera shake. Every shape is left-right symmetric or has a declared mirror
class (``flip_to``), so horizontal-flip augmentation can remap labels exactly.

Frames are drawn with supersampling and written as real H.264 MP4 files (PyAV, yuv420p) with Kinetics-format
annotation lists. Everything is a function of the seed: a clip's random stream depends on (seed, class, split,
clip index) only, so any number of worker processes produces the same files.
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from ila.data.annotations import ClassInfo, write_labels, write_video_list
from ila.errors import ConfigError
from ila.progress import progress_bar

log = logging.getLogger(__name__)

# --------------------------------------------------------------------------- spec and presets


@dataclass(frozen=True)
class SynthSpec:
    temporal_pairs: int = 5
    static_classes: int = 10
    train_per_class: int = 100
    val_per_class: int = 30
    frames: int = 16
    size: int = 32
    fps: int = 8
    seed: int = 0
    # Frames are drawn at size * supersample and averaged down: smooth edges, sub-pixel motion.
    supersample: int = 4
    # x264 constant rate factor: low keeps small shapes and colours faithful through yuv420p.
    crf: int = 12
    # Which twin families the temporal classes come from: 'default' (TEMPORAL_PAIRS: translations, growth,
    # rotation, approach) or 'transfer' (TRANSFER_PAIRS: motions the default benchmark never shows, for Table 12's
    # linear probe).
    motion_families: str = "default"

    def validate(self) -> None:
        if self.motion_families not in MOTION_FAMILIES:
            raise ConfigError(f"motion_families must be one of {sorted(MOTION_FAMILIES)}, got {self.motion_families!r}")
        pairs = MOTION_FAMILIES[self.motion_families]
        if not 1 <= self.temporal_pairs <= len(pairs):
            raise ConfigError(f"temporal_pairs must be in 1..{len(pairs)} for the {self.motion_families!r} motion "
                              f"families, got {self.temporal_pairs}")
        if not 0 <= self.static_classes <= len(STATIC_SHAPES):
            raise ConfigError(f"static_classes must be in 0..{len(STATIC_SHAPES)}, got {self.static_classes}")
        if self.size < 16 or self.size % 2:
            raise ConfigError(f"size must be an even number >= 16 (H.264 with yuv420p), got {self.size}")
        if self.frames < 2:
            raise ConfigError(f"frames must be >= 2, got {self.frames}")
        if self.train_per_class < 1 or self.val_per_class < 1:
            raise ConfigError("train_per_class and val_per_class must be >= 1")


PRESETS: dict[str, SynthSpec] = {
    # Tests: 9 classes x 14 clips, made in seconds.
    "tiny": SynthSpec(temporal_pairs=3, static_classes=3, train_per_class=10, val_per_class=4),
    # The embedded Snakemake default: 20 classes (10 temporal, 10 static), 100 train / 90 val clips each. The
    # validation set is large because a comparison's error has a term per video and evaluating is cheap beside
    # training (docs/findings.md, "Power and recipe").
    "default": SynthSpec(val_per_class=90),
    # Table 12's probe set: the three transfer families (6 temporal classes) and the 10 static shapes, drawn with
    # another seed (new clips of every class), 100 train / 30 val clips per class.
    "transfer": SynthSpec(temporal_pairs=3, motion_families="transfer", seed=1),
}


# --------------------------------------------------------------------------- drawing


class Canvas:
    """Supersampled drawing surface; coordinates are in output pixels, y pointing down."""

    def __init__(self, size: int, supersample: int):
        self.size, self.ss = size, supersample
        axis = (np.arange(size * supersample, dtype=np.float32) + 0.5) / supersample
        self.y, self.x = np.meshgrid(axis, axis, indexing="ij")

    def new(self, colour: np.ndarray) -> np.ndarray:
        return np.broadcast_to(colour.astype(np.float32), self.x.shape + (3,)).copy()

    def paint(self, img: np.ndarray, mask: np.ndarray, colour: np.ndarray, alpha: float = 1.0) -> None:
        m = mask.astype(np.float32)[..., None] * alpha
        img *= 1 - m
        img += m * colour.astype(np.float32)

    def downsample(self, img: np.ndarray) -> np.ndarray:
        s, ss = self.size, self.ss
        small = img.reshape(s, ss, s, ss, 3).mean(axis=(1, 3))
        return np.clip(np.rint(small * 255), 0, 255).astype(np.uint8)


def shape_mask(kind: str, dx: np.ndarray, dy: np.ndarray, r: float, angle: float = 0.0) -> np.ndarray:
    """Mask of a shape of radius ``r`` centred at the origin of (dx, dy); all are left-right symmetric
    except the clock hand, which has a mirror class."""
    ax, ay = np.abs(dx), np.abs(dy)
    cheb = np.maximum(ax, ay)
    dist = np.hypot(dx, dy)
    if kind == "square":
        return cheb <= r
    if kind == "disc":
        return dist <= r
    if kind == "triangle":  # apex up
        return (dy <= r) & (ax <= (dy + r) / 2)
    if kind == "plus":
        return ((ax <= r / 3) & (ay <= r)) | ((ay <= r / 3) & (ax <= r))
    if kind == "x":
        u, v = (dx + dy) / math.sqrt(2), (dx - dy) / math.sqrt(2)
        return ((np.abs(u) <= r / 3.2) & (np.abs(v) <= r)) | ((np.abs(v) <= r / 3.2) & (np.abs(u) <= r))
    if kind == "ring":
        return (dist <= r) & (dist >= 0.55 * r)
    if kind == "hollow_square":
        return (cheb <= r) & (cheb >= 0.55 * r)
    if kind == "diamond":
        return ax + ay <= r
    if kind == "striped_square":  # horizontal stripes
        return (cheb <= r) & (np.floor((dy + r) / (r / 2)) % 2 == 0)
    if kind == "checkered_square":
        return (cheb <= r) & ((np.floor((dx + r) / (r / 2)) + np.floor((dy + r) / (r / 2))) % 2 == 0)
    if kind == "hand":  # a stick from the centre with a ball at its tip, pointing at ``angle``
        ux, uy = math.cos(angle), math.sin(angle)
        along = dx * ux + dy * uy
        across = np.abs(-dx * uy + dy * ux)
        stick = (along >= -0.5) & (along <= r) & (across <= 0.7)
        tip = np.hypot(dx - r * ux, dy - r * uy) <= 1.8
        return stick | tip | (dist <= 1.2)
    raise ValueError(f"unknown shape {kind!r}")


def _bright_colour(rng: np.random.Generator) -> np.ndarray:
    import colorsys

    return np.array(colorsys.hsv_to_rgb(rng.random(), rng.uniform(0.5, 1.0), rng.uniform(0.8, 1.0)))


def _dark_colour(rng: np.random.Generator) -> np.ndarray:
    import colorsys

    return np.array(colorsys.hsv_to_rgb(rng.random(), rng.uniform(0.2, 0.7), rng.uniform(0.08, 0.3)))


@dataclass
class Scene:
    """What stays fixed over a clip: background, distractors and camera shake."""

    background: np.ndarray  # supersampled image
    distractors: list[tuple[np.ndarray, np.ndarray, np.ndarray, float]] = field(default_factory=list)
    shake: np.ndarray = field(default_factory=lambda: np.zeros((0, 2)))


def _make_scene(canvas: Canvas, rng: np.random.Generator, frames: int) -> Scene:
    size = canvas.size
    bg = canvas.new(_dark_colour(rng))
    for _ in range(rng.integers(3, 7)):  # soft low-contrast blobs
        c = rng.uniform(0, size, 2)
        sigma = rng.uniform(2.5, 7.0)
        blob = np.exp(-((canvas.x - c[0]) ** 2 + (canvas.y - c[1]) ** 2) / (2 * sigma**2))
        canvas.paint(bg, blob, _dark_colour(rng) * 1.6, alpha=0.8)
    distractors = []
    for _ in range(rng.integers(0, 3)):
        start = rng.uniform(2, size - 2, 2)
        velocity = rng.normal(0, 0.35, 2)  # symmetric: reversal gives an equally likely path
        distractors.append((start, velocity, _bright_colour(rng) * 0.8, float(rng.uniform(0.9, 1.4))))
    shake = rng.integers(-1, 2, size=(frames, 2)).astype(np.float32) * 0.75
    return Scene(bg, distractors, shake)


Drawer = Callable[[Canvas, np.ndarray, int, np.ndarray], None]  # (canvas, img, frame, offset)


def _render(canvas: Canvas, scene: Scene, frames: int, draw: Drawer) -> np.ndarray:
    out = np.empty((frames, canvas.size, canvas.size, 3), dtype=np.uint8)
    for t in range(frames):
        off = scene.shake[t]
        img = scene.background.copy()
        for start, vel, colour, r in scene.distractors:
            p = start + vel * t + off
            canvas.paint(img, shape_mask("disc", canvas.x - p[0], canvas.y - p[1], r), colour)
        draw(canvas, img, t, off)
        out[t] = canvas.downsample(img)
    return out


def _lerp(a: np.ndarray, b: np.ndarray, t: int, frames: int) -> np.ndarray:
    return a + (b - a) * (t / (frames - 1))


# ----- temporal classes: each draws the *forward* member of a twin pair; the twin is its time reversal.


def _draw_translation(axis: int) -> Callable:
    def make(canvas: Canvas, rng: np.random.Generator, frames: int) -> Drawer:
        size = canvas.size
        r = rng.uniform(2.5, 4.0)
        kind = rng.choice(["disc", "square"])
        colour = _bright_colour(rng)
        travel = rng.uniform(0.4, 0.65) * size  # speed nuisance
        margin = r + 1
        lo = rng.uniform(margin, size - margin - travel)
        across = rng.uniform(margin, size - margin)
        start, end = np.empty(2), np.empty(2)
        start[axis], end[axis] = lo, lo + travel
        start[1 - axis] = end[1 - axis] = across
        if axis == 1:  # vertical: forward member moves up
            start[1], end[1] = end[1], start[1]

        def draw(cv: Canvas, img: np.ndarray, t: int, off: np.ndarray) -> None:
            p = _lerp(start, end, t, frames) + off
            cv.paint(img, shape_mask(kind, cv.x - p[0], cv.y - p[1], r), colour)

        return draw

    return make


def _draw_growing(canvas: Canvas, rng: np.random.Generator, frames: int) -> Drawer:
    size = canvas.size
    r0, r1 = rng.uniform(1.5, 2.5), rng.uniform(6.0, 8.0)
    colour = _bright_colour(rng)
    start = rng.uniform(r1 + 1, size - r1 - 1, 2)
    end = start + rng.normal(0, 1.0, 2)

    def draw(cv: Canvas, img: np.ndarray, t: int, off: np.ndarray) -> None:
        p = _lerp(start, end, t, frames) + off
        r = r0 + (r1 - r0) * t / (frames - 1)
        cv.paint(img, shape_mask("disc", cv.x - p[0], cv.y - p[1], r), colour)

    return draw


def _draw_rotation(canvas: Canvas, rng: np.random.Generator, frames: int) -> Drawer:
    size = canvas.size
    r = rng.uniform(6.0, 9.0)
    colour = _bright_colour(rng)
    centre = rng.uniform(r + 2.5, size - r - 2.5, 2)
    a0 = rng.uniform(0, 2 * math.pi)
    sweep = math.radians(rng.uniform(180, 300))  # increasing angle with y down = clockwise on screen

    def draw(cv: Canvas, img: np.ndarray, t: int, off: np.ndarray) -> None:
        p = centre + off
        angle = a0 + sweep * t / (frames - 1)
        cv.paint(img, shape_mask("hand", cv.x - p[0], cv.y - p[1], r, angle), colour)

    return draw


def _draw_approach(canvas: Canvas, rng: np.random.Generator, frames: int) -> Drawer:
    size = canvas.size
    anchor_r, mover_r = rng.uniform(2.5, 3.5), rng.uniform(2.0, 3.0)
    anchor_colour, mover_colour = _bright_colour(rng), _bright_colour(rng)
    anchor_kind, mover_kind = rng.choice(["square", "diamond"]), rng.choice(["disc", "square"])
    d0, d1 = rng.uniform(0.36, 0.46) * size, rng.uniform(anchor_r + mover_r + 1.0, anchor_r + mover_r + 2.5)
    for _ in range(100):  # a direction and anchor such that the whole path stays in frame
        theta = rng.uniform(0, 2 * math.pi)
        u = np.array([math.cos(theta), math.sin(theta)])
        anchor = rng.uniform(anchor_r + 1, size - anchor_r - 1, 2)
        far = anchor + d0 * u
        if np.all(far > mover_r + 1) and np.all(far < size - mover_r - 1):
            break
    near = anchor + d1 * u

    def draw(cv: Canvas, img: np.ndarray, t: int, off: np.ndarray) -> None:
        a = anchor + off
        cv.paint(img, shape_mask(anchor_kind, cv.x - a[0], cv.y - a[1], anchor_r), anchor_colour)
        p = _lerp(far, near, t, frames) + off
        cv.paint(img, shape_mask(mover_kind, cv.x - p[0], cv.y - p[1], mover_r), mover_colour)

    return draw


def _slow_drift(rng: np.random.Generator, size: int, r: float, margin: float) -> Callable[[int], np.ndarray]:
    """A shape's centre at frame t: a random start at least ``margin`` from the edges, drifting slowly in a random
    direction (its motion says nothing about the class), kept inside the frame."""
    start = rng.uniform(margin, size - margin, 2)
    drift = rng.normal(0, 0.15, 2)
    return lambda t: np.clip(start + drift * t, r + 1, size - r - 1)


# ----- transfer families (Table 12's probe set): motions the default benchmark never shows, each left-right
# symmetric as a class (a flipped clip is a clip of the same class), so every class is its own mirror.


def _draw_falling(canvas: Canvas, rng: np.random.Generator, frames: int) -> Drawer:
    """An object falling diagonally (down and to the left or right); its reverse rises diagonally."""
    size = canvas.size
    r = rng.uniform(2.5, 4.0)
    kind = rng.choice(["disc", "square"])
    colour = _bright_colour(rng)
    travel = rng.uniform(0.35, 0.55) * size
    margin = r + 1
    start = rng.uniform(margin, size - margin - travel, 2)
    end = start + travel
    if rng.random() < 0.5:  # down and to the left
        start[0], end[0] = end[0], start[0]

    def draw(cv: Canvas, img: np.ndarray, t: int, off: np.ndarray) -> None:
        p = _lerp(start, end, t, frames) + off
        cv.paint(img, shape_mask(kind, cv.x - p[0], cv.y - p[1], r), colour)

    return draw


def _draw_fading_in(canvas: Canvas, rng: np.random.Generator, frames: int) -> Drawer:
    """A shape appearing out of the background (opacity 0 -> 1); its reverse fades out."""
    size = canvas.size
    r = rng.uniform(4.0, 6.5)
    kind = rng.choice(["disc", "square", "diamond"])
    colour = _bright_colour(rng)
    centre = _slow_drift(rng, size, r, r + 1.5)

    def draw(cv: Canvas, img: np.ndarray, t: int, off: np.ndarray) -> None:
        p = centre(t) + off
        cv.paint(img, shape_mask(kind, cv.x - p[0], cv.y - p[1], r), colour, alpha=t / (frames - 1))

    return draw


def _draw_reddening(canvas: Canvas, rng: np.random.Generator, frames: int) -> Drawer:
    """A shape whose colour turns from blue to red; its reverse turns from red to blue."""
    import colorsys

    size = canvas.size
    r = rng.uniform(4.0, 6.5)
    kind = rng.choice(["disc", "square", "triangle"])
    saturation, value = rng.uniform(0.7, 1.0), rng.uniform(0.8, 1.0)
    blue, red = rng.uniform(0.58, 0.68), rng.uniform(-0.04, 0.04)  # hues
    centre = _slow_drift(rng, size, r, r + 1.5)

    def draw(cv: Canvas, img: np.ndarray, t: int, off: np.ndarray) -> None:
        p = centre(t) + off
        hue = (blue + (red - blue) * t / (frames - 1)) % 1.0
        cv.paint(img, shape_mask(kind, cv.x - p[0], cv.y - p[1], r),
                 np.array(colorsys.hsv_to_rgb(hue, saturation, value)))

    return draw


def _draw_static(kind: str) -> Callable:
    def make(canvas: Canvas, rng: np.random.Generator, frames: int) -> Drawer:
        size = canvas.size
        r = rng.uniform(5.5, 8.0)
        colour = _bright_colour(rng)
        centre = _slow_drift(rng, size, r, r + 1)

        def draw(cv: Canvas, img: np.ndarray, t: int, off: np.ndarray) -> None:
            p = centre(t) + off
            cv.paint(img, shape_mask(kind, cv.x - p[0], cv.y - p[1], r), colour)

        return draw

    return make


@dataclass(frozen=True)
class TwinPair:
    forward: str
    backward: str
    make: Callable
    mirror_swaps: bool  # does a horizontal flip turn one member into the other?


TEMPORAL_PAIRS: list[TwinPair] = [
    TwinPair("an object moving from left to right", "an object moving from right to left", _draw_translation(0), True),
    TwinPair("an object moving upward", "an object moving downward", _draw_translation(1), False),
    TwinPair("a disc growing", "a disc shrinking", _draw_growing, False),
    TwinPair("a hand rotating clockwise", "a hand rotating counterclockwise", _draw_rotation, True),
    TwinPair("an object approaching another object", "an object moving away from another object", _draw_approach,
             False),
]

TRANSFER_PAIRS: list[TwinPair] = [
    TwinPair("an object falling diagonally", "an object rising diagonally", _draw_falling, False),
    TwinPair("a shape fading in", "a shape fading out", _draw_fading_in, False),
    TwinPair("a shape turning from blue to red", "a shape turning from red to blue", _draw_reddening, False),
]

MOTION_FAMILIES: dict[str, list[TwinPair]] = {"default": TEMPORAL_PAIRS, "transfer": TRANSFER_PAIRS}

STATIC_SHAPES: list[tuple[str, str]] = [
    ("square", "a big square"),
    ("disc", "a big disc"),
    ("triangle", "a big triangle"),
    ("plus", "a big plus sign"),
    ("x", "a big x shape"),
    ("ring", "a big ring"),
    ("hollow_square", "a big hollow square"),
    ("diamond", "a big diamond"),
    ("striped_square", "a striped square"),
    ("checkered_square", "a checkered square"),
]


# --------------------------------------------------------------------------- classes and clips


@dataclass(frozen=True)
class SynthClass:
    info: ClassInfo
    make: Callable
    reverse: bool  # render the twin's forward clip and play it backwards


def build_classes(spec: SynthSpec) -> list[SynthClass]:
    classes: list[SynthClass] = []
    for pair in MOTION_FAMILIES[spec.motion_families][: spec.temporal_pairs]:
        a, b = len(classes), len(classes) + 1
        # Each twin's mirror image is itself, or the other twin when a horizontal flip swaps the direction.
        classes.append(SynthClass(ClassInfo(a, pair.forward, "temporal", b, b if pair.mirror_swaps else a),
                                  pair.make, False))
        classes.append(SynthClass(ClassInfo(b, pair.backward, "temporal", a, a if pair.mirror_swaps else b),
                                  pair.make, True))
    for kind, name in STATIC_SHAPES[: spec.static_classes]:
        cid = len(classes)
        classes.append(SynthClass(ClassInfo(cid, name, "static", None, cid), _draw_static(kind), False))
    return classes


SPLITS = {"train": 0, "val": 1}


def clip_rng(spec: SynthSpec, cls: SynthClass, split: str, index: int) -> np.random.Generator:
    # Twins draw from the same streams: with one (split, index) the twin's clip is exactly the reverse.
    base = cls.info.twin if cls.reverse else cls.info.id
    return np.random.default_rng([spec.seed, base, SPLITS[split], index])


def render_clip(spec: SynthSpec, cls: SynthClass, split: str, index: int) -> np.ndarray:
    """Frames ``[T, H, W, 3]`` uint8 of one clip, before encoding."""
    rng = clip_rng(spec, cls, split, index)
    canvas = Canvas(spec.size, spec.supersample)
    scene = _make_scene(canvas, rng, spec.frames)
    frames = _render(canvas, scene, spec.frames, cls.make(canvas, rng, spec.frames))
    return frames[::-1].copy() if cls.reverse else frames


def rgb_to_yuv420p(frame: np.ndarray) -> np.ndarray:
    """BT.601 limited-range YUV 4:2:0 planes stacked as ``[H * 3 / 2, W]`` (PyAV's yuv420p ndarray layout).

    Done here rather than by swscale inside PyAV so that the encoder's input is a fixed function of the frames,
    whatever FFmpeg build PyAV bundles.
    """
    rgb = frame.astype(np.float32) / 255.0
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    y = 16 + 65.481 * r + 128.553 * g + 24.966 * b
    cb = 128 - 37.797 * r - 74.203 * g + 112.0 * b
    cr = 128 + 112.0 * r - 93.786 * g - 18.214 * b
    h, w = y.shape

    def sub(c: np.ndarray) -> np.ndarray:
        return c.reshape(h // 2, 2, w // 2, 2).mean(axis=(1, 3)).reshape(h // 4, w)

    planes = np.concatenate([y, sub(cb), sub(cr)], axis=0)
    return np.clip(np.rint(planes), 0, 255).astype(np.uint8)


def encode_mp4(frames: np.ndarray, path: Path, fps: int, crf: int) -> None:
    """Write H.264 MP4 atomically (temp file + rename), reproducibly.

    With x264's lookahead and macroblock tree on, the same frames were seen here to encode to different bytes
    from call to call on these tiny frames; one thread and no lookahead made every encode identical.
    """
    import av

    tmp = path.with_name(path.stem + ".part.mp4")
    with av.open(str(tmp), mode="w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height = frames.shape[2], frames.shape[1]
        stream.pix_fmt = "yuv420p"
        stream.thread_count = 1
        stream.options = {"crf": str(crf), "preset": "medium", "x264-params": "threads=1:mbtree=0:rc-lookahead=0"}
        for i, frame in enumerate(frames):
            vf = av.VideoFrame.from_ndarray(rgb_to_yuv420p(frame), format="yuv420p")
            vf.pts = i
            for packet in stream.encode(vf):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    os.replace(tmp, path)


def _slug(name: str) -> str:
    return "".join(ch if ch.isalnum() else "_" for ch in name.lower()).strip("_")


def _job(args: tuple[SynthSpec, int, str, int, str]) -> None:
    spec, cid, split, index, path = args
    cls = build_classes(spec)[cid]
    encode_mp4(render_clip(spec, cls, split, index), Path(path), spec.fps, spec.crf)


SYNTH_FORMAT = 1


def _meta(spec: SynthSpec) -> dict:
    return {"format": SYNTH_FORMAT, "spec": asdict(spec)}


def spec_mismatch(out_dir: str | Path, spec: SynthSpec, wanted: str = "requested") -> str | None:
    """How the dataset in ``out_dir`` differs from ``spec``, per its ``synth.json`` (e.g. ``"frames: 32 there, 16
    requested"``), or None when it is the same spec or there is no ``synth.json``. The one comparison of a dataset
    on disk with a spec: ``generate`` refuses to mix two specs in one directory, and the workflow refuses to train
    on a directory a user regenerated with other options. ``wanted`` names where ``spec`` comes from."""
    meta_path = Path(out_dir) / "synth.json"
    if not meta_path.exists():
        return None
    try:
        old = json.loads(meta_path.read_text())
    except json.JSONDecodeError as exc:
        return f"unreadable ({exc})"
    if not isinstance(old, dict) or not isinstance(old.get("spec", {}), dict):
        return "unreadable (expected {\"format\": ..., \"spec\": {...}})"
    # A spec written before a field existed was made with that field's default.
    have, want = {**asdict(SynthSpec()), **old.get("spec", {})}, asdict(spec)
    diffs = [f"{key}: {have.get(key, '(absent)')} there, {want.get(key, '(absent)')} {wanted}"
             for key in dict.fromkeys([*want, *have]) if have.get(key) != want.get(key)]
    if old.get("format") != SYNTH_FORMAT:
        diffs.insert(0, f"format: {old.get('format')} there, {SYNTH_FORMAT} {wanted}")
    return "; ".join(diffs) or None


def generate(spec: SynthSpec, out_dir: str | Path, workers: int | None = None, progress: bool = True) -> Path:
    """Write videos, ``train.txt``, ``val.txt``, ``labels.csv`` and ``synth.json`` under ``out_dir``.

    Resumable: videos already present from an interrupted run with the same spec are kept. The annotation
    lists are written last, so a directory with lists is complete.
    """
    spec.validate()
    out = Path(out_dir)
    differs = spec_mismatch(out, spec)
    if differs:
        raise FileExistsError(
            f"{out} holds a synthetic dataset made with a different spec ({out / 'synth.json'}: {differs}); "
            "choose another output directory or delete it"
        )
    out.mkdir(parents=True, exist_ok=True)
    (out / "synth.json").write_text(json.dumps(_meta(spec), indent=2) + "\n")
    classes = build_classes(spec)
    lists: dict[str, list[tuple[str, int]]] = {"train": [], "val": []}
    jobs = []
    for cls in classes:
        folder = out / "videos" / _slug(cls.info.name)
        folder.mkdir(parents=True, exist_ok=True)
        for split, count in (("train", spec.train_per_class), ("val", spec.val_per_class)):
            for i in range(count):
                path = folder / f"{split}_{i:04d}.mp4"
                lists[split].append((str(path.relative_to(out)), cls.info.id))
                if not path.exists():
                    jobs.append((spec, cls.info.id, split, i, str(path)))
    workers = workers or os.cpu_count() or 1
    bar = progress_bar(total=len(jobs), desc=f"synth {out.name}", unit="clip", disable=not progress or None)
    if workers == 1 or len(jobs) < 32:
        for job in jobs:
            _job(job)
            bar.update()
    else:
        with ProcessPoolExecutor(workers) as pool:
            for _ in pool.map(_job, jobs, chunksize=16):
                bar.update()
    bar.close()
    write_labels(out / "labels.csv", [c.info for c in classes])
    for split, entries in lists.items():
        write_video_list(out / f"{split}.txt", entries)
    log.info("%s: %d videos of %d classes (%d new)", out, sum(map(len, lists.values())), len(classes), len(jobs))
    return out

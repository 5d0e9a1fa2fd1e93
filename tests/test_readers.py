from fractions import Fraction

import numpy as np
import pytest

from ila.data.annotations import read_labels, read_video_list
from ila.data.readers import VideoDecodeError, available_backends, open_video, resolve_backend

BACKENDS = ["decord", "pyav"]


def _videos(root, n=6):
    records = read_video_list(root / "val.txt", len(read_labels(root / "labels.csv")))
    return [r.path for r in records][:: max(1, 36 // n)][:n]


@pytest.mark.skipif("decord" not in available_backends(), reason="decord is not installed on this platform")
def test_decord_and_pyav_decode_identical_frames(tiny_dataset):
    for path in _videos(tiny_dataset):
        d, p = open_video(path, "decord"), open_video(path, "pyav")
        assert len(d) == len(p) == 16
        idx = list(range(len(d)))
        np.testing.assert_array_equal(d.get_frames(idx), p.get_frames(idx))
        # Sparse, unordered and repeated requests agree too.
        np.testing.assert_array_equal(d.get_frames([9, 2, 2, 15]), p.get_frames([9, 2, 2, 15]))


def test_auto_prefers_pyav_when_installed():
    expected = "pyav" if "pyav" in available_backends() else "decord"
    assert resolve_backend("auto") == expected
    with pytest.raises(ValueError, match="unknown video reader"):
        resolve_backend("opencv")


@pytest.mark.parametrize("backend", BACKENDS)
def test_out_of_range_index_is_an_error(tiny_dataset, backend):
    if backend not in available_backends():
        pytest.skip(f"{backend} not installed")
    r = open_video(_videos(tiny_dataset, 1)[0], backend)
    with pytest.raises(IndexError):
        r.get_frames([0, len(r)])


def _damage(tmp_path, src, kind):
    path = tmp_path / f"{kind}.mp4"
    data = src.read_bytes()
    if kind == "truncated":
        path.write_bytes(data[: len(data) // 2])
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "garbage":
        path.write_bytes(np.random.default_rng(0).bytes(4096))
    elif kind == "missing":
        pass
    return path


@pytest.mark.parametrize("kind", ["truncated", "empty", "garbage", "missing"])
@pytest.mark.parametrize("backend", BACKENDS)
def test_damaged_files_raise_decode_error_naming_the_file(tiny_dataset, tmp_path, backend, kind):
    if backend not in available_backends():
        pytest.skip(f"{backend} not installed")
    path = _damage(tmp_path, _videos(tiny_dataset, 1)[0], kind)
    with pytest.raises(VideoDecodeError, match=kind):
        r = open_video(path, backend)
        r.get_frames(range(len(r)))


def _encode(path, frames=60, gop=10, codec="libx264", vfr=False, bframes=None):
    import av

    rng = np.random.default_rng(1)
    base = np.kron(rng.integers(0, 256, (8, 12, 3), dtype=np.uint8), np.ones((8, 8, 1), dtype=np.uint8))
    with av.open(str(path), "w", format="webm" if codec == "libvpx-vp9" else "mp4") as out:
        stream = out.add_stream(codec, rate=25)
        stream.width, stream.height, stream.pix_fmt = 96, 64, "yuv420p"
        stream.codec_context.gop_size = gop
        if bframes is not None:
            stream.codec_context.max_b_frames = bframes
        if vfr:
            stream.codec_context.time_base = Fraction(1, 1000)
        for t in range(frames):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(np.roll(base, 3 * t, axis=1)), format="rgb24")
            # Irregular gaps (40, 40, 80 ms, ...) where asked: frame i is still the i-th in presentation order.
            frame.pts = (40 * t + 40 * (t // 3)) if vfr else t
            frame.time_base = Fraction(1, 1000) if vfr else Fraction(1, 25)
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


def _all_frames_sequentially(path):
    import av

    with av.open(str(path)) as container:
        return np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])


class _CountingContainer:
    """A container whose decoded frames are counted (the reader's decoding work)."""

    def __init__(self, container):
        self._container, self.decoded = container, 0

    def decode(self, *args, **kwargs):
        for frame in self._container.decode(*args, **kwargs):
            self.decoded += 1
            yield frame

    def __getattr__(self, name):
        return getattr(self._container, name)


@pytest.mark.parametrize("kind", ["h264-bframes", "h264-variable-rate", "h264-no-bframes", "vp9-webm"])
def test_seeking_pyav_reader_gives_the_frames_of_a_decode_from_the_start(tmp_path, kind):
    options = {"h264-bframes": {}, "h264-variable-rate": {"vfr": True}, "h264-no-bframes": {"bframes": 0},
               "vp9-webm": {"codec": "libvpx-vp9"}}[kind]
    path = _encode(tmp_path / f"{kind}.{'webm' if 'vp9' in kind else 'mp4'}", **options)
    expected = _all_frames_sequentially(path)
    reader = open_video(path, "pyav")
    assert len(reader) == len(expected) == 60
    rng = np.random.default_rng(0)
    requests = [list(range(60)), [59], [0, 59, 0], [31, 30, 29, 5], sorted(rng.choice(60, 8, replace=False)),
                rng.integers(0, 60, 12).tolist(), [9, 10, 11, 19, 20, 21]]  # across keyframes (every 10th frame)
    for idx in requests:
        np.testing.assert_array_equal(reader.get_frames(idx), expected[idx], err_msg=f"{kind} {idx}")
    reader.close()


def test_seeking_pyav_reader_decodes_only_from_the_keyframe_before_each_frame(tmp_path):
    path = _encode(tmp_path / "gop10.mp4", bframes=0)
    reader = open_video(path, "pyav")
    reader._container = counting = _CountingContainer(reader._container)
    reader.get_frames([52])  # keyframe at 50: frames 50, 51, 52
    assert counting.decoded <= 4, counting.decoded
    counting.decoded = 0
    reader.get_frames([3, 13, 23, 33, 43, 53])  # six groups of pictures, ~4 frames each instead of 54 from the start
    assert counting.decoded <= 6 * 5, counting.decoded


def test_torchcodec_reader_decodes_pyavs_frames(tiny_dataset, tmp_path, torchcodec_cpu):
    for path in [*_videos(tiny_dataset, 3), _encode(tmp_path / "b.mp4"), _encode(tmp_path / "v.webm",
                                                                                  codec="libvpx-vp9")]:
        tc, av_reader = open_video(path, "torchcodec"), open_video(path, "pyav")
        assert len(tc) == len(av_reader) and tc.frame_size == av_reader.frame_size
        for idx in (list(range(len(tc))), [len(tc) - 1, 0, 3, 3]):
            np.testing.assert_array_equal(tc.get_frames(idx), av_reader.get_frames(idx))

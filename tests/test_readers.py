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


def test_auto_prefers_decord_when_installed():
    expected = "decord" if "decord" in available_backends() else "pyav"
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

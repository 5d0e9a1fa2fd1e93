"""Resumable verified downloads (ila.data.download) against a loopback HTTP server."""

import hashlib
import json
import os

import pytest
from loopback import LoopbackServer

from ila.data.download import DownloadError, RemoteFile, download_file, fetch_all


@pytest.fixture
def served(tmp_path):
    root = tmp_path / "server"
    root.mkdir()
    payloads = {f"part_{i}.tar.gz": os.urandom(300_000 + 1000 * i) for i in range(3)}
    for name, data in payloads.items():
        (root / name).write_bytes(data)
    with LoopbackServer(root) as server:
        yield server, payloads


def _files(server, payloads):
    return [RemoteFile(f"{server.url}/{name}", name) for name in payloads]


def test_parallel_download_records_size_and_sha256(served, tmp_path):
    server, payloads = served
    manifest = fetch_all(_files(server, payloads), tmp_path / "dl", jobs=2, progress=False)
    for name, data in payloads.items():
        assert (tmp_path / "dl" / name).read_bytes() == data
        assert manifest.entries[name]["size"] == len(data)
        assert manifest.entries[name]["sha256"] == hashlib.sha256(data).hexdigest()
    on_disk = json.loads((tmp_path / "dl" / "manifest.json").read_text())["files"]
    assert on_disk == manifest.entries
    assert not list((tmp_path / "dl").glob("*.part"))
    # A second run fetches nothing: the files are verified against the manifest.
    before = len(server.gets(".tar.gz"))
    fetch_all(_files(server, payloads), tmp_path / "dl", jobs=2, progress=False, verify="sha256")
    assert len(server.gets(".tar.gz")) == before


def _interrupted_download(server, name, tmp_path, cut, match=None):
    """Start fetching ``name`` with the server dropping the connection after ``cut`` bytes and no retries."""
    dest = tmp_path / "dl" / name
    dest.parent.mkdir()
    server.cut_after[f"/{name}"] = cut
    with pytest.raises(DownloadError, match=match):
        download_file(f"{server.url}/{name}", dest, retries=0)
    return dest


def test_interrupted_download_is_kept_partial_and_resumed(served, tmp_path):
    server, payloads = served
    name = "part_1.tar.gz"
    # No retries: the dropped connection ends the run with the partial file kept and never taken for complete.
    dest = _interrupted_download(server, name, tmp_path, cut=100_000, match="partial file .*part_1.tar.gz.part is kept")
    assert not dest.exists()
    kept = (dest.parent / f"{name}.part").stat().st_size
    assert 0 < kept <= 100_000
    # The rerun asks only for the rest.
    fetch_all(_files(server, payloads), tmp_path / "dl", jobs=1, progress=False)
    assert server.gets(name) == [None, f"bytes={kept}-"]
    assert dest.read_bytes() == payloads[name]


def test_file_changed_on_the_server_between_runs_is_fetched_whole_not_spliced(served, tmp_path):
    server, payloads = served
    name = "part_0.tar.gz"
    dest = _interrupted_download(server, name, tmp_path, cut=150_000)
    new = os.urandom(len(payloads[name]))  # same size, other bytes: a size check alone would accept a splice
    (server.root / name).write_bytes(new)
    download_file(f"{server.url}/{name}", dest, retries=0)
    assert dest.read_bytes() == new
    # The rerun asked for the rest under the first transfer's ETag; the server, whose file changed, sent it whole.
    assert server.gets(name)[1].startswith("bytes=") and len(server.if_range) == 1
    assert not list(dest.parent.glob("*.validator"))


def test_dropped_connection_is_retried_within_one_run(served, tmp_path):
    server, payloads = served
    server.cut_after["/part_2.tar.gz"] = 150_000
    fetch_all(_files(server, payloads), tmp_path / "dl", jobs=3, progress=False, backoff=0.01)
    first, resumed = server.gets("part_2.tar.gz")
    assert first is None and resumed.startswith("bytes=") and resumed != "bytes=0-"
    assert (tmp_path / "dl" / "part_2.tar.gz").read_bytes() == payloads["part_2.tar.gz"]


def test_file_changed_on_disk_is_named_moved_aside_and_fetched_again(served, tmp_path, caplog):
    server, payloads = served
    fetch_all(_files(server, payloads), tmp_path / "dl", progress=False)
    bad = tmp_path / "dl" / "part_0.tar.gz"
    data = bytearray(bad.read_bytes())
    data[1234] ^= 0xFF  # same size, one byte flipped: only the hash sees it
    bad.write_bytes(bytes(data))
    fetch_all(_files(server, payloads), tmp_path / "dl", progress=False, verify="size")
    assert bad.read_bytes() == bytes(data)  # a size check cannot tell
    fetch_all(_files(server, payloads), tmp_path / "dl", progress=False, verify="sha256")
    assert "part_0.tar.gz failed verification (sha256" in caplog.text
    assert bad.read_bytes() == payloads["part_0.tar.gz"]
    assert (tmp_path / "dl" / "part_0.tar.gz.corrupt").read_bytes() == bytes(data)


def test_missing_file_fails_after_the_others_naming_it(served, tmp_path):
    server, payloads = served
    files = [*_files(server, payloads), RemoteFile(f"{server.url}/part_9.tar.gz", "part_9.tar.gz")]
    with pytest.raises(DownloadError, match=r"(?s)1 of 4 file\(s\) not downloaded.*part_9.tar.gz: not found on the "
                       r"server \(HTTP 404\)"):
        fetch_all(files, tmp_path / "dl", jobs=2, progress=False)
    assert all((tmp_path / "dl" / name).is_file() for name in payloads)


def test_file_copied_in_by_hand_is_checked_against_the_server(served, tmp_path):
    server, payloads = served
    (tmp_path / "dl").mkdir()
    (tmp_path / "dl" / "part_0.tar.gz").write_bytes(payloads["part_0.tar.gz"])
    (tmp_path / "dl" / "part_1.tar.gz").write_bytes(payloads["part_1.tar.gz"][:-10])  # truncated copy
    manifest = fetch_all(_files(server, payloads), tmp_path / "dl", progress=False)
    # Each is continued as a partial download: the complete one fetches nothing, the short one its last 10 bytes.
    assert server.gets("part_0.tar.gz") == []
    assert server.gets("part_1.tar.gz") == [f"bytes={len(payloads['part_1.tar.gz']) - 10}-"]
    for name, data in payloads.items():
        assert (tmp_path / "dl" / name).read_bytes() == data
        assert manifest.entries[name]["size"] == len(data)


def test_server_ignoring_range_gets_the_whole_file_again(served, tmp_path):
    server, payloads = served
    server.honour_range = False
    (tmp_path / "dl").mkdir()
    (tmp_path / "dl" / "part_2.tar.gz.part").write_bytes(payloads["part_2.tar.gz"][:1000])
    fetch_all(_files(server, payloads), tmp_path / "dl", progress=False)
    assert (tmp_path / "dl" / "part_2.tar.gz").read_bytes() == payloads["part_2.tar.gz"]


def test_part_larger_than_the_servers_file_starts_over(served, tmp_path):
    server, payloads = served
    (tmp_path / "dl").mkdir()
    (tmp_path / "dl" / "part_0.tar.gz.part").write_bytes(payloads["part_0.tar.gz"] + b"extra")
    fetch_all(_files(server, payloads), tmp_path / "dl", progress=False)
    assert (tmp_path / "dl" / "part_0.tar.gz").read_bytes() == payloads["part_0.tar.gz"]
    assert server.gets("part_0.tar.gz") == [None]


def test_server_without_lengths(served, tmp_path):
    """No size anywhere (no Content-Length, Range ignored): a body that ends without an error is the file."""
    server, payloads = served
    server.send_length = server.honour_range = False
    manifest = fetch_all(_files(server, payloads), tmp_path / "dl", progress=False)
    for name, data in payloads.items():
        assert (tmp_path / "dl" / name).read_bytes() == data and manifest.entries[name]["size"] == len(data)

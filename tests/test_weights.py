"""`ila fetch-weights`: the paper backbones' sources, verified downloads (served from a loopback HTTP server),
OpenAI's TorchScript archives converted to plain state dicts, and offline runs."""

import subprocess
import sys

import pytest
import torch
from fake_weights import module_tree, write_openai_archive
from loopback import LoopbackServer

from ila.data.download import DownloadError, sha256_of
from ila.models.backbone import MissingWeightsError, build_clip, fetch_weights, pretrained_source

# Fixed bytes and their sha256, computed once (hashlib and `sha256sum` agree) and written here: the download checks
# are tested against this constant, never against a digest the test derives from the file it then verifies.
KNOWN_BYTES = b"ILA reproduction: fixed bytes whose sha256 the weights test knows.\n" * 100
KNOWN_SHA256 = "ccb6c618bb312bd9f749f11bd4fcf0132d8617cc2384672aad22b6e28e40afba"


@pytest.mark.parametrize("backbone,file", [
    ("ViT-B-32-quickgelu", "ViT-B-32.pt"), ("ViT-B-16-quickgelu", "ViT-B-16.pt"),
    ("ViT-L-14-quickgelu", "ViT-L-14.pt"), ("ViT-L-14-336-quickgelu", "ViT-L-14-336px.pt"),
])  # fmt: skip
def test_paper_backbones_come_from_openais_files_with_their_sha256(backbone, file):
    url, sha256, hf_hub = pretrained_source(backbone, "openai")
    assert url.startswith("https://openaipublic.azureedge.net/clip/models/") and url.endswith(f"/{file}")
    assert len(sha256) == 64 and url.split("/")[-2] == sha256
    assert hf_hub.startswith("timm/") and hf_hub.rstrip("/").endswith(".openai")  # the fallback copy


def test_unknown_tag_is_named():
    with pytest.raises(ValueError, match="no pretrained weights 'nope' for 'ViT-B-32'"):
        pretrained_source("ViT-B-32", "nope")


@pytest.fixture
def weights_server(tmp_path):
    served = tmp_path / "served"
    served.mkdir()
    torch.manual_seed(2)
    model = build_clip("ILA-mini-32")
    torch.save(model.state_dict(), served / "mini.pt")
    # OpenAI ships TorchScript archives whose modules carry the CLIP state dict's names: a scripted module tree with
    # the same names stands for one.
    torch.jit.save(torch.jit.script(module_tree(model.state_dict())), served / "openai-format.pt")
    (served / "junk.pt").write_bytes(b"not a checkpoint")
    (served / "known.bin").write_bytes(KNOWN_BYTES)
    with LoopbackServer(served) as server:
        yield server, model, served


def test_the_hash_of_known_bytes_is_their_known_sha256(tmp_path):
    path = tmp_path / "known.bin"
    path.write_bytes(KNOWN_BYTES)
    assert sha256_of(path) == KNOWN_SHA256
    path.write_bytes(b"abc")  # FIPS 180-2's example
    assert sha256_of(path) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"


@pytest.mark.parametrize("expected", [KNOWN_SHA256, KNOWN_SHA256[:16], KNOWN_SHA256.upper()])
def test_a_download_matching_the_known_sha256_passes_the_check(weights_server, tmp_path, expected):
    """The served file is the known bytes: the digest check passes (whole, as a prefix, in either case), and the file
    is then refused only because it is not weights."""
    server, _, _ = weights_server
    with pytest.raises(RuntimeError, match="do not load into ILA-mini-32") as err:
        fetch_weights("ILA-mini-32", "local", tmp_path / "w" / "known.pt", url=f"{server.url}/known.bin",
                      sha256=expected)
    assert not isinstance(err.value, DownloadError)
    assert (tmp_path / "w" / "known.pt.download").read_bytes() == KNOWN_BYTES  # the verified download, kept


@pytest.mark.parametrize("wrong", [KNOWN_SHA256[:-1] + "0", "00" + KNOWN_SHA256[2:16]])
def test_a_download_not_matching_the_known_sha256_is_refused(weights_server, tmp_path, wrong):
    server, _, _ = weights_server
    with pytest.raises(DownloadError, match=f"sha256 {KNOWN_SHA256} does not match the expected {wrong}"):
        fetch_weights("ILA-mini-32", "local", tmp_path / "w" / "known.pt", url=f"{server.url}/known.bin",
                      sha256=wrong)
    assert (tmp_path / "w" / "known.pt.download.corrupt").read_bytes() == KNOWN_BYTES
    assert not (tmp_path / "w" / "known.pt").exists()


def test_fetch_loads_and_stores_a_state_dict(weights_server, tmp_path):
    server, model, served = weights_server
    out = fetch_weights("ILA-mini-32", "local", tmp_path / "w" / "mini.pt", url=f"{server.url}/mini.pt")
    loaded = build_clip("ILA-mini-32", str(out))
    pairs = zip(loaded.state_dict().values(), model.state_dict().values(), strict=True)
    assert all(torch.equal(a, b) for a, b in pairs)
    assert sorted(p.name for p in out.parent.iterdir()) == ["mini.pt"]  # no download left-overs


def test_sha256_mismatch_is_named_and_nothing_is_stored(weights_server, tmp_path):
    server, _, _ = weights_server
    with pytest.raises(DownloadError, match="sha256 .* does not match the expected 00ff"):
        fetch_weights("ILA-mini-32", "local", tmp_path / "w" / "mini.pt", url=f"{server.url}/mini.pt",
                      sha256="00ff")
    assert not (tmp_path / "w" / "mini.pt").exists() and (tmp_path / "w" / "mini.pt.download.corrupt").exists()


def test_a_file_that_is_not_weights_is_refused(weights_server, tmp_path):
    server, _, _ = weights_server
    with pytest.raises(RuntimeError, match="do not load into ILA-mini-32"):
        fetch_weights("ILA-mini-32", "local", tmp_path / "w" / "bad.pt", url=f"{server.url}/junk.pt")
    assert not (tmp_path / "w" / "bad.pt").exists()


def test_openai_torchscript_archive_is_converted_to_a_state_dict(weights_server, tmp_path):
    """Training jobs load with weights_only=True, which refuses TorchScript: fetch-weights stores a plain state dict
    (OpenAI's loader rounds matrices through fp16, which OpenAI's fp16 files already are)."""
    server, model, served = weights_server
    with pytest.raises(RuntimeError, match="TorchScript"):
        torch.load(served / "openai-format.pt", weights_only=True)
    out = fetch_weights("ILA-mini-32", "openai", tmp_path / "w" / "mini-openai.pt",
                        url=f"{server.url}/openai-format.pt")
    stored = torch.load(out, weights_only=True)
    for key, ref in model.state_dict().items():
        assert torch.equal(stored[key], ref) or torch.equal(stored[key], ref.half().float()), key


def test_offline_fetch_fails_with_the_command_to_run_elsewhere(tmp_path, monkeypatch):
    """Neither OpenAI's URL (here: a closed port) nor the Hub copy (HF_HUB_OFFLINE) answers: both failures are
    named, with the command to run where there is internet access."""
    import ila.models.backbone as backbone

    monkeypatch.setattr(backbone, "pretrained_source", lambda b, t: ("http://127.0.0.1:9/ViT-B-32.pt", None,
                                                                     "timm/vit_base_patch32_clip_224.openai/"))
    out = tmp_path / "w" / "ViT-B-32-quickgelu-openai.pt"
    with pytest.raises(DownloadError, match=r"(?s)127.0.0.1:9/ViT-B-32.pt: gave up.*Hugging Face Hub copy "
                       r"\(timm/vit_base_patch32_clip_224.openai/\).*ila fetch-weights --backbone "
                       r"ViT-B-32-quickgelu --tag openai --out .*copy the file"):
        fetch_weights("ViT-B-32-quickgelu", "openai", out, retries=0)
    assert not out.exists()


def test_training_without_the_weights_file_fails_before_training_naming_the_command(tmp_path):
    with pytest.raises(MissingWeightsError, match="ila fetch-weights --backbone ViT-B-32-quickgelu --tag openai"):
        build_clip("ViT-B-32-quickgelu", str(tmp_path / "resources" / "weights" / "ViT-B-32-quickgelu-openai.pt"))


def test_cli_fetch_weights_then_the_stored_file_is_all_a_run_needs(weights_server, tmp_path):
    server, model, _ = weights_server
    out = tmp_path / "w" / "mini.pt"
    res = subprocess.run([sys.executable, "-m", "ila.cli", "fetch-weights", "--backbone", "ILA-mini-32", "--tag",
                          "local", "--url", f"{server.url}/mini.pt", "--out", str(out)],
                         capture_output=True, text=True, env={"HF_HUB_OFFLINE": "1", "PATH": ""})
    assert res.returncode == 0, res.stderr
    server.httpd.shutdown()
    # A run names the file as its backbone weights; with the server gone and the hub offline it loads them.
    loaded = build_clip("ILA-mini-32", str(out))
    assert torch.equal(loaded.logit_scale, model.logit_scale)


def test_cli_unknown_tag_is_a_clear_error(tmp_path):
    res = subprocess.run([sys.executable, "-m", "ila.cli", "fetch-weights", "--backbone", "ViT-B-32", "--tag", "nope",
                          "--out", str(tmp_path / "w.pt")], capture_output=True, text=True,
                         env={"HF_HUB_OFFLINE": "1", "PATH": ""})
    assert res.returncode == 2 and "no pretrained weights 'nope' for 'ViT-B-32'" in res.stderr
    assert "Traceback" not in res.stderr


@pytest.mark.slow
@pytest.mark.model  # the full-size ViT-B/32
def test_a_vit_b32_from_a_mirror_is_verified_converted_and_loaded(tmp_path):
    """The paper's ViT-B/32 at full size: a random one in OpenAI's TorchScript layout (fp16), served by a mirror with
    its sha256 (the config's `weights:` entry), is fetched, converted to a plain state dict and loads into the video
    model as OpenAI's file would."""
    from ila.models.factory import create_model

    state, digest = write_openai_archive(tmp_path / "mirror" / "ViT-B-32.pt", "ViT-B-32-quickgelu")
    out = tmp_path / "resources" / "weights" / "ViT-B-32-quickgelu-openai.pt"
    with LoopbackServer(tmp_path / "mirror") as server:
        with pytest.raises(DownloadError, match="does not match the expected"):
            fetch_weights("ViT-B-32-quickgelu", "openai", out, url=f"{server.url}/ViT-B-32.pt", sha256="0" * 64)
        fetch_weights("ViT-B-32-quickgelu", "openai", out, url=f"{server.url}/ViT-B-32.pt", sha256=digest)
    stored = torch.load(out, weights_only=True)
    assert stored.keys() == state.keys() and len(state) > 150
    assert all(torch.equal(stored[k].half(), v.half()) for k, v in state.items())
    model = create_model({"variant": "ila", "backbone": "ViT-B-32-quickgelu", "pretrained": str(out)}, ["a", "b"])
    tower = model.state_dict()
    assert torch.equal(tower["clip.visual.conv1.weight"].half(), state["visual.conv1.weight"])

"""Table 10's backbone: timm's ImageNet-21k ViT-B/16 as the image tower of an open_clip model, its weights fetched
(resumable, loaded strictly, Hub offline named) and made an open_clip state dict, and its features under VideoViT
equal to timm's own model."""

import pytest
import timm
import torch
from loopback import LoopbackServer
from safetensors.torch import save_file

from ila.config import resolve_model_config
from ila.data.download import DownloadError
from ila.models.backbone import TIMM_WEIGHTS, build_clip, fetch_weights, pretrained_source
from ila.models.factory import create_model
from ila.paths import backbone_weights_file


@pytest.fixture(scope="module")
def timm_in21k():
    """A randomly initialised timm ViT-B/16 with the 21 843-class head of the augreg_in21k checkpoint."""
    torch.manual_seed(0)
    return timm.create_model("vit_base_patch16_224", pretrained=False, num_classes=21843).eval()


@pytest.fixture(scope="module")
def served(timm_in21k, tmp_path_factory):
    root = tmp_path_factory.mktemp("hub")
    save_file({k: v.contiguous() for k, v in timm_in21k.state_dict().items()}, str(root / "model.safetensors"))
    with LoopbackServer(root) as server:
        yield server


@pytest.fixture(scope="module")
def fetched(served, tmp_path_factory):
    out = tmp_path_factory.mktemp("res") / backbone_weights_file("ViT-B-16-in21k", tag="augreg_in21k")
    return fetch_weights("ViT-B-16-in21k", "augreg_in21k", out, url=f"{served.url}/model.safetensors")


def test_the_in21k_tags_are_timms_hub_checkpoints():
    url, sha256, hf_hub = pretrained_source("ViT-B-16-in21k", "augreg_in21k")
    assert url == "https://huggingface.co/timm/vit_base_patch16_224.augreg_in21k/resolve/main/model.safetensors"
    # orig_in21k_ft_in1k: the ImageNet-21k weights fine-tuned on ImageNet-1k that TimeSformer starts from (Table 3).
    assert {t for b, t in TIMM_WEIGHTS if b == "ViT-B-16-in21k"} == {"augreg_in21k", "orig_in21k",
                                                                      "orig_in21k_ft_in1k"}


def test_converted_features_equal_timms(timm_in21k, fetched):
    """The same images through timm's model (normalised with its 0.5 mean and std) and through the video model on the
    fetched file (clips normalised with CLIP's, as the data pipeline does): the frame embeddings agree to 1e-5."""
    from ila.data.transforms import CLIP_MEAN, CLIP_STD

    cfg = resolve_model_config({"variant": "baseline", "backbone": "ViT-B-16-in21k", "pretrained": str(fetched),
                                "head": "linear", "num_frames": 2})
    model = create_model(cfg, ["a", "b"]).eval()
    raw = torch.rand(1, 2, 3, 224, 224)
    clip_norm = (raw - torch.tensor(CLIP_MEAN).view(3, 1, 1)) / torch.tensor(CLIP_STD).view(3, 1, 1)
    with torch.no_grad():
        ours = model.video_vit(clip_norm).frames[0]
        theirs = timm_in21k.forward_head(timm_in21k.forward_features((raw[0] - 0.5) / 0.5), pre_logits=True)
    assert ours.shape == theirs.shape == (2, 768)
    assert torch.allclose(ours, theirs, atol=1e-5), (ours - theirs).abs().max()


def test_the_stored_file_is_a_whole_open_clip_state_dict(fetched):
    state = torch.load(fetched, weights_only=True)
    assert not any(k.startswith("visual.trunk.head") for k in state)  # the 21k-class classifier is dropped
    build_clip("ViT-B-16-in21k", str(fetched))  # loads strictly
    assert sorted(p.name for p in fetched.parent.iterdir()) == [fetched.name]


def test_weights_of_another_model_are_refused(tmp_path):
    root = tmp_path / "hub"
    root.mkdir()
    small = timm.create_model("vit_ila_mini_patch8_32", num_classes=0)
    save_file(small.state_dict(), str(root / "model.safetensors"))
    with LoopbackServer(root) as server, pytest.raises(RuntimeError, match="do not load into ViT-B-16-in21k"):
        fetch_weights("ViT-B-16-in21k", "augreg_in21k", tmp_path / "w.pt", url=f"{server.url}/model.safetensors")
    assert not (tmp_path / "w.pt").exists()


def test_hub_offline_is_named_with_the_command(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    out = tmp_path / "ViT-B-16-in21k-augreg_in21k.pt"
    with pytest.raises(DownloadError, match=r"(?s)HF_HUB_OFFLINE is set.*ila fetch-weights --backbone ViT-B-16-in21k "
                                            r"--tag augreg_in21k"):
        fetch_weights("ViT-B-16-in21k", "augreg_in21k", out)
    assert not out.exists()


@pytest.mark.slow
def test_an_interrupted_download_resumes(served, tmp_path):
    """The connection drops half-way; the next attempt asks for the rest (an HTTP Range request)."""
    size = (served.root / "model.safetensors").stat().st_size
    served.cut_after["/model.safetensors"] = size // 2
    out = fetch_weights("ViT-B-16-in21k", "augreg_in21k", tmp_path / "w.pt", url=f"{served.url}/model.safetensors")
    ranges = [r for m, p, r in served.requests if m == "GET" and p == "/model.safetensors" and r]
    resumed_at = int(ranges[-1].removeprefix("bytes=").rstrip("-")) if ranges else 0
    assert 0 < resumed_at <= size // 2  # from what was written (whole chunks), not from the start
    assert out.is_file()

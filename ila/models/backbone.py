"""CLIP backbones from open_clip: by model name with a pretrained tag or a local weight file.

The suite's own small architectures (the embedded default's mini-CLIP) are JSON files in ``configs/`` registered
with open_clip's model registry, so they are built by the same factory as ViT-B/32 … L/14@336. An image tower from
timm is an open_clip config with ``timm_model_name`` (open_clip wraps the timm model as ``visual.trunk``); the
suite's small timm ViT, ``vit_ila_mini_patch8_32``, is registered with timm below (``ILA-mini-timm-32``: the
mini-CLIP's sizes with a timm image tower, for tests that every variant runs on both families).

``ViT-B-16-in21k`` is Table 10's backbone: timm's ViT-B/16 pretrained on ImageNet-21k as the image tower (and a
one-block text tower that a linear-head model never runs). Its weights are timm's, fetched from the Hub and loaded
into the trunk by :func:`fetch_weights`; since open_clip runs the timm module itself, converting them is renaming
their keys (``visual.trunk.``), not re-deriving timm's layers (patch-conv bias, no pre-norm, LayerNorm eps 1e-6, GELU)
in open_clip's.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import open_clip
import torch
from timm.models import build_model_with_cfg, register_model
from timm.models.vision_transformer import VisionTransformer
from torch import nn

from ila.backbone_configs import PAPER_BACKBONES, SUITE_CONFIGS, backbone_examples
from ila.errors import ConfigError, IlaError

open_clip.add_model_config(SUITE_CONFIGS)


@dataclass(frozen=True)
class TimmWeights:
    """A timm checkpoint on the Hugging Face Hub for a suite backbone whose image tower is that timm model."""

    hf_hub: str  # repository, e.g. timm/vit_base_patch16_224.augreg_in21k
    filename: str = "model.safetensors"

    @property
    def url(self) -> str:
        return f"https://huggingface.co/{self.hf_hub}/resolve/main/{self.filename}"


# (backbone, tag) -> timm weights. augreg_in21k (Steiner et al. 2021, what timm's `vit_base_patch16_224_in21k` has
# loaded since mid-2021) is Table 10's default; orig_in21k (the ViT paper's release) is the alternative.
TIMM_WEIGHTS: dict[tuple[str, str], TimmWeights] = {
    ("ViT-B-16-in21k", "augreg_in21k"): TimmWeights("timm/vit_base_patch16_224.augreg_in21k"),
    ("ViT-B-16-in21k", "orig_in21k"): TimmWeights("timm/vit_base_patch16_224.orig_in21k"),
    # The ViT-B/16 TimeSformer starts from (its code loads timm's `vit_base_patch16_224` of 2021: ImageNet-21k, then
    # fine-tuned on ImageNet-1k); its 1k-class head is dropped like the 21k one.
    ("ViT-B-16-in21k", "orig_in21k_ft_in1k"): TimmWeights("timm/vit_base_patch16_224.orig_in21k_ft_in1k"),
}
# Input normalisation of backbones not trained on CLIP's (the data pipeline normalises with CLIP's mean and std;
# VideoViT maps that to these).
BACKBONE_PREPROCESS: dict[str, dict[str, tuple[float, float, float]]] = {
    "ViT-B-16-in21k": {"mean": (0.5, 0.5, 0.5), "std": (0.5, 0.5, 0.5)},
}


@register_model
def vit_ila_mini_patch8_32(pretrained: bool = False, **kwargs) -> VisionTransformer:
    """The mini-CLIP's image tower as a timm ViT: 32x32 input, 8x8 patches, width 128, 4 blocks of 4 heads."""
    if pretrained:
        raise ValueError("vit_ila_mini_patch8_32 has no pretrained weights")
    kwargs["pretrained_cfg"] = kwargs.get("pretrained_cfg") or {"input_size": (3, 32, 32)}  # no weights to name
    return build_model_with_cfg(VisionTransformer, "vit_ila_mini_patch8_32", pretrained=False, img_size=32,
                                patch_size=8, embed_dim=128, depth=4, num_heads=4, **kwargs)


class MissingWeightsError(IlaError, FileNotFoundError):
    """A local weight file named in the config does not exist."""

    kind = "missing weights"


def _is_file_reference(pretrained: str) -> bool:
    return os.sep in pretrained or pretrained.endswith((".pt", ".pth", ".bin", ".safetensors", ".ckpt"))


def build_clip(
    name: str,
    pretrained: str | None = None,
    device: str | torch.device | None = None,
) -> nn.Module:
    """An open_clip CLIP model.

    ``pretrained`` is an open_clip tag (``openai``, ``laion2b_s34b_b79k``, … — fetched through the hub), a path to a
    local checkpoint (never touches the network), or None for random initialisation. ``device='meta'`` builds the
    architecture without allocating weights (FLOPs counting).
    """
    if name not in open_clip.list_models():
        raise ValueError(f"unknown backbone {name!r}; open_clip knows e.g. {backbone_examples()}")
    if pretrained and _is_file_reference(pretrained):
        path = Path(pretrained).expanduser()
        if not path.is_file():
            raise MissingWeightsError(
                f"backbone weights {path} not found. Fetch them (on a machine with internet access, then copy the "
                f"file here to the same path):\n  ila fetch-weights --backbone {name} --tag openai --out {path}"
            )
        pretrained = str(path)
    meta = str(device) == "meta"
    return open_clip.create_model(name, pretrained=None if meta else pretrained, device=device or "cpu",
                                  force_preprocess_cfg=BACKBONE_PREPROCESS.get(name))


def tokenizer_for(name: str):
    return open_clip.get_tokenizer(name)


def pretrained_source(backbone: str, tag: str) -> tuple[str | None, str | None, str | None]:
    """Where open_clip gets ``backbone``'s ``tag`` weights: ``(url, sha256, hf_hub)`` — a direct file (OpenAI's URLs
    carry the file's sha256 as their last directory) and/or a Hugging Face Hub repository."""
    if (backbone, tag) in TIMM_WEIGHTS:
        return TIMM_WEIGHTS[backbone, tag].url, None, None
    cfg = open_clip.get_pretrained_cfg(backbone, tag)
    if not cfg:
        tags = open_clip.list_pretrained_tags_by_model(backbone) if backbone in open_clip.list_models() else []
        tags += [t for b, t in TIMM_WEIGHTS if b == backbone]
        raise ConfigError(f"open_clip has no pretrained weights {tag!r} for {backbone!r}"
                          + (f"; it has {tags}" if tags else f"; paper backbones: {', '.join(PAPER_BACKBONES)}"))
    url = cfg.get("url") or None
    sha256 = url.rstrip("/").split("/")[-2] if url and "openaipublic" in url else None
    return url, sha256, cfg.get("hf_hub") or None


def _state_dict_of(path: Path, backbone: str, timm: bool = False) -> dict:
    """A checkpoint's state dict for ``backbone``: an open_clip/PyTorch state dict, OpenAI's TorchScript archive
    (which ``torch.load(weights_only=True)`` refuses) converted through open_clip's OpenAI loader, or a timm image
    model's (``timm``) made the image tower of ``backbone`` (:func:`timm_to_open_clip`)."""
    if timm:
        return timm_to_open_clip(_read_tensors(path), backbone)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except RuntimeError as exc:
        if "TorchScript" not in str(exc):
            raise
        return open_clip.load_openai_model(str(path), precision="fp32", device="cpu").state_dict()
    return state.get("state_dict", state) if isinstance(state, dict) else state


def _read_tensors(path: Path) -> dict[str, torch.Tensor]:
    """A safetensors file (timm's Hub format) or a PyTorch state dict."""
    with path.open("rb") as fh:
        head = fh.read(16)
    if head[:2] == b"PK" or head[:1] == b"\x80":  # a torch.save zip archive or a legacy pickle
        state = torch.load(path, map_location="cpu", weights_only=True)
        return state.get("state_dict", state)
    from safetensors.torch import load_file

    return load_file(str(path))


def timm_to_open_clip(timm_state: dict[str, torch.Tensor], backbone: str) -> dict[str, torch.Tensor]:
    """A timm image model's weights as a whole open_clip state dict of ``backbone`` (whose image tower wraps that
    model as ``visual.trunk``): the trunk's keys renamed, its classifier dropped (the video model has its own head),
    every other weight (text tower, projection) at its seeded initialisation. Loading the trunk strictly checks
    that the weights fit the architecture."""
    torch.manual_seed(0)
    model = build_clip(backbone)
    trunk = model.visual.trunk
    state = {k: v for k, v in timm_state.items() if not k.startswith(("head.", "pre_logits."))}
    try:
        trunk.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise ValueError(f"these weights are not {type(trunk).__name__}'s of {backbone}: {exc}") from None
    return model.state_dict()


def fetch_weights(backbone: str, tag: str, out: str | Path, url: str | None = None, sha256: str | None = None,
                  retries: int = 5) -> Path:
    """Download pretrained weights once, verify them and store a local checkpoint for offline runs.

    The file comes from ``url`` or the tag's own URL (resumable; OpenAI's are checked against the sha256 in their
    URL, any other against ``sha256`` when given); when there is none, or it fails, from the tag's Hugging Face Hub
    copy through open_clip. The result is saved as a plain state dict, loaded once through :func:`build_clip` to
    check that it fits ``backbone``, and moved into place atomically: ``out`` exists only when it is complete and
    loads.
    """
    from ila.data.download import DownloadError

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    hf_hub = None
    timm = (backbone, tag) in TIMM_WEIGHTS
    if url is None:
        url, tag_sha, hf_hub = pretrained_source(backbone, tag)
        sha256 = sha256 or tag_sha
        if timm and os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false", "False"):
            raise DownloadError(f"{backbone} {tag} comes from the Hugging Face Hub ({url}), and HF_HUB_OFFLINE is set "
                                f"here. Unset it, or run\n  ila fetch-weights --backbone {backbone} --tag {tag} --out "
                                f"{out}\non a machine with internet access and copy the file to {out}")
    tmp = out.with_name(out.name + ".tmp")
    raw = out.with_name(out.name + ".download")
    failures = []
    source = None
    if url:
        try:
            _download_verified(url, raw, sha256, retries)
            source = url
        except DownloadError as exc:
            failures.append(str(exc))
    if source is None and hf_hub:
        try:
            torch.save(open_clip.create_model(backbone, pretrained=tag).state_dict(), tmp)
            source = f"hf-hub:{hf_hub}"
        except Exception as exc:  # offline, missing repository, ...: reported with the URL's failure below
            failures.append(f"the Hugging Face Hub copy ({hf_hub}): {type(exc).__name__}: {exc}")
    if source is None:
        raise DownloadError(
            "\n".join(failures) + "\nWithout internet access here: run\n  ila fetch-weights --backbone "
            f"{backbone} --tag {tag} --out {out}\non a machine that has it and copy the file to {out}"
        )
    try:
        if source == url:
            torch.save(_state_dict_of(raw, backbone, timm), tmp)
        build_clip(backbone, str(tmp))
    except Exception as exc:
        tmp.unlink(missing_ok=True)
        raise RuntimeError(f"downloaded weights ({source}) do not load into {backbone}: {exc}") from exc
    os.replace(tmp, out)
    raw.unlink(missing_ok=True)
    return out


def _download_verified(url: str, raw: Path, sha256: str | None, retries: int) -> None:
    """``raw`` holds ``url``'s file, checked against ``sha256`` (a prefix) when given; a verified copy left by an
    earlier run (e.g. one that failed later, while converting) is reused."""
    from ila.data.download import DownloadError, download_file, sha256_of

    if raw.is_file() and sha256 and sha256_of(raw).startswith(sha256.lower()):
        return
    download_file(url, raw, retries=retries)
    digest = sha256_of(raw)
    if sha256 and not digest.startswith(sha256.lower()):
        bad = raw.with_name(raw.name + ".corrupt")
        os.replace(raw, bad)
        raise DownloadError(f"{url}: sha256 {digest} does not match the expected {sha256}; the file is kept as "
                            f"{bad}; rerun to download it again")

"""GPU checks (marked ``gpu``: they run where CUDA is present and skip elsewhere; see tests/conftest.py).

A few real training steps of every registered variant under bf16 autocast on the GPU, then the evaluation: the
trainer's own path (setup picks CUDA, precision 'auto' means bf16 there), on the tiny synthetic preset. Forward hooks
on the model the trainer builds record, for every training forward, whether autocast was on, at which dtype, and the
dtype the model's Linear layers actually computed in.
"""

import math

import pytest
import torch

import ila.engine.train as train_module
from ila.config import load_run_config
from ila.engine import checkpoint as ckpt
from ila.engine.train import train
from ila.models import list_variants

pytestmark = pytest.mark.gpu


@pytest.mark.parametrize("variant", list_variants())
def test_bf16_training_steps_on_cuda(variant, tiny_dataset, tmp_path, monkeypatch):
    out = tmp_path / variant
    seen = {"forwards": 0, "linear": set()}
    real_create_model = train_module.create_model

    def create_model_with_hooks(*args, **kwargs):
        model = real_create_model(*args, **kwargs)

        def on_forward(module, inputs, output):
            if module.training:
                seen["forwards"] += 1
                seen.setdefault("video", set()).add(inputs[0].device.type)

        def on_linear(module, inputs, output):
            if module.training:  # training steps only (the evaluation after them is not asked about)
                seen["linear"].add((output.dtype, torch.is_autocast_enabled("cuda"), torch.get_autocast_dtype("cuda"),
                                    output.device.type))

        model.register_forward_hook(on_forward)
        linears = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
        assert linears, "no Linear layer to observe"
        for m in linears:
            m.register_forward_hook(on_linear)
        return model

    monkeypatch.setattr(train_module, "create_model", create_model_with_hooks)
    cfg = load_run_config(None, [
        f"data.root={tiny_dataset}", "data.input_size=32", "data.hflip=remap", "data.batch_size=8",
        f"model.variant={variant}", "model.backbone=ILA-mini-32", "model.head=linear", "train.steps=3",
        "train.log_every=1", "train.precision=auto", "tracking.enabled=false", f"output_dir={out}",
    ])  # fmt: skip
    torch.cuda.reset_peak_memory_stats()
    metrics = train(cfg)
    assert torch.cuda.max_memory_allocated() > 0  # the work ran on the GPU
    # Three training forwards (one per step, accum_steps 1), on CUDA, every Linear computed in bf16 under autocast.
    assert seen["forwards"] == 3 and seen["video"] == {"cuda"}, seen
    assert seen["linear"] == {(torch.bfloat16, True, torch.bfloat16, "cuda")}, seen["linear"]
    assert metrics["train_steps"] == 3 and metrics["num_videos"] == 36 and math.isfinite(metrics["top5"])
    state = ckpt.load(out / "checkpoints" / "last.pt")
    assert all(torch.isfinite(v).all() for v in state["model"].values() if v.is_floating_point())
    assert "step 3/3" in (out / "train.log").read_text()


def test_batched_photometric_on_cuda_matches_the_cpu_per_clip_path():
    from ila.config import AugmentConfig
    from ila.data.transforms import CLIP_STD, apply_photometric, apply_photometric_batch, draw_photometric

    g = torch.Generator().manual_seed(0)
    video = torch.randint(0, 256, (32, 8, 3, 56, 56), generator=g, dtype=torch.uint8)
    params = torch.stack([draw_photometric(torch.Generator().manual_seed(s), AugmentConfig()) for s in range(32)])
    expected = torch.stack([apply_photometric(c, r) for c, r in zip(video, params, strict=True)])
    got = apply_photometric_batch(video.cuda(), params).cpu()
    # The GPU's float arithmetic may round a product across an integer where the CPU does not: one level of 255
    # at most, and rarely.
    levels = (got - expected).abs() * min(CLIP_STD) * 255
    assert levels.max() <= 1.01 and (levels > 0.5).float().mean() < 1e-3


def _kinetics_like_clip(path, frames=48, size=(256, 144)):
    import av
    import numpy as np

    rng = np.random.default_rng(0)
    base = np.kron(rng.integers(0, 256, (size[1] // 8, size[0] // 8 + 8, 3), dtype=np.uint8), np.ones((8, 8, 1),
                                                                                                       np.uint8))
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = size[0], size[1], "yuv420p"
        stream.codec_context.gop_size = 8
        for t in range(frames):
            image = np.ascontiguousarray(base[:, t : t + size[0]])
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


def test_torchcodec_on_cuda_decodes_the_cpu_readers_frames_within_its_colour_conversion(tmp_path):
    pytest.importorskip("torchcodec")
    import numpy as np

    from ila.data.readers import TorchCodecReader, open_video

    path = _kinetics_like_clip(tmp_path / "clip.mp4")
    idx = [0, 5, 9, 17, 30, 47, 47, 2]
    cpu = open_video(path, "pyav").get_frames(idx).astype(np.int16)
    gpu_tensor = TorchCodecReader(path, device="cuda").frames_tensor(idx)
    assert gpu_tensor.is_cuda
    diff = np.abs(gpu_tensor.cpu().numpy().astype(np.int16) - cpu)
    # The same decoded YUV; only the YUV -> RGB conversion differs (NVIDIA's NPP vs swscale): a few levels of 255.
    assert diff.mean() <= 3 and np.percentile(diff, 99) <= 10, (diff.mean(), np.percentile(diff, 99), diff.max())


def test_training_steps_decoding_on_cuda(tmp_path):
    pytest.importorskip("torchcodec")
    # Clips of 256x144 (NVDEC does not take the tiny preset's 32x32 H.264), in a two-class Kinetics-format list.
    root = tmp_path / "data"
    (root / "videos").mkdir(parents=True)
    for i in range(8):
        _kinetics_like_clip(root / "videos" / f"c{i}.mp4")
    (root / "labels.csv").write_text("id,name\n0,a\n1,b\n")
    for split in ("train", "val"):
        (root / f"{split}.txt").write_text("".join(f"videos/c{i}.mp4 {i % 2}\n" for i in range(8)))
    out = tmp_path / "decode-on-device"
    cfg = load_run_config(None, [
        f"data.root={root}", "data.input_size=32", "data.num_frames=8", "data.hflip=on", "data.batch_size=4",
        "data.augment_on=device", "data.decode_on=device", "model.variant=ila", "model.backbone=ILA-mini-32",
        "model.head=linear", "train.steps=3", "train.log_every=1", "train.checkpoint_every=3", f"output_dir={out}",
        "tracking.enabled=false",
    ])  # fmt: skip
    summary = train(cfg, run_eval=False)
    assert summary["train_steps"] == 3 and ckpt.load(out / "checkpoints" / "last.pt")["step"] == 3

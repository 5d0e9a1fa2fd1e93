import torch

from ila.config import AugmentConfig
from ila.data.transforms import CLIP_MEAN, CLIP_STD, EvalTransform, TrainTransform, multiscale_crop_box

ALWAYS = AugmentConfig(color_jitter_p=1.0, grayscale_p=0.0, flip_p=1.0)


def _clip(t=8, h=40, w=48, seed=0):
    return torch.randint(0, 256, (t, 3, h, w), generator=torch.Generator().manual_seed(seed), dtype=torch.uint8)


def _unnormalize(x):
    return x * torch.tensor(CLIP_STD).view(3, 1, 1) + torch.tensor(CLIP_MEAN).view(3, 1, 1)


def test_every_random_choice_is_shared_by_all_frames():
    frame = _clip(t=1)
    clip = frame.repeat(8, 1, 1, 1)
    tf = TrainTransform(32, 36, ALWAYS, flip=True)
    for seed in range(10):
        out, _ = tf(clip, torch.Generator().manual_seed(seed))
        assert out.shape == (8, 3, 32, 32)
        for t in range(1, 8):
            torch.testing.assert_close(out[t], out[0], rtol=0, atol=0)


def test_colour_jitter_changes_pixels_and_grayscale_equalises_channels():
    clip = _clip()
    plain, _ = TrainTransform(32, 36, AugmentConfig(color_jitter_p=0.0, grayscale_p=0.0), flip=False)(
        clip, torch.Generator().manual_seed(1))
    jittered, _ = TrainTransform(32, 36, AugmentConfig(color_jitter_p=1.0, grayscale_p=0.0), flip=False)(
        clip, torch.Generator().manual_seed(1))
    assert not torch.allclose(plain, jittered)
    gray, _ = TrainTransform(32, 36, AugmentConfig(color_jitter_p=0.0, grayscale_p=1.0), flip=False)(
        clip, torch.Generator().manual_seed(1))
    rgb = _unnormalize(gray)
    torch.testing.assert_close(rgb[:, 0], rgb[:, 1], atol=1e-5, rtol=0)
    torch.testing.assert_close(rgb[:, 1], rgb[:, 2], atol=1e-5, rtol=0)


def test_flip_is_reported_and_mirrors_the_clip():
    clip = _clip(h=36, w=36)
    aug = AugmentConfig(multiscale_scales=(1.0,), color_jitter_p=0.0, grayscale_p=0.0, flip_p=1.0)
    flipped, was = TrainTransform(36, 36, aug, flip=True)(clip, torch.Generator().manual_seed(0))
    plain, was_not = TrainTransform(36, 36, aug, flip=False)(clip, torch.Generator().manual_seed(0))
    assert was and not was_not
    torch.testing.assert_close(flipped, plain.flip(-1))


def test_same_generator_seed_same_augmentation():
    tf = TrainTransform(32, 36, AugmentConfig(), flip=True)
    a, fa = tf(_clip(), torch.Generator().manual_seed(7))
    b, fb = tf(_clip(), torch.Generator().manual_seed(7))
    assert fa == fb
    torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_multiscale_crop_boxes_stay_inside():
    for seed in range(200):
        top, left, ch, cw = multiscale_crop_box(36, 48, (1, 0.875, 0.75, 0.66), torch.Generator().manual_seed(seed))
        assert 0 <= top and top + ch <= 36 and 0 <= left and left + cw <= 48
        assert ch in {36, 31, 27, 23} and cw in {36, 31, 27, 23}


def test_test_views_are_deterministic_and_three_crops_cover_the_long_side():
    clip = _clip(h=36, w=64)
    one = EvalTransform(32, 36, 1)(clip)
    three = EvalTransform(32, 36, 3)(clip)
    assert one.shape == (1, 8, 3, 32, 32) and three.shape == (3, 8, 3, 32, 32)
    torch.testing.assert_close(three[1], one[0])
    assert not torch.allclose(three[0], three[2])
    torch.testing.assert_close(EvalTransform(32, 36, 3)(clip), three, rtol=0, atol=0)


def test_batched_photometric_equals_the_per_clip_path_bit_for_bit():
    from ila.data.transforms import apply_photometric, apply_photometric_batch, draw_photometric

    video = torch.stack([_clip(seed=s, h=24, w=24) for s in range(40)])
    # Every clip its own factors and op order; about half grayscale; some without jitter.
    params = torch.stack([draw_photometric(torch.Generator().manual_seed(s), AugmentConfig(color_jitter_p=0.8,
                                                                                           grayscale_p=0.5))
                          for s in range(40)])
    assert {tuple(r[5:9].tolist()) for r in params if r[0]} and 0 < params[:, 9].sum() < 40 and not params[:, 0].all()
    expected = torch.stack([apply_photometric(c, r) for c, r in zip(video, params, strict=True)])
    for per_pass in (None, 1, 7, 40):
        got = apply_photometric_batch(video, params, clips_per_pass=per_pass)
        torch.testing.assert_close(got, expected, rtol=0, atol=0)
    assert video.dtype == torch.uint8 and video.equal(torch.stack([_clip(seed=s, h=24, w=24) for s in range(40)]))


def test_batched_photometric_runs_no_loop_over_clips(monkeypatch):
    from ila.data import transforms

    calls = []
    real = transforms._batched_hue
    monkeypatch.setattr(transforms, "_BATCHED", {**transforms._BATCHED,
                                                 "hue": lambda c, f: calls.append(len(c)) or real(c, f)})
    params = torch.stack([transforms.draw_photometric(torch.Generator().manual_seed(s), AugmentConfig(
        color_jitter_p=1.0)) for s in range(32)])
    transforms.apply_photometric_batch(torch.stack([_clip(seed=s, h=8, w=8) for s in range(32)]), params,
                                       clips_per_pass=32)
    assert len(calls) <= 4 and sum(calls) == 32  # one call per position of the op order, not one per clip


def test_resized_short_size_is_the_size_torchvision_resizes_to():
    from ila.data.transforms import resize_short, resized_short_size

    rng = torch.Generator().manual_seed(0)
    for _ in range(40):
        h, w = (int(v) for v in torch.randint(20, 90, (2,), generator=rng))
        frame = torch.zeros(1, 3, h, w, dtype=torch.uint8)
        for size in (24, 37, 64):
            assert tuple(resize_short(frame, size).shape[-2:]) == resized_short_size(h, w, size), (h, w, size)


def test_drawn_geometry_applied_elsewhere_is_the_geometry():
    tf = TrainTransform(32, 36, AugmentConfig(), flip=True)
    for seed in range(20):
        clip = _clip(seed=seed, h=40 + seed, w=70 - seed)
        direct, flipped = tf.geometry(clip, torch.Generator().manual_seed(seed))
        draw = tf.draw_geometry(*clip.shape[-2:], torch.Generator().manual_seed(seed))
        assert bool(draw[6]) == flipped
        torch.testing.assert_close(tf.apply_geometry(clip, draw), direct, rtol=0, atol=0)

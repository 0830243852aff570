"""The video plugin: data, the four-plane autoencoder, training, the frames condition, files."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from condgen_video import data, media
from condgen_video.generator import FramesCondition, VideoGenerator


# -- data --------------------------------------------------------------------------------------


@pytest.mark.parametrize("direction", range(8))
def test_clips_move_in_the_direction_and_at_the_speed_asked(direction):
    images, labels = data.glyphs("train")
    rng = np.random.default_rng(direction)
    for speed in (1.0, 1.5, 2.0):
        clip, positions = data.make_clip(images[direction], direction, speed, rng)
        assert clip.shape == (data.FRAMES, data.SIZE, data.SIZE) and clip.min() >= 0 and clip.max() <= 1
        found, measured = data.motion_of(clip)
        assert data.DIRECTIONS[found] == data.DIRECTIONS[direction]
        assert measured == pytest.approx(speed, abs=0.05)
        step = positions[1] - positions[0]
        assert np.hypot(*step) == pytest.approx(speed)


def test_the_digit_bounces_and_stays_inside_the_frame():
    positions = data.track(np.array([14.0, 1.0]), np.array([2.0, -1.5]), frames=16)
    assert positions.min() >= 0 and positions.max() <= data.ROOM
    vx = np.diff(positions[:, 0])
    assert (vx > 0).any() and (vx < 0).any(), "it never bounced off the right edge"
    # speed is kept through bounces: a step is never longer than the velocity, and every
    # step that does not fold at an edge moves by exactly the velocity's components
    steps = np.abs(np.diff(positions, axis=0))
    assert (steps <= np.array([2.0, 1.5]) + 1e-9).all()
    assert np.isclose(steps[:, 0], 2.0).sum() >= 10 and np.isclose(steps[:, 1], 1.5).sum() >= 10


def test_clips_are_determined_by_their_seed():
    a, b, c = data.clips(6, seed=4), data.clips(6, seed=4), data.clips(6, seed=5)
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert not np.array_equal(a["clips"], c["clips"])


def test_the_test_split_holds_other_digits_than_train():
    train, test = data.glyphs("train")[0], data.glyphs("test")[0]
    assert len(train) + len(test) == 1797 and len(test) == 359
    assert not any(np.array_equal(test[0], t) for t in train)


# -- the shipped model -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def model():
    return VideoGenerator().load_model()[0]


def psnr(a, b) -> float:
    return float(10 * np.log10(1.0 / np.mean((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2)))


def test_the_autoencoder_round_trip_keeps_a_real_clip_in_an_eighth_of_its_size(model):
    clip = data.clips(4, "test", seed=11)["clips"]
    with torch.no_grad():
        z = model.to_latent(torch.from_numpy(clip))
        back = model.to_clip(z).numpy()
    assert z.shape == (4, 4, 8, 8, 8)  # four planes of 8 channels, 8x8 each
    assert z[0].numel() * 8 == clip[0].size
    assert psnr(back, clip) > 22.0
    # the planes carry the clip: another clip's planes decode to something else
    assert psnr(model.to_clip(z.roll(1, dims=0)).detach().numpy(), clip) < psnr(back, clip) - 6


def test_frame_prediction_keeps_the_given_frames_and_moves_the_digit_on():
    clip = data.clips(1, "test", seed=12)["clips"][0]
    run = VideoGenerator().generate(2, condition={"frames": clip[:4]}, steps=8, seed=0, device="cpu")
    for sample in run.samples:
        assert np.array_equal(sample[:4], clip[:4])
        centre = data.centroids(sample)
        assert np.hypot(*(centre[8] - centre[3])) > 2.0, "the digit stopped where the given frames left it"


# -- the frames condition ----------------------------------------------------------------------


def test_frames_condition_reads_npy_gif_and_mp4_and_pads_with_nan(tmp_path):
    clip = data.clips(1, seed=2)["clips"][0][:5]
    np.save(tmp_path / "c.npy", clip)
    media.write_gif(clip, tmp_path / "c.gif")
    media.write_mp4(clip, tmp_path / "c.mp4")
    condition = FramesCondition(description="")
    for name, tolerance in (("c.npy", 0), ("c.gif", 0.003), ("c.mp4", 0.03)):
        value = condition.parse("frames", str(tmp_path / name))
        assert value.shape == (5, 32, 32)
        assert np.abs(value - clip).max() <= tolerance, name
    encoded = condition.encode([clip, None])
    assert encoded.shape == (2, 16, 32, 32)
    assert torch.equal(encoded[0, :5], torch.from_numpy(clip)) and encoded[0, 5:].isnan().all() and encoded[1].isnan().all()


@pytest.mark.parametrize(("value", "message"), [
    (np.zeros((9, 32, 32), np.float32), "9 frames; give the first 1-8"),
    (np.zeros((4, 30, 30), np.float32), "30x30 pixels"),
    (np.full((4, 32, 32), 3.0, np.float32), "outside [0, 1]"),
    (np.zeros((4, 32, 32), bool), "not a clip"),
])
def test_frames_condition_refuses_what_it_cannot_continue(value, message):
    import condgen

    with pytest.raises(condgen.ConditionError, match=message.replace("[", r"\[").replace("]", r"\]")):
        FramesCondition(description="").validate("frames", value)


# -- files --------------------------------------------------------------------------------------


def test_gif_and_mp4_are_playable_and_hold_every_frame(tmp_path):
    import imageio.v3 as iio

    clip = data.clips(1, seed=3)["clips"][0]
    media.GifClipWriter().write(clip, tmp_path / "000000.gif")
    gif = iio.imread(tmp_path / "000000.gif", index=None)
    mp4 = np.stack(list(iio.imiter(tmp_path / "000000.mp4", plugin="FFMPEG")))
    assert gif.shape[:3] == (16, 128, 128) and mp4.shape == (16, 128, 128, 3)
    assert np.abs(media.to_clip(mp4) - clip).max() < 0.05
    assert np.array_equal(media.GifClipWriter().read(tmp_path / "000000.gif"), clip)  # the exact .npy beside it


# -- training ----------------------------------------------------------------------------------


def test_a_short_training_run_lowers_both_losses_and_resumes(tmp_path, monkeypatch):
    from safetensors.torch import load_file

    from condgen_video import train

    torch.set_num_threads(1)
    recipe = replace(train.RECIPE, ae_steps=60, ae_batch=8, steps=120, batch=16, pool=96, warmup=5, save_every=25,
                     ae={"width": 16, "latent": 4, "blocks": 1}, dit={"width": 32, "depth": 1, "heads": 2, "patch": 2})
    out = tmp_path / "video.safetensors"
    result = train.train(out, recipe=recipe, steps=100)  # loss curves: means of 50 steps
    assert result["ae_loss_last"] < 0.6 * result["ae_loss_first"]
    assert result["loss_last"] < result["loss_first"]
    trained = {k: v for k, v in load_file(str(out)).items() if k.startswith("autoencoder.")}
    encoders, encode_pool = [], train.encode_pool
    monkeypatch.setattr(train, "encode_pool", lambda model, clips: encoders.append(
        {f"autoencoder.{k}": v.clone() for k, v in model.autoencoder.state_dict().items()}) or encode_pool(model, clips))
    again = train.train(out, recipe=recipe, steps=120, resume=True)
    assert again["resumed_from"] == 100 and again["steps"] == 120
    # a resumed run encodes its pool with the trained autoencoder, not a fresh one
    assert encoders and all(torch.equal(used[k], trained[k]) for used in encoders for k in trained)
    # what it wrote loads as a generator's weights
    generator = VideoGenerator()
    run = generator.generate(1, condition={"digit": 3}, steps=2, seed=0, device="cpu", weights=str(out))
    assert run.samples[0].shape == (16, 32, 32)


def test_a_continued_run_starts_from_the_weights_it_is_given(tmp_path):
    from safetensors.torch import load_file

    import condgen
    from condgen_video import train

    torch.set_num_threads(1)
    recipe = replace(train.RECIPE, ae_steps=50, ae_batch=8, steps=100, batch=16, pool=96, warmup=5, save_every=50,
                     ae={"width": 16, "latent": 4, "blocks": 1}, dit={"width": 32, "depth": 1, "heads": 2, "patch": 2})
    first, second = tmp_path / "first.safetensors", tmp_path / "second.safetensors"
    trained = train.train(first, recipe=recipe)
    again = train.train(second, recipe=recipe, steps=50, init=first, seed=1, lr=2e-4, precision="bf16")
    # the autoencoder and the latent scale are the first run's; the DiT goes on from where it was
    before, after = load_file(str(first)), load_file(str(second))
    assert all(torch.equal(before[k], after[k]) for k in before if k.startswith("autoencoder.") or k == "latent_scale")
    assert not torch.equal(before["blocks.0.qkv.weight"], after["blocks.0.qkv.weight"])
    assert again["loss_first"] < 0.9 * trained["loss_first"]  # a fresh DiT starts near 1
    summary = condgen.load_checkpoint(second, generator="video").config["trained"]
    assert summary["continued_from"]["sha256"] == trained["sha256"] and summary["continued_from"]["trained"]["steps"] == 100
    assert (summary["steps"], summary["lr"], summary["precision"], summary["diffusion_seed"]) == (50, 2e-4, "bf16", 1)
    # weights of another recipe, or init together with --resume, are refused in one line
    other = replace(recipe, dit={"width": 64, "depth": 1, "heads": 2, "patch": 2})
    with pytest.raises(condgen.UsageError, match="another recipe .*dit"):
        train.train(tmp_path / "third.safetensors", recipe=other, init=first)
    with pytest.raises(condgen.UsageError, match="pass one of them"):
        train.train(second, recipe=recipe, init=first, resume=True)
    with pytest.raises(condgen.UsageError, match="unknown precision"):
        train.train(second, recipe=recipe, init=first, precision="fp8")

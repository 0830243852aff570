"""The EEG plugin: the simulator's physiology, the WGAN-GP and diffusion pieces, training,
users' epochs files and the files a run writes."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from condgen.testing import assert_one_line_error, invoke_core

from condgen_eeg import data, evaluate, train
from condgen_eeg.model import ProjectionCritic, WGANGenerator, gradient_penalty, min_max_scale, to_microvolts

CH = {name: i for i, name in enumerate(data.CHANNELS)}
FRONTAL_POLAR, OCCIPITAL = [CH["Fp1"], CH["Fp2"]], [CH["O1"], CH["O2"]]
TEMPORAL, CENTRAL = [CH["T7"], CH["T8"]], [CH["Cz"], CH["C3"], CH["C4"], CH["Pz"]]


def band(x, name):
    """[N, 19] mean Welch power of windows x in one band."""
    return evaluate.band_powers(x)[..., list(data.BANDS).index(name)]


@pytest.fixture
def person():
    """A fresh simulated subject for each test (its random stream is used up by draws)."""
    return data.Subject(seed=0, index=3)


@pytest.fixture
def rest():
    resting = data.Subject(seed=0, index=3)
    return resting.background(60, data.SAMPLES) * resting.gains[None, :, None]


# -- the simulator: each artifact's signature -----------------------------------------------------


def test_montage_is_the_10_20_system():
    pos = data.positions()
    assert pos.shape == (19, 3)
    assert pos[CH["Fp1"], 1] > 0.07 and pos[CH["O1"], 1] < -0.1  # front and back of the head (m)
    assert pos[CH["T7"], 0] < -0.07 and pos[CH["T8"], 0] > 0.07  # left and right
    meas = data.info()
    assert meas["sfreq"] == 250 and meas.ch_names == list(data.CHANNELS)


def test_background_has_a_posterior_alpha_rhythm_and_falling_spectrum(rest):
    alpha = band(rest, "alpha").mean(0)
    assert alpha[OCCIPITAL].mean() > 2 * alpha[FRONTAL_POLAR].mean()
    psd, freqs = evaluate.welch(rest)
    spectrum = psd.mean(axis=(0, 1))
    assert spectrum[(freqs >= 1) & (freqs < 4)].mean() > 10 * spectrum[(freqs >= 30) & (freqs < 100)].mean()


def test_eye_movements_are_frontal_and_slow(person, rest):
    x, _ = person.windows(data.CLASSES.index("eye"), 60)
    delta = band(x, "delta").mean(0)
    assert delta[FRONTAL_POLAR].mean() > 5 * band(rest, "delta").mean(0)[FRONTAL_POLAR].mean()
    assert delta[FRONTAL_POLAR].mean() > 4 * delta[OCCIPITAL].mean()
    assert band(x, "beta").mean() < 2 * band(rest, "beta").mean()  # no high-frequency content added


def test_saccades_have_lateral_polarity(person):
    artifact = person.eye(200, data.SAMPLES)
    saccades = [w for w in artifact if np.abs(w[CH["Fp1"]]).max() > 0 and np.corrcoef(w[CH["Fp1"]], w[CH["Fp2"]])[0, 1] < 0]
    assert len(saccades) > 40  # about 40% of eye windows are saccades
    assert all(np.corrcoef(w[CH["F7"]], w[CH["F8"]])[0, 1] < -0.99 for w in saccades)


def test_muscle_is_high_frequency_over_temporal_channels(person, rest):
    x, _ = person.windows(data.CLASSES.index("muscle"), 60)
    gamma = band(x, "gamma").mean(0)
    assert gamma[TEMPORAL].mean() > 20 * band(rest, "gamma").mean(0)[TEMPORAL].mean()
    assert gamma[TEMPORAL].mean() > 5 * gamma[CENTRAL].mean()
    assert band(x, "delta").mean() < 1.5 * band(rest, "delta").mean()


def test_electrode_artifacts_touch_one_channel(person, rest):
    x, meta = person.windows(data.CLASSES.index("electrode"), 90)
    ratio = np.log(np.ptp(x, -1) / np.median(np.ptp(rest, -1), axis=0))  # against this person's resting range
    deviation = np.abs(ratio - np.median(ratio, axis=1, keepdims=True))  # less the window's overall level
    assert (deviation.argmax(1) == meta["channel"]).mean() > 0.9  # chance: 1 in 19; misses are small drifts
    flat = meta["kind"] == 2
    assert flat.any() and (x[flat, meta["channel"][flat]].std(-1) < 1.0).all()


def test_chewing_bursts_come_at_one_to_two_hertz(person):
    from scipy.signal import hilbert

    def envelope_acf(x):
        """Normalised autocorrelation of the temporal EMG envelope, per window."""
        envelope = np.abs(hilbert(data._bandpass(x[:, TEMPORAL].mean(1), 30.0, 100.0)))
        envelope -= envelope.mean(-1, keepdims=True)
        acf = np.fft.irfft(np.abs(np.fft.rfft(envelope, n=2 * x.shape[-1], axis=-1)) ** 2, axis=-1)
        return acf / acf[:, :1]

    x, meta = person.windows(data.CLASSES.index("chewing"), 40, samples=2500)  # 10 s, to see the rhythm
    assert ((meta["rate"] >= 1) & (meta["rate"] <= 2)).all()
    period = np.round(data.SFREQ / meta["rate"]).astype(int)
    at_period = envelope_acf(x)[np.arange(len(x)), period]
    muscle, _ = person.windows(data.CLASSES.index("muscle"), 40, samples=2500)
    assert np.median(at_period) > 0.4  # bursts repeat every period
    assert np.median(envelope_acf(muscle)[np.arange(len(x)), period]) < 0.5 * np.median(at_period)  # muscle bursts do not
    gamma = band(x[..., :250], "gamma").mean(0)
    assert gamma[TEMPORAL].mean() > 5 * gamma[CENTRAL].mean()


def test_shiver_is_a_diffuse_tremor_with_emg(person, rest):
    x, _ = person.windows(data.CLASSES.index("shiver"), 60)
    theta = band(x, "theta").mean(0) / band(rest, "theta").mean(0)
    assert (theta > 3).sum() >= 17  # everywhere on the scalp
    gamma = band(x, "gamma").mean(0) / band(rest, "gamma").mean(0)
    assert (gamma > 3).all()


def test_subjects_are_seeded_and_splits_subject_wise():
    one = data.simulate([5], windows_per_class=2, seed=7)
    many = data.simulate([4, 5], windows_per_class=2, seed=7)
    assert np.array_equal(one["x"], many["x"][many["subject"] == 5])
    assert not np.array_equal(data.simulate([5], 2, seed=8)["x"], one["x"])
    assert not set(data.TRAIN_SUBJECTS) & set(data.TEST_SUBJECTS)


# -- the WGAN-GP pieces ---------------------------------------------------------------------------


class LinearCritic(torch.nn.Module):
    """D(x, s, y) = <w, x> + <v, s>: its gradient is (w, v) everywhere."""

    def __init__(self, w, v):
        super().__init__()
        self.w, self.v = w, v

    def forward(self, x, scales, label):
        return (x * self.w).flatten(1).sum(1) + (scales * self.v).sum(1)


@pytest.mark.parametrize("scale", [0.01, 0.05, 1.0])
def test_gradient_penalty_of_a_linear_critic_is_its_closed_form(scale):
    gen = torch.Generator().manual_seed(0)
    w, v = scale * torch.randn(19, 250, generator=gen), scale * torch.randn(2, generator=gen)
    real = (torch.randn(8, 19, 250, generator=gen), torch.randn(8, 2, generator=gen))
    fake = (torch.randn(8, 19, 250, generator=gen), torch.randn(8, 2, generator=gen))
    penalty = gradient_penalty(LinearCritic(w, v), real, fake, torch.zeros(8, dtype=torch.long), gen, weight=10.0)
    closed = 10.0 * (torch.sqrt((w**2).sum() + (v**2).sum()) - 1) ** 2
    assert torch.allclose(penalty, closed, rtol=1e-5)


def test_projection_critic_uses_the_class_only_through_the_inner_product():
    torch.manual_seed(0)
    critic = ProjectionCritic(width=16)
    x, s = torch.randn(3, 19, 250), torch.randn(3, 2)
    a, b = critic(x, s, torch.tensor([0, 0, 0])), critic(x, s, torch.tensor([1, 1, 1]))
    with torch.no_grad():
        critic.embed.weight[1] = critic.embed.weight[0]
    assert not torch.allclose(a, b) and torch.allclose(critic(x, s, torch.tensor([1, 1, 1])), a)


def test_min_max_scaling_is_per_window_and_inverts():
    x = torch.randn(4, 19, 250) * torch.tensor([1.0, 10.0, 100.0, 0.5])[:, None, None] + 3
    scaled, scales = min_max_scale(x)
    assert torch.allclose(scaled.amin(dim=(1, 2)), -torch.ones(4)) and torch.allclose(scaled.amax(dim=(1, 2)), torch.ones(4))
    assert torch.allclose(to_microvolts(scaled, scales), x, atol=1e-4)
    generated, _ = WGANGenerator(latent=8, width=16)(torch.randn(5, 8), torch.randn(5, 4, 250), torch.arange(5))
    assert generated.abs().max() <= 1


# -- training -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def small_corpus():
    return data.simulate(range(3), windows_per_class=8)


def test_short_diffusion_training_lowers_the_denoising_loss(tmp_path, small_corpus):
    torch.manual_seed(0)
    summary = train.train(train.tiny(train.recipe_for("diffusion"), lr=2e-3), tmp_path / "d.safetensors", steps=250, train_data=small_corpus)
    assert summary["loss_last"] < 0.85 * summary["loss_first"]


def test_short_wgan_training_lowers_both_losses(tmp_path, small_corpus):
    torch.manual_seed(0)
    out = tmp_path / "g.safetensors"
    train.train(train.tiny(train.recipe_for("wgan"), lr=5e-4), out, steps=100, train_data=small_corpus)
    import condgen

    curves = condgen.load_checkpoint(out).config["trained"]["curves"]
    assert min(curves["loss"]) < curves["loss"][0] - 1.0  # the critic learns to tell real from generated
    assert curves["w_distance"][-1] < max(curves["w_distance"])  # then the generator closes the gap


def test_training_resumes_from_its_state(tmp_path, small_corpus):
    recipe = train.tiny(train.recipe_for("diffusion"))
    straight, split = tmp_path / "a.safetensors", tmp_path / "b.safetensors"
    train.train(recipe, straight, steps=20, train_data=small_corpus)

    def interrupt(step, total, **losses):
        if step == 11:  # the checkpoint of step 10 is saved
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train.train(recipe, split, steps=20, train_data=small_corpus, progress=interrupt)
    train.train(recipe, split, steps=20, train_data=small_corpus, resume=True)
    import condgen

    a, b = condgen.load_checkpoint(straight).tensors, condgen.load_checkpoint(split).tensors
    assert all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)


# -- users' epochs files -------------------------------------------------------------------------


def _user_epochs(tmp_path, small_corpus):
    from condgen_eeg.generator import _epochs

    samples = [{"eeg": x, "artifact": data.CLASSES[y]} for x, y in zip(small_corpus["x"], small_corpus["y"])]
    path = tmp_path / "mine-epo.fif"
    _epochs(samples).save(path, verbose="error")
    return path


def test_users_fif_and_npz_epochs_read_back_with_their_labels(tmp_path, small_corpus):
    fif = data.read_epochs_file(_user_epochs(tmp_path, small_corpus))
    assert np.array_equal(fif["y"], small_corpus["y"])
    assert np.allclose(fif["x"], small_corpus["x"], rtol=1e-5, atol=1e-3)
    np.savez(tmp_path / "mine.npz", x=small_corpus["x"], y=np.array([data.CLASSES[k] for k in small_corpus["y"]]))
    npz = data.read_epochs_file(tmp_path / "mine.npz")
    assert np.array_equal(npz["y"], small_corpus["y"]) and np.array_equal(npz["x"], small_corpus["x"])


def test_core_train_takes_a_users_epochs_file(tmp_path, small_corpus):
    out = tmp_path / "mine.safetensors"
    code, stdout, err = invoke_core("train", "--plugin", "eeg", "--model", "eeg-diffusion", "--steps", "2",
                                    "-c", f"data={_user_epochs(tmp_path, small_corpus)}", "--out", str(out))
    assert code == 0, err
    assert json.loads(stdout)["steps"] == 2 and out.is_file()


@pytest.mark.parametrize(("arrays", "fragment"), [
    ({"x": np.zeros((4, 21, 250)), "y": np.zeros(4, int)}, "21 channels; expected 19 EEG channels"),
    ({"x": np.zeros((4, 19, 250)), "y": np.zeros(4, int), "sfreq": np.array(500.0)}, "500 Hz; expected 250 Hz"),
    ({"x": np.zeros((4, 19, 250))}, "no labels"),
    ({"x": np.zeros((4, 19, 250)), "y": np.array(["blink"] * 4)}, "unknown artifact label 'blink'"),
])
def test_bad_epochs_files_get_one_line_saying_what_was_expected(tmp_path, arrays, fragment):
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    code, _, err = invoke_core("train", "--plugin", "eeg", "-c", f"data={path}", "--out", str(tmp_path / "out" / "t.safetensors"))
    assert_one_line_error(code, err, fragment)
    assert not (tmp_path / "out").exists()


def test_unlabelled_fif_epochs_are_refused(tmp_path, small_corpus):
    import mne

    epochs = mne.EpochsArray(small_corpus["x"][:4] * 1e-6, data.info(), verbose="error")
    epochs.save(tmp_path / "plain-epo.fif", verbose="error")
    with pytest.raises(data.DataError, match="without artifact labels"):
        data.read_epochs_file(tmp_path / "plain-epo.fif")


# -- what a run writes ---------------------------------------------------------------------------


@pytest.mark.parametrize("model", ["eeg-wgan", "eeg-diffusion"])
def test_generate_writes_fif_npz_and_png(tmp_path, model):
    import mne

    run = tmp_path / "run"
    code, _, err = invoke_core("generate", "--plugin", "eeg", "--model", model, "-c", "artifact=muscle", "-n", "8",
                               "--steps", "6", "--out", str(run))
    assert code == 0, err
    epochs = mne.read_epochs(run / "epochs-epo.fif", verbose="error")
    assert len(epochs) == 8 and list(epochs.annotations.description) == ["muscle"] * 8
    assert epochs.ch_names == list(data.CHANNELS) and epochs.info["sfreq"] == 250
    with np.load(run / "samples.npz") as archive:
        assert archive["x"].shape == (8, 19, 250) and list(archive["y"]) == ["muscle"] * 8
        assert np.allclose(archive["x"], epochs.get_data() * 1e6, rtol=1e-5, atol=1e-4)
    assert (run / "preview.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(list((run / "samples").glob("*.npz"))) == 8

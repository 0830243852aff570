import math

import numpy as np
import pytest
import soundfile
import torch

import condgen
from condgen import SampleRNG, load_checkpoint
from condgen.testing import invoke_core
from condgen_audio import data, evaluate
from condgen_audio.model import FAST_BETAS, DiffWavePath, step_embedding
from condgen_audio.sampling import chain, diffwave
from condgen_audio.train import RECIPES, build, mel_loss, model_config, normalise_mel, tiny, train, training_data

TINY_DIFFWAVE = {"channels": 8, "layers": 3, "cycle": 3}
TINY_MEL = {"channels": 16, "layers": 2, "cycle": 2}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """A few real clips: every digit from one train voice and one unheard voice."""
    torch.set_num_threads(1)
    folder = tmp_path_factory.mktemp("corpus")
    for split, voice in (("train", "en-us"), ("test", "en-029")):
        np.savez(folder / f"{split}.npz", **data.synthesise((voice,), variants=("m1",), renders=1, seed=0))
    return folder


def test_data_pipeline_on_a_few_clips(corpus):
    clips = data.load_split("train", corpus)
    assert clips["wave"].shape == (10, data.CLIP) and clips["wave"].dtype == np.float32
    assert clips["label"].tolist() == list(range(10))
    peaks = np.abs(clips["wave"]).max(1)
    assert np.allclose(peaks, 0.9, atol=1e-3)  # normalised speech, not silence
    middle = np.abs(clips["wave"][:, 7000:9000]).mean(1)
    edges = np.abs(clips["wave"][:, :300]).mean(1)
    assert (middle > 10 * edges).all()  # centred in the 1-second clip
    mel = data.log_mel(torch.from_numpy(clips["wave"]))
    assert mel.shape == (10, data.N_MELS, data.FRAMES)
    # different digits sound different; the same voice saying them keeps its spectrum
    assert not torch.allclose(mel[1], mel[7], atol=1.0)


def test_to_clip_resamples_to_16k_and_centres():
    rate = data.ESPEAK_RATE
    tone = np.sin(2 * np.pi * 440 * np.arange(rate // 4) / rate).astype(np.float32)  # 0.25 s
    clip = data.to_clip(tone, rate)
    assert clip.shape == (data.CLIP,)
    loud = np.flatnonzero(np.abs(clip) > 0.05)
    assert abs(len(loud) / data.SAMPLE_RATE - 0.25) < 0.01
    assert abs((loud[0] + loud[-1]) / 2 - data.CLIP / 2) < 50
    spectrum = np.abs(np.fft.rfft(clip))
    assert abs(np.argmax(spectrum) * data.SAMPLE_RATE / data.CLIP - 440) < 2


def test_diffwave_path_matches_the_discrete_chain_and_aligns_the_fast_schedule():
    path = DiffWavePath()
    betas = np.linspace(1e-4, 0.05, 50)
    s = np.arange(1, 51)
    assert np.allclose(path.alpha(s / 50), np.sqrt(np.cumprod(1 - betas)))
    assert np.allclose(path.alpha(s / 50) ** 2 + path.sigma(s / 50) ** 2, 1)
    ratio = path.sigma(s / 50) / path.alpha(s / 50)
    assert np.allclose(path.t_of_ratio(ratio), s / 50)
    fast_betas, times = chain(path, 6)
    infer_alpha = np.sqrt(np.cumprod(1 - np.array(FAST_BETAS)))
    assert np.allclose(path.alpha(times), infer_alpha)  # the paper's alignment
    assert np.all(np.diff(times) > 0) and 0 < times[0] < 1 / 50 + 1e-9 and times[-1] < 1
    # between training steps the fractional step interpolates sqrt(alpha-bar) linearly
    lo, hi = np.floor(times[3] * 50), np.ceil(times[3] * 50)
    frac = times[3] * 50 - lo
    assert np.isclose(infer_alpha[3], (1 - frac) * path.alpha(lo / 50) + frac * path.alpha(hi / 50))


def test_step_embedding_is_the_papers_sinusoids_at_training_steps_and_interpolates_between_them():
    half = 64
    # 10^(4i/63) with float32 rounding, as the model computes it (at step 49 the fastest
    # argument is 5e5 rad, where float32 rounding moves the sine by 1e-2)
    freqs = (10.0 ** (torch.arange(half, dtype=torch.float32) * 4.0 / (half - 1))).numpy()

    def sinusoids(s):
        args = (np.float32(s) * freqs).astype(np.float64)
        return np.concatenate([np.sin(args), np.cos(args)])

    got = step_embedding(torch.tensor([7.0, 7.25, 49.0])).double().numpy()
    assert np.allclose(got[0], sinusoids(7.0), atol=1e-4) and np.allclose(got[2], sinusoids(49.0), atol=1e-4)
    # the fast schedule's fractional steps sit between the embeddings training saw,
    # not at sin(10^4 * 7.25), which the network never met
    assert np.allclose(got[1], 0.75 * sinusoids(7.0) + 0.25 * sinusoids(8.0), atol=1e-3)
    assert not np.allclose(got[1], sinusoids(7.25), atol=0.1)


def test_diffwave_sampler_refuses_other_step_counts():
    model = build(model_config(tiny(RECIPES["wave"]), **TINY_DIFFWAVE)).eval()
    with pytest.raises(condgen.UsageError, match="6"):
        diffwave(model, (1, 1, 64), {"digit": torch.tensor([3])}, steps=7, rng=SampleRNG(0, [0]))


def test_short_training_lowers_the_loss(corpus, tmp_path):
    dataset = training_data("train", corpus)
    recipe = tiny(RECIPES["mel"], batch=10, lr=3e-3)
    out = tmp_path / "mel.safetensors"
    summary = train(recipe, out, steps=100, arch=TINY_MEL, train_data=dataset)
    checkpoint = load_checkpoint(out, generator="audio-mel")

    def heldout(tensors=None):
        torch.manual_seed(0)
        model = build(checkpoint.config)
        if tensors is not None:
            model.load_state_dict(tensors)
        test = training_data("test", corpus)
        x0 = normalise_mel(test["mel"], checkpoint.config["stats"])
        with torch.no_grad():
            return float(mel_loss(model.eval(), x0, {"digit": test["label"]}, torch.Generator().manual_seed(0)))

    assert summary["loss_last"] < summary["loss_first"], summary
    assert heldout(checkpoint.tensors) < 0.8 * heldout()


def test_a_wall_clock_budget_ends_training_and_keeps_state_and_snapshots_where_asked(corpus, tmp_path):
    out, state, snaps = tmp_path / "out" / "mel.safetensors", tmp_path / "state", tmp_path / "snaps"
    for folder in (out.parent, state, snaps):
        folder.mkdir()
    summary = train(tiny(RECIPES["mel"], batch=4, save_every=10**6), out, steps=10**6, arch=TINY_MEL,
                    train_data=training_data("train", corpus), budget_s=3.0, state_dir=state, snapshot_dir=snaps,
                    snapshot_fractions=(0.5,))
    # stopped by the budget, far short of the step bound, and the schedule was cut to fit it
    assert 0 < summary["steps"] < 10**6
    assert load_checkpoint(out, generator="audio-mel").config["trained"]["steps"] == summary["steps"]
    assert sorted(p.name for p in out.parent.iterdir()) == ["mel.safetensors"]
    assert [p.name for p in state.iterdir()] == ["mel.state.safetensors"]
    names = sorted((p.name for p in snaps.iterdir()), key=lambda name: int(name.split(".step")[1].split(".")[0]))  # by step: step90 before step176
    assert len(names) == 2 and names[-1] == f"mel.step{summary['steps']}.safetensors", names


def test_resume_continues_exactly_where_training_stopped(corpus, tmp_path):
    recipe, dataset = tiny(RECIPES["mel"], batch=4), training_data("train", corpus)
    straight = tmp_path / "straight.safetensors"
    train(recipe, straight, steps=20, arch=TINY_MEL, train_data=dataset)

    def stop_after_12(done, total, **_):
        if done == 12:
            raise KeyboardInterrupt

    broken = tmp_path / "broken.safetensors"
    with pytest.raises(KeyboardInterrupt):
        train(recipe, broken, steps=20, arch=TINY_MEL, train_data=dataset, progress=stop_after_12)
    assert (tmp_path / "broken.state.safetensors").is_file()  # the step-10 state survived
    summary = train(recipe, broken, steps=20, arch=TINY_MEL, train_data=dataset, resume=True)
    assert summary["resumed_from"] == 10
    a, b = load_checkpoint(straight).tensors, load_checkpoint(broken).tensors
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.fixture(scope="module")
def tiny_vocoder(corpus, tmp_path_factory):
    out = tmp_path_factory.mktemp("vocoder") / "vocoder.safetensors"
    train(tiny(RECIPES["vocoder"], crop=8), out, steps=30, arch=TINY_DIFFWAVE, train_data=training_data("train", corpus))
    return out


def test_vocoder_round_trip_on_a_tiny_model(corpus, tiny_vocoder, tmp_path):
    wave = data.load_split("test", corpus)["wave"][3, 4000:12000]
    source = tmp_path / "three.wav"
    soundfile.write(str(source), wave, data.SAMPLE_RATE, subtype="PCM_16")
    out = tmp_path / "run"
    code, stdout, stderr = invoke_core("generate", "--plugin", "audio", "--model", "vocoder", "-c", f"mel={source}", "-n", "2",
                                       "--weights", str(tiny_vocoder), "--out", str(out), "--seed", "1")
    assert code == 0, stderr
    frames = data.log_mel(torch.from_numpy(wave)).shape[-1]
    written = sorted(out.glob("**/*.wav"))
    assert len(written) == 2
    audio, rate = soundfile.read(str(written[0]), dtype="float32")
    info = soundfile.info(str(written[0]))
    assert rate == data.SAMPLE_RATE and info.subtype == "PCM_16" and audio.shape == (frames * data.HOP,)
    assert np.abs(audio).max() > 0 and not np.array_equal(audio, soundfile.read(str(written[1]), dtype="float32")[0])
    assert (out / "spectrograms.png").is_file()
    # the vocoder follows its mel: a louder mel gives louder audio even from a tiny model
    gen = condgen.load("audio", "vocoder")
    mel = data.log_mel(torch.from_numpy(wave)).numpy()
    quiet = gen.generate(n=1, condition={"mel": mel - 4.0}, weights=str(tiny_vocoder), seed=0).samples[0]
    loud = gen.generate(n=1, condition={"mel": mel}, weights=str(tiny_vocoder), seed=0).samples[0]
    assert quiet.shape == loud.shape == (frames * data.HOP,)


def test_the_shipped_cascade_says_the_requested_digit(tmp_path):
    """The documented command, on the shipped weights: four 16-bit WAVs of "three", which the
    judge (trained on the train voices, shipped beside them) hears as "three"."""
    out = tmp_path / "three"
    code, stdout, stderr = invoke_core("generate", "--plugin", "audio", "-c", "digit=3", "-n", "4", "--out", str(out))
    assert code == 0, stderr
    written = sorted(out.glob("**/*.wav"))
    assert len(written) == 4 and (out / "spectrograms.png").is_file()
    assert all(soundfile.info(str(p)).subtype == "PCM_16" for p in written)
    waves = torch.stack([torch.from_numpy(soundfile.read(str(p), dtype="float32")[0]) for p in written])
    _, heard = evaluate.embed_waves(waves)
    assert (heard == 3).sum() >= 3, heard


def test_bad_wav_input_gives_a_one_line_error(tmp_path):
    bad = tmp_path / "broken.wav"
    bad.write_bytes(b"RIFF\x00\x00\x00\x00WAVEnot really audio")
    code, stdout, stderr = invoke_core("generate", "--plugin", "audio", "--model", "vocoder", "-c", f"mel={bad}", "--out", str(tmp_path / "o"))
    assert code != 0
    message = stderr.strip()
    assert len(message.splitlines()) == 1 and "WAV" in message and "Traceback" not in message, message
    code, _, stderr = invoke_core("generate", "--plugin", "audio", "--model", "vocoder", "-c", f"mel={tmp_path / 'missing.wav'}", "--out", str(tmp_path / "p"))
    assert code != 0 and "not found" in stderr


def test_mrstft_and_mcd_are_zero_for_identical_audio_and_grow_with_noise(corpus):
    wave = torch.from_numpy(data.load_split("test", corpus)["wave"][:3])
    assert torch.allclose(evaluate.mrstft_distance(wave, wave), torch.zeros(3), atol=1e-5)
    assert torch.allclose(evaluate.mel_cepstral_distortion(wave, wave), torch.zeros(3), atol=1e-4)
    noisy = wave + 0.05 * torch.randn(wave.shape, generator=torch.Generator().manual_seed(0))
    noisier = wave + 0.2 * torch.randn(wave.shape, generator=torch.Generator().manual_seed(0))
    assert (evaluate.mrstft_distance(noisy, wave) < evaluate.mrstft_distance(noisier, wave)).all()
    assert (evaluate.mel_cepstral_distortion(noisy, wave) < evaluate.mel_cepstral_distortion(noisier, wave)).all()
    gl = evaluate.griffin_lim(data.log_mel(wave), length=wave.shape[-1])
    assert gl.shape == wave.shape and (evaluate.mrstft_distance(gl, wave) < evaluate.mrstft_distance(noisier, wave)).all()
    # over speech frames the digital silence is left out: noise there alone costs the
    # whole-clip figure, not the speech-frame one, nor the MCD (taken over speech frames)
    silent = wave.abs() < 1e-6
    floor = torch.where(silent, 1e-3 * torch.randn(wave.shape, generator=torch.Generator().manual_seed(1)), wave)
    assert silent.float().mean() > 0.2
    speech = evaluate.SPEECH_DB
    assert (evaluate.mrstft_distance(floor, wave) > 1.0).all()
    assert (evaluate.mrstft_distance(floor, wave, speech_db=speech) < 0.2 * evaluate.mrstft_distance(floor, wave)).all()
    assert torch.allclose(evaluate.mrstft_distance(wave, wave, speech_db=speech), torch.zeros(3), atol=1e-5)
    assert (evaluate.mel_cepstral_distortion(floor, wave) < 0.2 * evaluate.mel_cepstral_distortion(noisy, wave)).all()


def test_speech_frames_are_those_within_40_db_of_the_loudest():
    rate, hop = data.SAMPLE_RATE, data.HOP
    t = torch.arange(rate) / rate
    tone = torch.sin(2 * math.pi * 440 * t)
    # a loud tone in 0.4-0.6 s, the same tone 50 dB down in 0.1-0.3 s, exact zeros elsewhere
    wave = torch.where((t >= 0.4) & (t < 0.6), tone, torch.zeros(())) + torch.where((t >= 0.1) & (t < 0.3), 10 ** (-50 / 20) * tone, torch.zeros(()))
    frames = evaluate.speech_frames(wave[None])[0]  # frame f is centred on sample f * hop
    centres = torch.arange(len(frames)) * hop / rate
    assert frames.shape == data.log_mel(wave[None])[0, 0].shape  # the log-mel's frames
    assert frames[(centres > 0.45) & (centres < 0.55)].all()
    assert not frames[(centres < 0.35) | (centres > 0.65)].any()  # the quiet tone and the silence are out
    quiet = evaluate.speech_frames(wave[None], within_db=60)[0]  # a wider range takes the quiet tone in
    assert quiet[(centres > 0.15) & (centres < 0.25)].all() and not quiet[centres > 0.7].any()


def test_stoi_and_wide_band_pesq_are_at_their_maxima_for_the_truth_and_fall_with_noise(corpus):
    clips = data.load_split("test", corpus)
    wave = torch.from_numpy(clips["wave"])
    frames = evaluate.speech_frames(wave).sum(1)
    wave = wave[frames.argsort(descending=True)[:2]]  # the two longest utterances, so STOI is defined
    noise = torch.randn(wave.shape, generator=torch.Generator().manual_seed(0))
    power = wave.pow(2).mean(1, keepdim=True)
    at_snr = [wave + noise * torch.sqrt(power / 10 ** (snr / 10)) for snr in (20, 5, -5)]
    stoi = [evaluate.stoi(wave, wave), *[evaluate.stoi(x, wave) for x in at_snr]]
    pesq = [evaluate.pesq_wb(wave, wave), *[evaluate.pesq_wb(x, wave) for x in at_snr]]
    assert np.allclose(stoi[0], 1.0, atol=1e-6) and (pesq[0] > 4.6).all()  # wide-band PESQ tops out at 4.64
    for better, worse in zip(stoi, stoi[1:]):
        assert (better > worse).all(), stoi
    for better, worse in zip(pesq, pesq[1:]):
        assert (better > worse).all(), pesq
    assert (pesq[-1] < 1.5).all() and (stoi[-1] < 0.9).all()
    # PESQ is defined at 16 kHz: audio at another rate is resampled first, not misread
    import torchaudio.functional as AF

    up = [AF.resample(x, data.SAMPLE_RATE, 32_000) for x in (wave, at_snr[1])]
    assert np.allclose(evaluate.pesq_wb(up[0], up[0], rate=32_000), pesq[0], atol=0.05)
    assert np.allclose(evaluate.pesq_wb(up[1], up[0], rate=32_000), pesq[2], atol=0.3)
    # a word shorter than STOI's 30 frames (384 ms) of speech has no STOI, not pystoi's 1e-5
    short = torch.zeros(1, data.CLIP)
    short[0, 8000:10000] = torch.sin(torch.arange(2000) * 0.3)  # 125 ms of tone
    assert np.isnan(evaluate.stoi(short, short)).all()


def test_judge_noise_augmentation_leaves_a_third_clean_and_noises_the_rest(corpus):
    clips = data.load_split("train", corpus)
    wave = torch.from_numpy(clips["wave"][:30])
    mel = data.log_mel(wave)
    noisy = evaluate.add_noise(wave, mel, torch.Generator().manual_seed(0))
    changed = (noisy - mel).abs().flatten(1).amax(1) > 0
    assert noisy.shape == mel.shape and torch.isfinite(noisy).all()
    assert 0.4 <= changed.float().mean() <= 0.95, changed  # two kinds of noise of three, on 30 clips
    # both kinds lift silent bins (more than half of each clip) off the log floor
    floor = math.log(data.LOG_FLOOR)
    assert (noisy[changed] > floor + 1.0).float().mean() > (mel[changed] > floor + 1.0).float().mean()

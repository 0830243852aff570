"""Audio plugin quality: digit accuracy of the cascade, the vocoder against Griffin-Lim,
and the learning curve of direct class-conditional DiffWave.

    .venv/bin/python benchmarks/audio_quality.py --write     # benchmarks/audio_<part>.json, docs/plugins/audio/*.png

Parts (each can be run alone with --parts):

- cascade: ``n`` clips from ``audio`` (digits 0-9 in turn, dpmpp-2m 20 steps, CFG 2) with
  the vocoder's fast 6-step schedule, and ``n50`` clips with its 50-step chain; the
  spoken-digit classifier's accuracy per digit and the Fréchet distance on its features
  against the unheard test voices.
- vocoder: the clips of the unheard test voices (all 640, or the first ``--clips``); their
  log-mels vocoded (``--vocoder-steps``, default the fast 6-step schedule) and inverted by
  Griffin-Lim (32 iterations); against the ground truth: MR-STFT over speech frames only
  (within 40 dB of each utterance's loudest frame), STOI (pystoi) and wide-band PESQ (pesq),
  the spoken-digit judge's accuracy, MCD over the speech frames, real-time factor (the
  CPU threads of --threads). Beside them the whole-clip MR-STFT and that of the ground truth
  plus white noise at -90/-80/-60 dBFS, which show why the whole-clip measure was dropped.
  With --write: benchmarks/audio_vocoder.json, the log-mel picture and the listening
  examples (docs/plugins/audio/listen/*.wav: three fixed clips, each as ground truth,
  vocoder and Griffin-Lim).
- mels: diagnostic, the cascade's first stage alone: the judge on the generated log-mels
  and on the same mels inverted by Griffin-Lim.
- wave: every saved snapshot of ``audio-wave`` (``--snapshots``), ``wave_n`` clips each
  (diffwave 6 steps, CFG 2): accuracy vs training steps.
"""

from __future__ import annotations

import argparse
import json
import re
import time
from pathlib import Path

import condgen
import numpy as np
import torch
from condgen_audio import data, evaluate
from condgen_audio.generator import AudioVocoderGenerator, vocode
from samplers_common import in_index_order, in_processes, round_robin

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "plugins" / "audio.md"
PICTURES = ROOT / "docs" / "plugins" / "audio"
LISTENING = PICTURES / "listen"  # the vocoder comparison's WAVs
RESULTS = ROOT / "benchmarks" / "audio_quality.json"  # one audio_<part>.json per part beside it


def _cascade_part(job: tuple) -> tuple[list, list]:
    """Samples ``indices`` of the cascade run (a worker process; one torch thread)."""
    n, vocoder_steps, seed, batch, indices = job
    torch.set_num_threads(1)
    gen = condgen.load("audio")
    gen.vocoder_steps = vocoder_steps
    session = gen.session(condition={"digit": [i % 10 for i in range(n)]}, seed=seed)
    batches = [session.sample(b) for b in session.plan(indices, batch)]
    return [s for b in batches for s in b.samples], [c for b in batches for c in b.conditions]


def cascade(n: int, vocoder_steps: int, seed: int = 0, batch: int = 50, workers: int = 1) -> dict:
    """Digits 0-9 in turn; sample i is the same in any worker or batch (per-index seeds),
    so ``workers`` processes share the indices and the scores do not change."""
    gen = condgen.load("audio")
    started = time.perf_counter()
    chunks = round_robin(n, workers)
    parts = in_processes(_cascade_part, [(n, vocoder_steps, seed, batch, chunk) for chunk in chunks])
    seconds = time.perf_counter() - started
    samples = in_index_order(chunks, [part[0] for part in parts])
    conditions = in_index_order(chunks, [part[1] for part in parts])
    scores = evaluate.digit_metrics(gen, samples, conditions)
    return {"n": n, "vocoder_steps": vocoder_steps, "seconds": round(seconds, 1), "workers": workers, "scores": scores,
            "samples": samples[:20], "conditions": conditions[:20]}


def cascade_mels(n: int, gl_clips: int, seed: int = 0) -> dict:
    """Diagnostic: the cascade's first stage alone. The judge reads log-mels, so it can score
    the generated mels directly, and the same mels inverted by Griffin-Lim (32 iterations)."""
    from condgen.generators import Session

    gen = condgen.load("audio")
    session = Session(gen, condition={"digit": [i % 10 for i in range(n)]}, seed=seed)
    mels = torch.cat([torch.stack(session.sample(b).samples) for b in session.plan(range(n), 100)]).cpu()
    requested = np.array([i % 10 for i in range(n)])
    with torch.no_grad():
        predicted = evaluate.load_classifier()(mels).argmax(1).numpy()
    gl = evaluate.griffin_lim(mels[:gl_clips], 32, length=data.CLIP)
    _, gl_predicted = evaluate.embed_waves(gl)
    return {"n": n, "mel_accuracy": float((predicted == requested).mean()), "gl_clips": gl_clips,
            "griffin_lim_accuracy": float((gl_predicted == requested[:gl_clips]).mean())}


def synthesise(render, mel: torch.Tensor, batch: int = 10) -> tuple[torch.Tensor, float]:
    """``render(ids, mels)`` -> waveforms, over ``mel`` in batches: ([N, 16000] clips, wall seconds)."""
    waves, seconds = [], 0.0
    for start in range(0, len(mel), batch):
        ids = list(range(start, min(len(mel), start + batch)))
        t0 = time.perf_counter()
        with torch.inference_mode():
            out = render(ids, mel[ids])
        seconds += time.perf_counter() - t0
        waves.append(out[..., : data.CLIP].float().cpu())
    return torch.cat(waves), seconds


def speech_scores(est: torch.Tensor, truth: torch.Tensor, labels: np.ndarray, seconds: float | None) -> dict:
    """The restated comparison's measures of ``est`` against ``truth`` (means over clips),
    and the per-clip STOI and PESQ for paired comparisons."""
    stoi, pesq = evaluate.stoi(est, truth), evaluate.pesq_wb(est, truth)
    _, predicted = evaluate.embed_waves(est)
    return {"clips": len(est),
            "mrstft_speech_frames": float(evaluate.mrstft_distance(est, truth, speech_db=evaluate.SPEECH_DB).mean()),
            "stoi": float(np.nanmean(stoi)), "stoi_clips": int(np.isfinite(stoi).sum()),
            "pesq_wb": float(pesq.mean()),
            "judge_accuracy": float((predicted == labels).mean()),
            "mcd_db": float(evaluate.mel_cepstral_distortion(est, truth).mean()),
            "rtf": None if seconds is None else seconds / (len(est) * data.CLIP / data.SAMPLE_RATE),
            "mrstft_whole_clip": float(evaluate.mrstft_distance(est, truth).mean()),
            "per_clip": {"stoi": stoi, "pesq_wb": pesq}}


def vocoder(clips: int | None, steps_list=(6,), seed: int = 0, device: str = "cpu", weights: Path | None = None,
            listen: Path | None = None) -> dict:
    """The vocoder against Griffin-Lim (32 iterations) on the log-mels of the unheard test
    voices' clips (all of them, or the first ``clips``), every measure against the ground truth."""
    test = data.load_split("test")
    count = len(test["wave"]) if clips is None else min(clips, len(test["wave"]))
    truth, labels = torch.from_numpy(test["wave"][:count]), test["label"][:count]
    mel = data.log_mel(truth)
    # weights: a candidate checkpoint (e.g. a training run's) instead of the shipped one
    model, _ = AudioVocoderGenerator().load_model(str(weights) if weights is not None else None)
    model = model.to(device)
    out = {"clips": count, "voices": list(data.TEST_VOICES), "weights": str(weights) if weights else "shipped",
           "speech_db": evaluate.SPEECH_DB, "ground_truth": speech_scores(truth, truth, labels, None)}
    waves = {"truth": truth}
    for steps in steps_list:
        def render(ids, m, steps=steps):
            return vocode(model, m.to(device), condgen.SampleRNG(seed, ids, device), steps).x[:, 0]

        waves[f"diffwave_{steps}"], seconds = synthesise(render, mel)
        out[f"diffwave_{steps}"] = speech_scores(waves[f"diffwave_{steps}"], truth, labels, seconds)
    waves["griffin_lim_32"], seconds = synthesise(lambda ids, m: evaluate.griffin_lim(m, 32, length=data.CLIP), mel)
    out["griffin_lim_32"] = speech_scores(waves["griffin_lim_32"], truth, labels, seconds)
    for steps in steps_list:  # paired: the share of clips on which the vocoder scores higher
        mine, gl = out[f"diffwave_{steps}"]["per_clip"], out["griffin_lim_32"]["per_clip"]
        both = {key: np.isfinite(mine[key]) & np.isfinite(gl[key]) for key in ("stoi", "pesq_wb")}
        out[f"diffwave_{steps}"]["beats_griffin_lim"] = {key: float(np.mean(mine[key][k] > gl[key][k])) for key, k in both.items()}
    # why the whole-clip MR-STFT was dropped: the ground truth itself with inaudible white noise
    noise = torch.randn(truth.shape, generator=torch.Generator().manual_seed(seed))
    out["truth_plus_noise"] = {f"{dbfs} dBFS": {"mrstft_whole_clip": float(evaluate.mrstft_distance(truth + 10 ** (dbfs / 20) * noise, truth).mean()),
                                                "mrstft_speech_frames": float(evaluate.mrstft_distance(truth + 10 ** (dbfs / 20) * noise, truth,
                                                                                                       speech_db=evaluate.SPEECH_DB).mean())}
                               for dbfs in (-90, -80, -60)}
    shown = [index for index in LISTEN if index < count]
    if listen is not None:
        out["listening_examples"] = write_listening_examples(listen, waves, test, shown)
    out["examples"] = {name: wave[shown].numpy() for name, wave in waves.items()}
    for scores in out.values():
        if isinstance(scores, dict):
            scores.pop("per_clip", None)
    return out


# The listening examples: fixed test clips chosen by voice, variant and digit (not by score).
LISTEN = (0 * 320 + 0 * 20 + 3 * 2, 1 * 320 + 8 * 20 + 7 * 2, 0 * 320 + 13 * 20 + 5 * 2)  # en-029+m1 three, en-gb-x-gbcwmd+f1 seven, en-029+klatt five


def write_listening_examples(folder: Path, waves: dict, test: dict, shown: list[int]) -> list[str]:
    """16-bit WAVs at the model's rate: ``<voice>-<digit>-<method>.wav`` for each clip ``shown``."""
    import soundfile

    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for index in shown:
        voice, digit = data.TEST_VOICES[int(test["voice"][index])], data.DIGITS[int(test["label"][index])]
        for name, wave in waves.items():
            path = folder / f"{voice}-{digit}-{name.replace('_', '-')}.wav"
            soundfile.write(path, np.clip(wave[index].numpy(), -1, 1), data.SAMPLE_RATE, subtype="PCM_16")
            written.append(str(path.relative_to(ROOT)))
    return written


def wave_curve(snapshots: list[Path], n: int, seed: int = 0) -> list[dict]:
    gen = condgen.load("audio", "wave")
    rows = []
    for path in snapshots:
        steps = int(re.search(r"step(\d+)", path.name).group(1)) if "step" in path.name else None
        digits = [i % 10 for i in range(n)]
        run = gen.generate(n=n, condition={"digit": digits}, seed=seed, weights=str(path), batch_size=25)
        scores = evaluate.digit_metrics(gen, run.samples, run.conditions)
        rows.append({"weights": path.name, "train_steps": steps, "accuracy": scores["accuracy"], "fd": scores["fd"], "n": n})
        print(rows[-1], flush=True)
    return rows


def plot_examples(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    examples = result["examples"]
    names = ["truth", *[k for k in examples if k.startswith("diffwave")], "griffin_lim_32"]
    columns = len(examples["truth"])
    fig, axes = plt.subplots(len(names), columns, figsize=(2 * columns, 1.6 * len(names)), squeeze=False)
    for r, name in enumerate(names):
        for c in range(columns):
            mel = data.log_mel(torch.as_tensor(examples[name][c])).numpy()
            axes[r, c].imshow(mel, origin="lower", aspect="auto", cmap="magma", vmin=-11.5, vmax=2.0)
            axes[r, c].set_xticks([])
            axes[r, c].set_yticks([])
        axes[r, 0].set_ylabel(name.replace("_", " "), fontsize=8)
    fig.suptitle("unheard test voices: ground truth, DiffWave vocoder, Griffin-Lim (log-mel of each)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def plot_curve(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in rows if r["train_steps"]]
    fig, ax = plt.subplots(figsize=(4.5, 3))
    ax.plot([r["train_steps"] for r in rows], [100 * r["accuracy"] for r in rows], "o-")
    ax.axhline(10, color="grey", ls=":", label="chance")
    ax.set_xlabel("training steps (batch 4 one-second clips)")
    ax.set_ylabel("digit accuracy, %")
    ax.set_title("audio-wave: class-conditional DiffWave", fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--parts", default="cascade6,cascade50,vocoder,wave", help="any of cascade6, cascade50, mels, vocoder, wave")
    parser.add_argument("--n", type=int, default=500, help="cascade clips with the 6-step vocoder")
    parser.add_argument("--n50", type=int, default=500, help="cascade clips with the 50-step vocoder")
    parser.add_argument("--clips", type=int, default=None, help="the first CLIPS test-voice clips for the vocoder comparison (default: all 640)")
    parser.add_argument("--vocoder-steps", default="6", help="vocoder schedules to compare, e.g. 6,50")
    parser.add_argument("--vocoder-weights", type=Path, default=None, help="evaluate this audio-vocoder checkpoint instead of the shipped one")
    parser.add_argument("--wave-n", type=int, default=100)
    parser.add_argument("--snapshots", nargs="*", default=[], help="audio-wave checkpoints (name ...stepN.safetensors)")
    parser.add_argument("--write", action="store_true", help="write benchmarks/audio_<part>.json and the pictures")
    parser.add_argument("--device", default="cpu", help="where the vocoder comparison runs (generation picks CUDA when present)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--workers", type=int, default=1, help="processes sharing the cascade's clips (one thread each)")
    parser.add_argument("--machine", default=None, help="recorded with the figures (default: the CPU threads used)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    parts = set(args.parts.split(","))
    PICTURES.mkdir(parents=True, exist_ok=True)
    machine = args.machine or f"2 shared CPU cores, torch.set_num_threads({args.threads})"

    def save(part: str, result: dict) -> None:
        print(json.dumps(result, indent=1, default=float), flush=True)
        if args.write:
            (RESULTS.parent / f"audio_{part}.json").write_text(json.dumps({**result, "machine": machine}, indent=1, default=float) + "\n")

    if "vocoder" in parts:
        result = vocoder(args.clips, tuple(int(s) for s in args.vocoder_steps.split(",")), device=args.device,
                         weights=args.vocoder_weights, listen=LISTENING if args.write else None)
        if args.write:
            plot_examples(result, PICTURES / "vocoder_vs_griffin_lim.png")
        save("vocoder", {k: v for k, v in result.items() if k != "examples"})
    if "mels" in parts:
        save("mels", cascade_mels(args.n, args.clips or 100))
    for steps, n in ((6, args.n), (50, args.n50)):
        if f"cascade{steps}" not in parts:
            continue
        result = cascade(n, steps, workers=args.workers)
        if args.write and steps == 6:
            from condgen_audio.evaluate import write_spectrogram_grid

            write_spectrogram_grid(PICTURES / "cascade_samples.png", result["samples"], [data.DIGITS[c["digit"]] for c in result["conditions"]],
                                   "audio (cascade): log-mels of generated clips, requested digit above")
        save(f"cascade{steps}", {k: v for k, v in result.items() if k not in ("samples", "conditions")})
    if "wave" in parts and args.snapshots:
        rows = wave_curve([Path(p) for p in args.snapshots], args.wave_n)
        if args.write:
            plot_curve(rows, PICTURES / "wave_learning_curve.png")
        save("wave", {"curve": rows})


if __name__ == "__main__":
    main()

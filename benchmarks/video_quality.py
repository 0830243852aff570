"""Quality and speed of the video plugin's shipped weights; figures for docs/plugins/video.md.

    .venv/bin/python benchmarks/video_quality.py --write      # about 10-20 minutes on one CPU thread

Parts (seed 0 throughout):

- autoencoder: reconstruction PSNR of 500 real clips of the *test* digits, and the latent
  size against the raw clip;
- real: the same scores on 200 real clips of the test digits with the same conditions;
- generation: 200 clips from labels (sample i asks for digit i mod 10, direction i mod 8
  and speed 1.0, 1.25, ... 2.0 in turn), scored by ``condgen_video.evaluate`` at the
  default sampler, steps and guidance, and with CFG 1 (none), 2, 3 and 3 on sigma/alpha 0.3-10 beside it; sampling
  time per clip;
- frame prediction: 200 real test clips, the first 4 frames given (no labels), PSNR of
  the 12 generated frames against the true continuation, beside copying the last given
  frame;
- figures: a filmstrip of generated clips and one of frame predictions with their truth.

Results go to benchmarks/video_quality.json; figures to docs/plugins/video/.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np
import torch

import condgen
from condgen_video import data, evaluate
from condgen_video.media import write_filmstrip

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "video_quality.json"
FIGURES = ROOT / "docs" / "plugins" / "video"
GIVEN = 4
COMPARED = ("cfg=1", "cfg=2", "cfg=3", "cfg=3,interval=0.3:10")  # beside the generator's default guidance


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """Mean over clips of the PSNR (peak 1) of each clip's frames."""
    mse = ((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2).reshape(len(a), -1).mean(1)
    return float(np.mean(10 * np.log10(1.0 / np.maximum(mse, 1e-10))))


def label_conditions(n: int) -> dict:
    speeds = [1.0, 1.25, 1.5, 1.75, 2.0]
    return {"digit": [i % 10 for i in range(n)], "direction": [data.DIRECTIONS[i % 8] for i in range(n)], "speed": [speeds[i % 5] for i in range(n)]}


def part_autoencoder(generator) -> dict:
    model = generator.network()
    clips = data.clips(500, "test", seed=21)["clips"]
    started = time.perf_counter()
    with torch.no_grad():
        z = torch.cat([model.to_latent(torch.from_numpy(clips[i : i + 50])) for i in range(0, 500, 50)])
        back = torch.cat([model.to_clip(z[i : i + 50]) for i in range(0, 500, 50)]).numpy()
    seconds = time.perf_counter() - started
    return {"psnr": psnr(back, clips), "latent_values": int(z[0].numel()), "clip_values": int(clips[0].size),
            "compression": clips[0].size / z[0].numel(), "round_trip_ms_per_clip": 1000 * seconds / 500}


def part_real(n: int) -> dict:
    """The same scores on real clips of the test digits with the same conditions: what the
    judges and the centroid track make of the real thing."""
    conditions = label_conditions(n)
    images, labels = data.glyphs("test")
    rng = np.random.default_rng(41)
    clips, asked = [], []
    for i in range(n):
        digit, direction, speed = conditions["digit"][i], data.DIRECTIONS.index(conditions["direction"][i]), conditions["speed"][i]
        glyph = images[int(rng.choice(np.flatnonzero(labels == digit)))]
        clips.append(data.make_clip(glyph, direction, speed, rng)[0])
        asked.append({"digit": digit, "direction": direction, "speed": speed})
    return evaluate.scores(clips, asked)


def part_generation(generator, n: int, guidance: str) -> tuple[dict, object]:
    started = time.perf_counter()
    run = generator.generate(n, condition=label_conditions(n), seed=0, device="cpu", guidance=[guidance])
    wall = time.perf_counter() - started
    scores = evaluate.scores(run.samples, run.conditions)
    scores.update(guidance=guidance, sampler=run.manifest.get("sampler"), nfe=run.manifest.get("nfe"), ms_per_clip=1000 * wall / n)
    return scores, run


def part_prediction(generator, n: int) -> tuple[dict, list]:
    truth = data.clips(n, "test", seed=31)["clips"]
    predicted, started = [], time.perf_counter()
    for k in range(n):  # one run per clip: a frames condition is one clip's frames
        run = generator.generate(1, condition={"frames": truth[k][:GIVEN]}, seed=k, device="cpu")
        predicted.append(run.samples[0])
    wall = time.perf_counter() - started
    predicted = np.stack(predicted)
    copy_last = np.repeat(truth[:, GIVEN - 1 : GIVEN], data.FRAMES - GIVEN, axis=1)
    motion_ok = np.mean([data.motion_of(p)[0] == data.motion_of(t)[0] for p, t in zip(predicted, truth)])
    scores = {"n": n, "given_frames": GIVEN, "psnr": psnr(predicted[:, GIVEN:], truth[:, GIVEN:]),
              "psnr_copy_last_frame": psnr(copy_last, truth[:, GIVEN:]), "direction_kept": float(motion_ok),
              "ms_per_clip": 1000 * wall / n}
    consistency = evaluate.scores(list(predicted), [{} for _ in predicted])
    scores["consistency"], scores["consistency_all_frames"] = consistency["consistency"], consistency["consistency_all_frames"]
    return scores, [truth, predicted]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=200)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--write", action="store_true", help="write benchmarks/video_quality.json and the figures")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    generator = condgen.load("video")
    out = {"machine": f"{platform.machine()}, {args.threads} CPU thread(s)", "torch": torch.__version__}
    out["autoencoder"] = part_autoencoder(generator)
    print("autoencoder", out["autoencoder"], flush=True)
    out["real"] = part_real(args.n)
    print("real", out["real"], flush=True)
    out["generation"] = []
    default = ",".join(generator.default_guidance)
    for guidance in [default] + [g for g in COMPARED if g != default]:
        scores, run = part_generation(generator, args.n, guidance)
        out["generation"].append(scores)
        print("generation", scores, flush=True)
        if guidance == default and args.write:
            FIGURES.mkdir(parents=True, exist_ok=True)
            shown = list(range(0, 16))
            write_filmstrip(FIGURES / "samples.png", [run.samples[i] for i in shown], [f"{i}: {generator.caption(run.conditions[i])}" for i in shown],
                            title=f"video, {generator.default_sampler} {generator.default_steps} steps, {guidance} (seed 0)")
    out["prediction"], (truth, predicted) = part_prediction(generator, args.n)
    print("prediction", out["prediction"], flush=True)
    if args.write:
        rows, captions = [], []
        for i in range(6):
            rows += [truth[i], predicted[i]]
            captions += [f"truth {i}", f"predicted {i}"]
        write_filmstrip(FIGURES / "prediction.png", rows, captions, title=f"frame prediction: first {GIVEN} frames given")
        RESULTS.write_text(json.dumps(out, indent=1) + "\n")
        print("wrote", RESULTS)


if __name__ == "__main__":
    main()

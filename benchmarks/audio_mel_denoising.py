"""Does the mel denoiser need a linear input-to-output path? An A/B on this CPU.

    .venv/bin/python benchmarks/audio_mel_denoising.py [--steps 400]   # writes benchmarks/audio_mel_denoising.json

Two small mel denoisers (64 channels, 8 layers), identical but for ``linear_skip``, each
trained ``--steps`` steps (batch 32, Adam 1e-3, seed 0) on the train voices' log-mels;
then the error of their x0 estimate, mean squared in normalised units, on 128 clips of
the unheard voices at fixed noise levels t (VP linear path, fixed noise). A good
denoiser's error grows with t; without the linear path it does not (t = 0.3 is worse
than t = 0.5), which is where the shipped cascade's generated mels go wrong.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from condgen.paths import VPPath
from condgen_audio.model import MelDenoiser
from condgen_audio.train import mel_loss, mel_stats, normalise_mel, training_data

RESULTS = Path(__file__).with_suffix(".json")
NOISE_LEVELS = (0.05, 0.1, 0.3, 0.5, 0.8)


def x0_errors(model, x0, labels) -> dict:
    gen = torch.Generator().manual_seed(1)
    errors = {}
    with torch.no_grad():
        for t in NOISE_LEVELS:
            tt = torch.full((len(x0),), t)
            alpha, sigma = model.path.alpha(tt)[:, None, None].float(), model.path.sigma(tt)[:, None, None].float()
            x_t = alpha * x0 + sigma * torch.randn(x0.shape, generator=gen)
            estimate = alpha * x_t - sigma * model(x_t, tt, {"digit": labels})  # x0 from v
            errors[str(t)] = round(float(((estimate - x0) ** 2).mean()), 4)
    return errors


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=400)
    args = parser.parse_args()
    torch.set_num_threads(1)
    train, test = training_data("train"), training_data("test")
    stats = mel_stats(train["mel"])
    x, labels = normalise_mel(train["mel"], stats), train["label"]
    x_test, labels_test = normalise_mel(test["mel"][:128], stats), test["label"][:128]
    rows = []
    for linear_skip in (False, True):
        torch.manual_seed(0)
        model = MelDenoiser(mels=64, frames=63, channels=64, layers=8, cycle=4, num_classes=10, path=VPPath("linear"),
                            linear_skip=linear_skip)
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        gen = torch.Generator().manual_seed(0)
        started = time.perf_counter()
        for _ in range(args.steps):
            index = torch.randint(len(x), (32,), generator=gen)
            loss = mel_loss(model, x[index], {"digit": labels[index]}, gen)
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
        rows.append({"linear_skip": linear_skip, "steps": args.steps, "seconds": round(time.perf_counter() - started, 1),
                     "x0_mse_by_t": x0_errors(model.eval(), x_test, labels_test)})
        print(rows[-1], flush=True)
    RESULTS.write_text(json.dumps({"rows": rows, "machine": "2 shared CPU cores, torch.set_num_threads(1)"}, indent=1) + "\n")


if __name__ == "__main__":
    main()

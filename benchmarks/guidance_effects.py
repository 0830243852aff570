"""Measured effect of each guidance method on targets with exact answers.

    .venv/bin/python benchmarks/guidance_effects.py [--write]

Uses the oracles of tests/conformance/guidance_oracles.py (two-class Gaussian mixture
with exact denoisers and classifier, bigram LMs with exact logits). Prints markdown
tables; with --write they replace the block between the markers in docs/guidance.md
and the accuracy/variance-vs-scale plot is written to docs/img/guidance_cfg_scale.png.
"""

from __future__ import annotations

import argparse
import platform
import re
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "conformance"))

from guidance_oracles import F64, GroupedMixture, accuracy_and_spread, bigram_oracles, labels, measurement_posterior, run, two_class  # noqa: E402

from condgen.execution import SampleRNG  # noqa: E402
from condgen.guidance import APG, CADS, CFG, DPS, TFG, ClassifierGuidance, GeDi, bind_rng, guided  # noqa: E402
from condgen.paths import VPPath  # noqa: E402
from condgen.samplers.denoising import ddim  # noqa: E402
from condgen.search import BestOfN, TreeSearch  # noqa: E402

SCALES = (0.0, 1.0, 1.5, 2.0, 3.0, 5.0)


def cfg_sweep(n=4000):
    model = two_class("eps")
    rows = []
    for scale in SCALES:
        cfg = accuracy_and_spread(model, run(guided(model, CFG(scale)), n, 0, steps=40, eta=1.0, seed=5), 0)
        apg = accuracy_and_spread(model, run(guided(model, APG(scale, eta=0.0)), n, 0, steps=40, eta=1.0, seed=5), 0)
        rows.append((scale, *cfg, *apg))
    return rows


def classifier_vs_conditional(n=10_000):
    model = two_class("eps")
    with torch.no_grad():
        x = run(guided(model, ClassifierGuidance(1.0, classifier=model.noisy_logits, key="component")), n, 1, steps=40, eta=1.0, seed=3)
    ref = run(model, n, 1, steps=40, eta=1.0, seed=4)
    return x.mean(0).tolist(), x.var(0).tolist(), ref.mean(0).tolist(), ref.var(0).tolist()


def measurement(n=3000):
    model = two_class("eps", separation=2.0, std=0.7)
    y, noise_std = 1.5, 0.3
    exact_mean, exact_weights = measurement_posterior(model, y, noise_std)

    def loglik(x0, cond):
        return -0.5 * (x0[:, 0] - y) ** 2 / noise_std**2

    def error(x):
        mass = float((model.posterior(x).argmax(1) == 1).double().mean())
        return float((x.mean(0) - exact_mean).norm()), abs(mass - float(exact_weights[1]))

    with torch.no_grad():
        rows = {
            "unguided": error(run(model, n, -1, steps=50, eta=1.0, seed=7)),
            "dps (1.0)": error(run(guided(model, DPS(1.0, reward=loglik)), n, -1, steps=50, eta=1.0, seed=7)),
            "tfg (rho 0.5, mu 0.05, iters 2)": error(run(guided(model, TFG(rho=0.5, mu=0.05, iters=2, reward=loglik)), n, -1, steps=50, eta=1.0, seed=7)),
        }
    return rows


def cads(n=2000):
    means = torch.tensor([[-2.0, 0.0], [0.0, 0.0], [3.0, 0.0]], dtype=F64)
    model = GroupedMixture(means, torch.full((3,), 0.5, dtype=F64), torch.tensor([0.5, 0.25, 0.25], dtype=F64), [0, 1, 1], VPPath("linear"))

    def near(*g):
        m = guided(model, *g)
        rng = SampleRNG(11, range(n))
        bind_rng(m, rng)
        x = ddim(m, (n, 2), labels(n, 1), steps=30, rng=rng, dtype=F64).x
        return float((x[:, 0] < 1.5).double().mean())

    return [(w, near(CFG(w)), near(CADS(noise=1.0, tau1=0.3, tau2=0.9), CFG(w))) for w in (1.0, 2.0, 4.0)]


def gedi(n=400, length=8, target=1):
    base, cclm = bigram_oracles(vocab=8, classes=3, seed=1)
    rows = []
    for omega in (0.0, 1.0, 2.0, 4.0, 8.0):
        model = guided(base, GeDi(omega, cclm=cclm, key="topic"))
        rng = SampleRNG(0, range(n))
        tokens, cache = torch.zeros(n, 1, dtype=torch.long), None
        cond = {"topic": torch.full((n,), target)}
        for _ in range(length):
            logits, cache = model(tokens if cache is None else tokens[:, -1:], cond, cache)
            tokens = torch.cat([tokens, rng.categorical(torch.softmax(logits, -1))[:, None]], 1)
        loglik = sum(cclm.tables[:, tokens[:, i], tokens[:, i + 1]] for i in range(length))
        base_ll = sum(base.tables[0, tokens[:, i], tokens[:, i + 1]] for i in range(length))
        rows.append((omega, float(torch.softmax(loglik, 0)[target].mean()), float(torch.exp(-base_ll / length).mean())))
    return rows


def search(n=48, budget=120):
    model = two_class("eps", separation=2.0, std=0.7)

    def reward(x, cond):
        return -((x - torch.tensor([2.5, 0.5], dtype=x.dtype)) ** 2).sum(1)

    cond = labels(n, -1)
    with torch.no_grad():
        plain = ddim(model, (n, 2), cond, steps=budget, rng=SampleRNG(0, range(n)), eta=1.0, dtype=F64)
        best = BestOfN(budget=budget, reward=reward).run(ddim, model, (n, 2), cond, steps=20, rng=SampleRNG(0, range(n)), eta=1.0, dtype=F64)
        tree = TreeSearch(budget=budget, reward=reward, branch=3).run(ddim, model, (n, 2), cond, steps=20, rng=SampleRNG(0, range(n)), dtype=F64)
    return [(name, r.nfe, float(reward(r.x, cond).mean())) for name, r in (("plain ddim (eta 1, 120 steps)", plain), ("best-of-6 x 20 steps", best), ("tree search, 20 steps, branch 3", tree))]


def plot(rows, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    scales = [r[0] for r in rows]
    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.4), dpi=110)
    left.plot(scales, [r[1] for r in rows], "o-", label="CFG")
    left.plot(scales, [r[3] for r in rows], "s--", label="APG (eta 0)")
    left.set_xlabel("guidance scale")
    left.set_ylabel("class accuracy (exact classifier)")
    left.legend()
    right.plot(scales, [r[2] for r in rows], "o-", label="CFG")
    right.plot(scales, [r[4] for r in rows], "s--", label="APG (eta 0)")
    right.set_xlabel("guidance scale")
    right.set_ylabel("variance of samples for class 0 (trace)")
    right.legend()
    fig.suptitle("Two-class Gaussian mixture, class 0, DDIM eta=1, 40 steps, n=4000")
    fig.tight_layout()
    fig.savefig(path)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--write", action="store_true")
    args = parser.parse_args()
    sweep = cfg_sweep()
    lines = [f"Measured on {platform.machine()}, {torch.get_num_threads()} threads, torch {torch.__version__}, CPU, float64 oracles.", ""]
    lines += ["**CFG and APG vs scale** (two-class mixture, class 0, exact posterior classifier):", "",
              "| scale | CFG accuracy | CFG within-class var | APG (eta 0) accuracy | APG within-class var |", "|---:|---:|---:|---:|---:|"]
    lines += [f"| {s:g} | {a:.3f} | {v:.3f} | {a2:.3f} | {v2:.3f} |" for s, a, v, a2, v2 in sweep]
    m, v, rm, rv = classifier_vs_conditional()
    lines += ["", "**Classifier guidance, scale 1, exact noisy classifier** vs the conditional model, same sampler (n = 10,000; exact class mean (1, 0)):", "",
              "| | mean | variance |", "|---|---|---|",
              f"| guided unconditional | ({m[0]:.3f}, {m[1]:.3f}) | ({v[0]:.3f}, {v[1]:.3f}) |",
              f"| conditional | ({rm[0]:.3f}, {rm[1]:.3f}) | ({rv[0]:.3f}, {rv[1]:.3f}) |"]
    lines += ["", "**Training-free guidance toward y = x[0] + n** (y = 1.5, noise std 0.3; error against the closed-form posterior):", "",
              "| method | mean error | class-mass error |", "|---|---:|---:|"]
    lines += [f"| {k} | {a:.3f} | {b:.3f} |" for k, (a, b) in measurement().items()]
    lines += ["", "**CADS** (class 1 = a mode near class 0 and a far one, mass 1/2 each; share of samples in the near mode):", "",
              "| CFG scale | CFG | CFG + CADS (noise 1, tau 0.3-0.9) |", "|---:|---:|---:|"]
    lines += [f"| {w:g} | {a:.3f} | {b:.3f} |" for w, a, b in cads()]
    lines += ["", "**GeDi** (bigram oracles, 3 classes, 8 tokens, n = 400; exact class posterior of generated sequences, base-LM perplexity):", "",
              "| omega | class posterior | base-LM perplexity |", "|---:|---:|---:|"]
    lines += [f"| {o:g} | {p:.3f} | {q:.2f} |" for o, p, q in gedi()]
    lines += ["", "**Search at equal NFE** (reward -||x - (2.5, 0.5)||^2, mixture prior, n = 48):", "",
              "| method | NFE per sample | mean reward |", "|---|---:|---:|"]
    lines += [f"| {name} | {nfe} | {r:.3f} |" for name, nfe, r in search()]
    table = "\n".join(lines)
    print(table)
    if args.write:
        plot(sweep, ROOT / "docs" / "img" / "guidance_cfg_scale.png")
        doc = ROOT / "docs" / "guidance.md"
        text = doc.read_text()
        text = re.sub(r"(<!-- effects:start -->\n)(?:.*?\n)?(<!-- effects:end -->)", lambda mm: mm.group(1) + table + "\n" + mm.group(2), text, flags=re.S)
        doc.write_text(text)


if __name__ == "__main__":
    main()

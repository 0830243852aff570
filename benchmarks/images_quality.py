"""Quality and speed of the images plugin's shipped models; tables and plots for docs/plugins/images.md.

    .venv/bin/python benchmarks/images_quality.py --write --threads 1   # everything (about 15 min on one CPU thread)
    .venv/bin/python benchmarks/images_quality.py --only dit        # one part: dit, maskgit, recap, shapes, sweeps, shapes_sweeps

Every number comes from the shipped weights and the shipped judge classifier (see
condgen_images.evaluate), with seed 0 and balanced conditions (sample i asks for class
i mod 10). Tables go between the <!-- images:NAME:start/end --> markers of the doc,
figures to docs/img/images_*.png.
"""

from __future__ import annotations

import argparse
import json
import platform
import re
import time
from pathlib import Path

import torch

import condgen
from condgen_images import evaluate
from condgen_images.data import SHAPES
from condgen_images.grid import write_grid

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "plugins" / "images.md"
IMG = ROOT / "docs" / "img"
DIGIT_CYCLE = {"digit": list(range(10))}
RESULTS = ROOT / "runs" / "images-benchmark.json"


def run(generator, n, condition, **options):
    started = time.perf_counter()
    result = generator.generate(n=n, condition=condition, seed=0, device="cpu", batch_size=500, **options)
    seconds = time.perf_counter() - started
    metric = evaluate.digit_metrics if generator.name != "images-shapes" else evaluate.shape_metrics
    scores = metric(generator, result.samples, result.conditions)
    scores["sample_s"] = result.manifest["timings"]["sample_s"]
    scores["ms_per_sample"] = 1000 * result.manifest["timings"]["sample_s"] / n
    scores["wall_s"] = seconds
    scores["nfe"] = result.manifest["nfe"]
    return scores, result


def row(label, s, extra=()):
    cells = [label, f"{s['accuracy']:.3f}", f"{s['fd']:.2f}", f"{s['fd_train_test']:.2f}", f"{s['precision']:.3f}", f"{s['recall']:.3f}"]
    return "| " + " | ".join(cells + [str(e) for e in extra]) + " |"


HEADER = "| model, sampler | accuracy | FD (gen vs test) | FD (train vs test) | precision | recall |"
RULE = "|---|---:|---:|---:|---:|---:|"


def part_dit(out: dict):
    gen = condgen.load("images")
    lines = [HEADER, RULE]
    for label, guidance in (("DiT, dpmpp-2m 20 steps, no guidance", ["cfg=1"]), ("DiT, dpmpp-2m 20 steps, cfg=2 (default)", ["cfg=2"]), ("DiT, dpmpp-2m 20 steps, cfg=3", ["cfg=3"])):
        s, result = run(gen, 1000, DIGIT_CYCLE, sampler="dpmpp-2m", steps=20, guidance=guidance)
        out[label] = s
        lines.append(row(label, s))
        if guidance == ["cfg=2"]:
            grid(result, "images_digits_dit.png", "DiT, dpmpp-2m, 20 steps, cfg=2")
    per_class = out["DiT, dpmpp-2m 20 steps, cfg=2 (default)"]
    lines += ["", "Per class (cfg=2): " + ", ".join(f"{k}: {per_class[f'accuracy_{k}']:.2f}" for k in range(10)) + f"; the judge's accuracy on real test digits: {per_class['real_test_accuracy']:.3f}."]
    return "\n".join(lines)


def part_maskgit(out: dict):
    """Quality on 1,000 samples per setting; speed as the best of 3 interleaved timings
    of 200 samples (the machine is shared, so single timings are noisy)."""
    gen = condgen.load("images", "maskgit")
    steps = 12
    settings = {1: f"MaskGIT, {steps} steps, cfg=2", 2: f"MaskGIT, {steps} steps, cfg=2, ReCAP full_every=2", 3: f"MaskGIT, {steps} steps, cfg=2, ReCAP full_every=3"}
    best = {k: float("inf") for k in settings}
    for _ in range(3):
        for k in settings:
            result = gen.generate(n=200, condition=DIGIT_CYCLE, seed=1, device="cpu", batch_size=200, sampler="maskgit", steps=steps, guidance=["cfg=2"], sampler_options={"full_every": k})
            best[k] = min(best[k], 1000 * result.manifest["timings"]["sample_s"] / 200)
    lines = [HEADER + " full / light evaluations | ms / sample | speed-up |", RULE + "---|---:|---:|"]
    for k, label in settings.items():
        s, result = run(gen, 1000, DIGIT_CYCLE, sampler="maskgit", steps=steps, guidance=["cfg=2"], sampler_options={"full_every": k})
        s["best_ms_per_sample"] = best[k]
        out[label] = s
        light = (steps - 1) - (steps - 1) // k if k > 1 else 0
        lines.append(row(label, s, (f"{steps - light} / {light}", f"{best[k]:.2f}", f"{best[1] / best[k]:.2f}x")))
        if k == 1:
            grid(result, "images_digits_maskgit.png", f"MaskGIT, {steps} steps, cfg=2")
    base, k2 = out[settings[1]], out[settings[2]]
    lines += ["", f"ReCAP (full_every=2) vs plain MaskGIT at {steps} steps: {best[1] / best[2]:.2f}x faster sampling, accuracy {100 * (k2['accuracy'] - base['accuracy']):+.1f} points, FD {k2['fd'] - base['fd']:+.2f}."]
    return "\n".join(lines)


def part_recap(out: dict):
    """Cost of one light ReCAP pass against a full pass, by the share of positions that
    are recomputed (400 rows: 200 samples x the two CFG branches; best of 5)."""
    model, _ = condgen.load("images", "maskgit").load_model()
    rows = 400
    tokens = torch.randint(0, 8, (rows, 8, 8), generator=torch.Generator().manual_seed(0))
    cond = {"digit": torch.arange(rows) % 10}

    def best_ms(call, repeats=5):
        times = []
        for _ in range(repeats):
            started = time.perf_counter()
            call()
            times.append(time.perf_counter() - started)
        return 1000 * min(times)

    lines = ["| recomputed share | 100% (full) | 100% | 75% | 50% | 25% | 10% |", "|---|---:|---:|---:|---:|---:|---:|"]
    with torch.inference_mode():
        _, cache = model.cached(tokens, cond)
        full = best_ms(lambda: model.cached(tokens, cond))
        cells = [f"{full:.0f} ms"]
        for share in (1.0, 0.75, 0.5, 0.25, 0.1):
            fresh = torch.zeros(rows, 64, dtype=torch.bool)
            fresh[:, : round(64 * share)] = True
            light = best_ms(lambda: model.cached(tokens, cond, cache, fresh.reshape(rows, 8, 8)))
            out[str(share)] = {"full_ms": full, "light_ms": light}
            cells.append(f"{light:.0f} ms ({full / light:.1f}x)")
    lines.append("| one pass, 400 rows | " + " | ".join(cells) + " |")
    return "\n".join(lines)


SHAPE_CYCLE = {"shape": list(range(len(SHAPES))), "hue": [0.0, 0.15, 0.33, 0.5, 0.67, 0.85, 0.05]}  # 6 x 7 combinations cycle


def shapes_label(gen) -> str:
    backbone = condgen.load_checkpoint(gen.weights, generator=gen.name).config["model"]
    return {"dit": "DiT", "unet": "U-Net"}[backbone] + " shapes32"


def part_shapes(out: dict):
    gen = condgen.load("images", "shapes")
    name = shapes_label(gen)
    lines = ["| model, sampler | shape accuracy | hue error | FD (gen vs test) | FD (train vs test) | precision | recall |", "|---|---:|---:|---:|---:|---:|---:|"]
    settings = list(dict.fromkeys([("cfg=1",), ("cfg=2",), tuple(gen.default_guidance)]))  # the default once, if it is one of them
    for guidance in map(list, settings):
        s, result = run(gen, 600, SHAPE_CYCLE, sampler="dpmpp-2m", steps=20, guidance=guidance)
        label = f"{name}, dpmpp-2m 20 steps, {guidance[0]}" + (" (default)" if tuple(guidance) == tuple(gen.default_guidance) else "")
        out[label] = s
        lines.append(f"| {label} | {s['accuracy']:.3f} | {s['hue_error']:.3f} | {s['fd']:.2f} | {s['fd_train_test']:.2f} | {s['precision']:.3f} | {s['recall']:.3f} |")
        if tuple(guidance) == tuple(gen.default_guidance):
            grid(result, "images_shapes.png", f"{name}, dpmpp-2m, 20 steps, {guidance[0]}", limit=42, columns=7)
    return "\n".join(lines)


def part_shapes_sweeps(out: dict):
    """Quality per step count for three shared samplers on the shipped shapes model."""
    gen = condgen.load("images", "shapes")
    n, steps_grid, samplers = 126, [5, 10, 20], ["ddim", "dpmpp-2m", "heun"]  # 126 = every shape x hue combination 3 times
    sweep = {name: [run(gen, n, SHAPE_CYCLE, sampler=name, steps=k, guidance=["cfg=2"])[0] for k in steps_grid] for name in samplers}
    out["steps_sweep"] = {name: dict(zip(map(str, steps_grid), v)) for name, v in sweep.items()}
    out["label"] = shapes_label(gen)
    plot_shapes_sweep(out)
    lines = [f"{n} samples per cell, cfg=2; NFE: the network evaluations each sample saw, as the run manifest reports them.", "",
             "| sampler | " + " | ".join(f"{k} steps" for k in steps_grid) + " |", "|---|" + "---:|" * len(steps_grid)]
    for name, scores in sweep.items():
        lines.append(f"| {name}: NFE, shape accuracy, hue error, FD | "
                     + " | ".join(f"{s['nfe']}, {s['accuracy']:.3f}, {s['hue_error']:.3f}, {s['fd']:.1f}" for s in scores) + " |")
    return "\n".join(lines)


def plot_shapes_sweep(out: dict):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(1, 2, figsize=(9, 3.4), dpi=110)
    for name, by_steps in out["steps_sweep"].items():
        nfe = [s["nfe"] for s in by_steps.values()]
        ax[0].plot(nfe, [s["accuracy"] for s in by_steps.values()], "o-", label=name)
        ax[1].plot(nfe, [s["fd"] for s in by_steps.values()], "o-", label=name)
        reference = next(iter(by_steps.values()))["fd_train_test"]
    ax[0].axhline(0.9, color="grey", ls=":", label="bar (0.90)")
    ax[0].set(ylim=(0, 1.01), ylabel="accuracy on requested shape", title=f"{out['label']}, cfg=2")
    ax[1].axhline(reference, color="grey", ls="--", label="real train vs test")
    ax[1].set(ylim=(0, None), ylabel="Fréchet distance", title="FD on judge features")
    for a in ax:
        a.set(xscale="log", xlabel="network evaluations per sample")
        a.minorticks_off()
        a.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(IMG / "images_shapes_steps.png")
    plt.close(fig)


def part_sweeps(out: dict):
    gen = condgen.load("images")
    n = 300
    scales = [1, 1.5, 2, 3, 4, 6]
    cfg = [run(gen, n, DIGIT_CYCLE, sampler="dpmpp-2m", steps=20, guidance=[f"cfg={s}"])[0] for s in scales]
    out["cfg_sweep"] = dict(zip(map(str, scales), cfg))
    steps_grid = [5, 10, 20, 40]
    samplers = ["ddim", "dpmpp-2m", "heun"]
    sweep = {name: [run(gen, n, DIGIT_CYCLE, sampler=name, steps=k, guidance=["cfg=2"])[0] for k in steps_grid] for name in samplers}
    out["steps_sweep"] = {name: dict(zip(map(str, steps_grid), v)) for name, v in sweep.items()}
    plot_sweeps(out)
    lines = ["| CFG scale | " + " | ".join(map(str, scales)) + " |", "|---|" + "---:|" * len(scales)]
    lines.append("| accuracy | " + " | ".join(f"{s['accuracy']:.3f}" for s in cfg) + " |")
    lines.append("| FD | " + " | ".join(f"{s['fd']:.2f}" for s in cfg) + " |")
    lines.append("| recall | " + " | ".join(f"{s['recall']:.3f}" for s in cfg) + " |")
    lines += ["", "| sampler (cfg=2) | " + " | ".join(f"{k} steps" for k in steps_grid) + " |", "|---|" + "---:|" * len(steps_grid)]
    for name, scores in sweep.items():
        lines.append(f"| {name} accuracy / FD | " + " | ".join(f"{s['accuracy']:.3f} / {s['fd']:.1f}" for s in scores) + " |")
    return "\n".join(lines)


def plot_sweeps(out: dict):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cfg = out["cfg_sweep"]
    scales = [float(k) for k in cfg]
    fig, ax = plt.subplots(1, 2, figsize=(9, 3.4), dpi=110)
    ax[0].plot(scales, [s["accuracy"] for s in cfg.values()], "o-")
    ax[0].set(xlabel="CFG scale", ylabel="accuracy on requested digit", title="DiT, dpmpp-2m, 20 steps", ylim=(0.8, 1.01))
    ax[1].plot(scales, [s["fd"] for s in cfg.values()], "o-", color="tab:red", label="generated vs test")
    ax[1].axhline(next(iter(cfg.values()))["fd_train_test"], color="grey", ls="--", label="real train vs test")
    ax[1].set(xlabel="CFG scale", ylabel="Fréchet distance", title="FD on judge features")
    ax[1].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(IMG / "images_cfg_scale.png")
    plt.close(fig)

    fig, ax = plt.subplots(1, 2, figsize=(9, 3.4), dpi=110)
    for name, by_steps in out["steps_sweep"].items():
        steps = [int(k) for k in by_steps]
        ax[0].plot(steps, [s["accuracy"] for s in by_steps.values()], "o-", label=name)
        ax[1].plot(steps, [s["fd"] for s in by_steps.values()], "o-", label=name)
        reference = next(iter(by_steps.values()))["fd_train_test"]
    ax[0].set(ylim=(0.8, 1.01), ylabel="accuracy on requested digit", title="DiT, cfg=2")
    ax[1].axhline(reference, color="grey", ls="--", label="real train vs test")
    ax[1].set(ylim=(0, None), ylabel="Fréchet distance", title="FD on judge features")
    for a in ax:
        a.set(xscale="log", xlabel="steps")
        a.set_xticks(steps, [str(k) for k in steps])
        a.minorticks_off()
        a.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(IMG / "images_steps.png")
    plt.close(fig)


def grid(result, name, title, limit=100, columns=10):
    gen = result.generator
    captions = [gen.caption(c) for c in result.conditions[:limit]]
    write_grid(IMG / name, result.samples[:limit], captions, cell=gen.cell, columns=columns, title=title)


PARTS = {"dit": part_dit, "maskgit": part_maskgit, "recap": part_recap, "shapes": part_shapes, "sweeps": part_sweeps,
         "shapes_sweeps": part_shapes_sweeps}


def machine() -> str:
    return f"Measured on {platform.machine()}, {torch.get_num_threads()} CPU thread{'s' if torch.get_num_threads() != 1 else ''} (shared machine), torch {torch.__version__}, CPU, float32, seed 0."


def write_doc(name: str, text: str) -> None:
    doc = DOC.read_text()
    pattern = re.compile(rf"(<!-- images:{name}:start -->\n).*?(<!-- images:{name}:end -->)", re.S)
    if not pattern.search(doc):
        raise SystemExit(f"{DOC} has no images:{name} markers")
    DOC.write_text(pattern.sub(lambda m: m.group(1) + machine() + "\n\n" + text + "\n" + m.group(2), doc))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--only", choices=sorted(PARTS), action="append")
    parser.add_argument("--write", action="store_true", help="write tables into docs/plugins/images.md")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--plot-only", action="store_true", help="redraw the sweep figures from runs/images-benchmark.json")
    args = parser.parse_args()
    if args.plot_only:
        return plot_sweeps(json.loads(RESULTS.read_text())["sweeps"])
    torch.set_num_threads(args.threads)
    IMG.mkdir(parents=True, exist_ok=True)
    results = json.loads(RESULTS.read_text()) if RESULTS.is_file() else {}
    for name in args.only or list(PARTS):
        out = results.setdefault(name, {})
        text = PARTS[name](out)
        print(text, flush=True)
        if args.write:
            write_doc(name, text)
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=1, default=float))


if __name__ == "__main__":
    main()

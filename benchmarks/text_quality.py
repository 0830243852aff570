"""Topic control of the text plugin: unguided base LM, CC-LM, CFG and GeDi compared.

    .venv/bin/python benchmarks/text_quality.py --write     # about 10 min on one CPU thread

Every method samples the same number of quotes per topic (sample i asks for topic
i mod 6; the unguided base LM gets no topic) with the shipped weights, the ``ar`` sampler
at temperature 1 and seed 0, 60 tokens at most. The judge, perplexity and distinct-n
are condgen_text.evaluate's. Results go to benchmarks/text_quality.json, the tables
between the <!-- text:NAME:start/end --> markers of docs/plugins/text.md and the figure
to docs/plugins/text/tradeoff.png.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import time
from pathlib import Path

import condgen
import torch
from condgen_text import evaluate
from condgen_text.data import TOPICS
from samplers_common import write_block

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "plugins" / "text.md"
FIGURES = ROOT / "docs" / "plugins" / "text"
RESULTS = ROOT / "benchmarks" / "text_quality.json"

#: (label, conditioned on the topic?, guidance). cfg=1 is the plain conditional model:
#: the CC-LM under its control code, or the base LM for rows without a topic.
METHODS = (
    ("base LM, unguided", False, "cfg=1"),
    ("CC-LM, control code only", True, "cfg=1"),
    ("CFG on the CC-LM, s = 2", True, "cfg=2,keys=topic"),
    ("CFG on the CC-LM, s = 4", True, "cfg=4,keys=topic"),
    ("GeDi, omega = 15, rho = 0.7", True, "gedi=15,rho=0.7"),
    ("GeDi, omega = 30, rho = 0.7", True, "gedi=30,rho=0.7"),
    ("GeDi, omega = 60, rho = 0.7", True, "gedi=60,rho=0.7"),
    ("GeDi, omega = 120, rho = 0.7", True, "gedi=120,rho=0.7"),
    ("GeDi, omega = 60, no filtering", True, "gedi=60"),
)


def run_method(generator, per_topic: int, steps: int, conditioned: bool, guidance: str):
    n = per_topic * len(TOPICS)
    condition = {"topic": list(TOPICS)} if conditioned else None
    started = time.perf_counter()
    run = generator.generate(n=n, condition=condition, guidance=[guidance], steps=steps, seed=0, device="cpu", batch_size=n)
    scores = evaluate.summarise(run.samples, run.conditions)
    scores["sample_s"] = round(run.manifest["timings"]["sample_s"], 2)
    scores["wall_s"] = round(time.perf_counter() - started, 2)
    return scores, run.samples


def machine() -> str:
    return f"Measured on {platform.machine()}, {torch.get_num_threads()} CPU thread (shared machine), torch {torch.__version__}, CPU, float32, seed 0."


def quality_table(results: dict, reference: dict) -> str:
    lines = ["| method | guidance | topic accuracy (mean of 6) | " + " | ".join(TOPICS) + " | perplexity (base LM) | distinct-1 | distinct-2 | sampling s |", "|---" * (7 + len(TOPICS)) + "|"]
    real = reference["accuracy"]
    lines.append("| real held-out quotes | — | " + f"{real['mean']:.3f} | " + " | ".join(f"{real[t]:.2f}" for t in TOPICS) + f" | {reference['perplexity']:.1f} | {reference['distinct_1']:.3f} | {reference['distinct_2']:.3f} | — |")
    for label, _, guidance in METHODS:
        s = results[label]
        acc = s["accuracy"]
        lines.append(f"| {label} | `{guidance}` | {acc['mean']:.3f} | " + " | ".join(f"{acc[t]:.2f}" for t in TOPICS) + f" | {s['perplexity']:.1f} | {s['distinct_1']:.3f} | {s['distinct_2']:.3f} | {s['sample_s']:.0f} |")
    return "\n".join(lines)


def samples_table(examples: dict) -> str:
    from condgen_text.generator import DEFAULT_GUIDANCE

    shown = ("CC-LM, control code only", next(label for label, _, g in METHODS if g == DEFAULT_GUIDANCE))
    lines = [f"| topic | {shown[0]} | {shown[1]} (the default) |", "|---|---|---|"]
    for topic in TOPICS:
        cells = [examples[label][topic].replace("|", "\\|") for label in shown]
        lines.append(f"| {topic} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot(results: dict, reference: dict) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=110)
    for label, _, _ in METHODS:
        s = results[label]
        ax.scatter(s["perplexity"], s["accuracy"]["mean"], s=40)
        ax.annotate(label, (s["perplexity"], s["accuracy"]["mean"]), fontsize=7, xytext=(4, 3), textcoords="offset points")
    ax.set_xscale("log")  # CFG at s = 4 sits an order of magnitude to the right
    ax.axhline(reference["accuracy"]["mean"], color="grey", ls="--", lw=1)
    ax.annotate("judge on real held-out quotes", (ax.get_xlim()[0], reference["accuracy"]["mean"]), fontsize=7, color="grey", xytext=(2, 3), textcoords="offset points")
    ax.set_xlabel("perplexity of the generated tokens under the base LM (log scale; lower: more fluent to it)")
    ax.set_ylabel("topic accuracy by the TF-IDF judge (mean of 6 topics)")
    ax.set_title("text plugin: topic control against perplexity")
    fig.tight_layout()
    FIGURES.mkdir(parents=True, exist_ok=True)
    path = FIGURES / "tradeoff.png"
    fig.savefig(path)
    plt.close(fig)
    return path


def training_part(config: dict) -> str:
    """Loss curves from the checkpoint's config (logged every 25 steps) as a figure and a table."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    base, cclm = config["base_history"], config["cclm_history"]
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4), dpi=110)
    axes[0].plot([r["step"] for r in base], [r["loss"] for r in base])
    axes[0].set_title("base LM: next-token cross-entropy (one batch)")
    for key in ("L_g", "L_d"):
        axes[1].plot([r["step"] for r in cclm], [r[key] for r in cclm], label=key)
    axes[1].axhline(math.log(len(TOPICS)), color="grey", ls="--", lw=1, label="ln 6 (chance)")
    axes[1].set_title("CC-LM: GeDi's hybrid loss terms (one batch)")
    axes[1].legend(fontsize=8)
    for ax in axes:
        ax.set_xlabel("step")
    fig.tight_layout()
    FIGURES.mkdir(parents=True, exist_ok=True)
    fig.savefig(FIGURES / "training.png")
    plt.close(fig)

    def mean(rows, key, first):
        chosen = rows[:4] if first else rows[-4:]
        return sum(r[key] for r in chosen) / len(chosen)

    return "\n".join([
        "| stage | steps | loss | first 4 logs (mean) | last 4 logs (mean) | wall s |",
        "|---|---|---|---|---|---|",
        f"| base LM | {base[-1]['step'] + 1} | next-token CE | {mean(base, 'loss', True):.3f} | {mean(base, 'loss', False):.3f} | {base[-1]['seconds']:.0f} |",
        f"| CC-LM | {cclm[-1]['step'] + 1} | L_g | {mean(cclm, 'L_g', True):.3f} | {mean(cclm, 'L_g', False):.3f} | {cclm[-1]['seconds']:.0f} |",
        f"| CC-LM | {cclm[-1]['step'] + 1} | L_d | {mean(cclm, 'L_d', True):.3f} | {mean(cclm, 'L_d', False):.3f} | |",
    ])


def write_doc(name: str, text: str) -> None:
    write_block(DOC, f"text:{name}", text)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--per-topic", type=int, default=30, help="samples per topic and method")
    parser.add_argument("--steps", type=int, default=60, help="tokens per sample at most")
    parser.add_argument("--write", action="store_true", help="write the tables into docs/plugins/text.md and the figure")
    parser.add_argument("--render", action="store_true", help="only redraw docs and figures from benchmarks/text_quality.json")
    args = parser.parse_args()
    torch.set_num_threads(1)
    generator = condgen.load("text")
    if args.render:
        report = json.loads(RESULTS.read_text())
    else:
        results, examples = {}, {}
        for label, conditioned, guidance in METHODS:
            results[label], samples = run_method(generator, args.per_topic, args.steps, conditioned, guidance)
            examples[label] = {s["topic"]: s["text"] for s in reversed(samples)}  # the first sample of each topic
            print(label, json.dumps(results[label]), flush=True)
        reference = evaluate.reference(generator.load_model()[0])
        print("real", json.dumps(reference), flush=True)
        report = {"machine": machine(), "per_topic": args.per_topic, "steps": args.steps, "reference": reference, "methods": results, "examples": examples}
        RESULTS.write_text(json.dumps(report, indent=1))
    text = report["machine"] + f" {report['per_topic']} samples per topic and method, at most {report['steps']} tokens.\n\n" + quality_table(report["methods"], report["reference"])
    print(text)
    if args.write or args.render:
        plot(report["methods"], report["reference"])
        write_doc("quality", text)
        write_doc("samples", samples_table(report["examples"]))
        from condgen.checkpoints import load_checkpoint

        write_doc("training", training_part(load_checkpoint(generator.weights).config) + "\n\n![loss curves](text/training.png)")


if __name__ == "__main__":
    main()

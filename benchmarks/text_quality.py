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
import platform
import re
import time
from pathlib import Path

import torch

import condgen
from condgen_text import evaluate
from condgen_text.data import TOPICS

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
    ("GeDi, omega = 5, rho = 0.7", True, "gedi=5,rho=0.7"),
    ("GeDi, omega = 15, rho = 0.7", True, "gedi=15,rho=0.7"),
    ("GeDi, omega = 30, rho = 0.7", True, "gedi=30,rho=0.7"),
    ("GeDi, omega = 15, no filtering", True, "gedi=15"),
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
    lines = ["| topic | CC-LM, control code only | GeDi, omega = 15, rho = 0.7 |", "|---|---|---|"]
    for topic in TOPICS:
        cells = [examples[label][topic].replace("|", "\\|") for label in ("CC-LM, control code only", "GeDi, omega = 15, rho = 0.7")]
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
    ax.axhline(reference["accuracy"]["mean"], color="grey", ls="--", lw=1)
    ax.annotate("judge on real held-out quotes", (ax.get_xlim()[0], reference["accuracy"]["mean"]), fontsize=7, color="grey", xytext=(2, 3), textcoords="offset points")
    ax.set_xlabel("perplexity of the generated tokens under the base LM (lower: more fluent to the base LM)")
    ax.set_ylabel("topic accuracy by the TF-IDF judge (mean of 6 topics)")
    ax.set_title("text plugin: topic control against perplexity")
    fig.tight_layout()
    FIGURES.mkdir(parents=True, exist_ok=True)
    path = FIGURES / "tradeoff.png"
    fig.savefig(path)
    plt.close(fig)
    return path


def write_doc(name: str, text: str) -> None:
    doc = DOC.read_text()
    pattern = re.compile(rf"(<!-- text:{name}:start -->\n).*?(<!-- text:{name}:end -->)", re.S)
    if not pattern.search(doc):
        raise SystemExit(f"{DOC} has no text:{name} markers")
    DOC.write_text(pattern.sub(lambda m: m.group(1) + text + "\n" + m.group(2), doc))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--per-topic", type=int, default=30, help="samples per topic and method")
    parser.add_argument("--steps", type=int, default=60, help="tokens per sample at most")
    parser.add_argument("--write", action="store_true", help="write the tables into docs/plugins/text.md and the figure")
    args = parser.parse_args()
    torch.set_num_threads(1)
    generator = condgen.load("text")
    results, examples = {}, {}
    for label, conditioned, guidance in METHODS:
        results[label], samples = run_method(generator, args.per_topic, args.steps, conditioned, guidance)
        examples[label] = {s["topic"]: s["text"] for s in reversed(samples)}  # the first sample of each topic
        print(label, json.dumps(results[label]), flush=True)
    reference = evaluate.reference(generator._scorer)
    print("real", json.dumps(reference), flush=True)
    report = {"machine": machine(), "per_topic": args.per_topic, "steps": args.steps, "reference": reference, "methods": results, "examples": examples}
    RESULTS.write_text(json.dumps(report, indent=1))
    text = machine() + f" {args.per_topic} samples per topic and method, at most {args.steps} tokens.\n\n" + quality_table(results, reference)
    print(text)
    if args.write:
        plot(results, reference)
        write_doc("quality", text)
        write_doc("samples", samples_table(examples))


if __name__ == "__main__":
    main()

"""Picture for docs/plugins/tabular.md: TabEBM rows on iris (50 real rows, seed 0) for the
two backbones and the two SGLD steps (the paper's equation; the TabEBM code's step,
0.1 / samples per class), on the two petal columns.

    .venv/bin/python benchmarks/tabular_samples_plot.py     # about 2 minutes on one core
"""

from __future__ import annotations

from pathlib import Path

import torch

torch.set_num_threads(1)

import condgen  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "docs" / "plugins" / "tabular" / "samples_iris.png"
PER_CLASS = 40
COLUMNS = ("petal_length_cm", "petal_width_cm")


def main():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    gen = condgen.load("tabular")
    fig, axes = plt.subplots(2, 2, figsize=(8, 7), dpi=100, sharex=True, sharey=True)
    for row, backbone in enumerate(("gp", "tabpfn")):
        gen.fit("iris", backbone=backbone)
        table = gen.table
        for col, step in enumerate(("paper", "reference")):
            options = {"sampler_options": {"chains": 1 if step == "paper" else PER_CLASS}}
            run = gen.generate(n=PER_CLASS * len(table.class_names), seed=0, device="cpu", **options)
            frame = table.encoder.frame(table.encoder.decode_rows(run.x.double().numpy(), [c["class"] for c in run.conditions]))
            ax = axes[row, col]
            for k, value in enumerate(table.encoder.class_values):
                colour = plt.cm.tab10(k)
                fake = frame[frame["class"] == value]
                real = table.frame[table.frame["class"] == value]
                ax.scatter(fake[COLUMNS[0]], fake[COLUMNS[1]], s=10, alpha=0.45, color=colour, label=f"{value} synthetic")
                ax.scatter(real[COLUMNS[0]], real[COLUMNS[1]], s=28, marker="x", color=colour, label=f"{value} real")
            step_text = "paper's step 0.1" if step == "paper" else f"TabEBM code's step 0.1/{PER_CLASS}"
            ax.set_title(f"backbone {backbone}, {step_text}", fontsize=9)
            ax.set_xlabel(COLUMNS[0])
            ax.set_ylabel(COLUMNS[1])
    axes[0, 0].legend(fontsize=6, ncol=2)
    fig.suptitle(f"TabEBM on iris (50 real rows): {PER_CLASS} synthetic rows per class, 200 SGLD steps, seed 0", fontsize=10)
    fig.tight_layout()
    OUT.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(OUT)
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()

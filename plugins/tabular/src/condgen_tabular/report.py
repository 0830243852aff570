"""How `core show` presents a tabular run: the synthetic rows as a sortable table and
pairwise scatter plots of real (crosses) against synthetic (dots) rows, per class."""

import itertools

import condgen

#: Numeric columns in the scatter matrix (pairs grow as the square).
PAIR_COLUMNS = 4


def scatter_matrix(path, real, synthetic, target, columns):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pairs = list(itertools.combinations(columns, 2))
    cols = min(3, len(pairs))
    rows = -(-len(pairs) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.6 * cols, 3.2 * rows), dpi=90, squeeze=False)
    for ax in axes.flat[len(pairs):]:
        ax.axis("off")
    classes = sorted(set(real[target].astype(str)) | set(synthetic[target].astype(str)))
    for ax, (x, y) in zip(axes.flat, pairs):
        for k, value in enumerate(classes):
            colour = plt.cm.tab10(k % 10)
            fake = synthetic[synthetic[target].astype(str) == value]
            true = real[real[target].astype(str) == value]
            ax.scatter(fake[x], fake[y], s=8, alpha=0.45, color=colour, label=f"{value} synthetic")
            ax.scatter(true[x], true[y], s=14, marker="x", lw=0.6, color=colour, alpha=0.6, label=f"{value} real")
        ax.set_xlabel(x, fontsize=8)
        ax.set_ylabel(y, fontsize=8)
        ax.tick_params(labelsize=7)
    axes.flat[0].legend(fontsize=6, ncol=2)
    fig.tight_layout()
    condgen.atomic_write(path, lambda tmp: fig.savefig(tmp, format="png"))
    plt.close(fig)
    return path


def report(run):
    import pandas as pd

    from condgen_tabular.data import load_table

    conditions = run.manifest["request"].get("conditions") or {}
    synthetic_file = run.path / "synthetic.csv"
    if not synthetic_file.is_file():
        return None  # a partial run: the default view shows the rows written so far
    synthetic = pd.read_csv(synthetic_file)
    sections = [condgen.ReportTable(synthetic.to_dict("records")[:1000], title=f"Synthetic rows ({len(synthetic)})")]
    source, target = (conditions.get("data") or [None])[0], (conditions.get("target") or [None])[0]
    try:
        table = load_table(str(source), target) if source is not None else None
    except condgen.CondgenError as exc:
        sections.append(condgen.ReportText(f"the real table is not shown: {exc}"))
        table = None
    if table is not None:
        real = table.frame
        numeric = [c for c in real.columns if c != table.target and c in synthetic.columns and pd.api.types.is_numeric_dtype(real[c])][:PAIR_COLUMNS]
        if len(numeric) >= 2:
            picture = scatter_matrix(run.asset("pairs.png"), real, synthetic, table.target, numeric)
            sections.append(condgen.ReportMedia(picture, caption=f"real ({table.source}, crosses) against synthetic (dots), pairs of {', '.join(numeric)}"))
    return condgen.Report(sections=sections)

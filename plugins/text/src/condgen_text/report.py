"""How `core show` presents a text run: each text with its topic and prompt, and a
sortable table of every sample's scores."""

import json

import condgen


def report(run):
    rows, samples = [], {}
    for sample in run.samples:
        record = json.loads(sample.file.read_text(encoding="utf-8").splitlines()[0])
        scores = record.get("scores") or {}
        posterior = scores.get("topic_posterior") or {}
        likeliest = max(posterior, key=posterior.get) if posterior else ""
        rows.append({"index": sample.index, "topic": record.get("topic", ""), "prompt": record.get("prompt", ""), "tokens": record.get("tokens", ""),
                     "perplexity": scores.get("base_perplexity", ""), "likeliest topic": likeliest,
                     "p(topic)": posterior.get(record.get("topic"), ""), "text": record.get("text", "")})
        samples[sample.index] = [condgen.ReportText(record.get("text", ""))]
    return condgen.Report(sections=[condgen.ReportTable(rows, title="Texts and their scores")], samples=samples)

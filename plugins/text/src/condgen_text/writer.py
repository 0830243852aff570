"""The ``jsonl`` writer: a text sample (topic, prompt, text, scores) as one JSON line."""

from __future__ import annotations

import json
from pathlib import Path

from condgen import Writer, write_text


class JsonlTextWriter(Writer):
    format, extension, summary = "jsonl", "jsonl", "one JSON line per text sample, plus samples.jsonl and samples.txt with all"

    def write(self, sample, path):
        write_text(path, json.dumps(sample, sort_keys=True, ensure_ascii=False) + "\n")

    def read(self, path):
        return json.loads(Path(path).read_text(encoding="utf-8"))

    def write_collection(self, run_dir, indices, samples):
        lines = [json.dumps({"index": i, **s}, sort_keys=True, ensure_ascii=False) for i, s in zip(indices, samples)]
        jsonl, text = Path(run_dir) / "samples.jsonl", Path(run_dir) / "samples.txt"
        write_text(jsonl, "\n".join(lines) + "\n")
        write_text(text, "".join(f"[{i}] ({s['topic']}) {s['text']}\n\n" for i, s in zip(indices, samples)))
        return [jsonl, text]

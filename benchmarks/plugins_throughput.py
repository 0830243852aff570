"""Every installed plugin's default generator on this CPU: samples/s and peak memory against batch size.

    .venv/bin/python benchmarks/plugins_throughput.py --write       # about 15 minutes on 2 cores

For each first-party plugin and each batch size, a fresh process loads the default
generator, samples one warm-up sample, then one batch of that size (default sampler,
steps and guidance; decoding included, as ``core generate`` does it) and reports the
batch's samples per second and the process's peak resident memory. Results go to
benchmarks/plugins_throughput.json and, with ``--write``, into docs/performance.md
between the ``plugins-throughput`` markers. ``--plugins crystals eeg`` re-measures those
rows only and keeps the others from the JSON when that names the same architecture and
core count (which cannot tell two such machines apart: re-measure all rows on one idle machine
before comparing them).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "plugins_throughput.json"
DOC = ROOT / "docs" / "performance.md"
PLUGINS = ("toy", "images", "audio", "molecules", "tabular", "text", "crystals", "eeg", "shapes")
CONDITIONS = {"tabular": {"data": "iris", "target": "class"}}  # it models a user's table
BATCHES = (1, 8, 32)

CHILD = """
import json, resource, sys, time
import torch
import condgen
plugin, batch, condition = sys.argv[1], int(sys.argv[2]), json.loads(sys.argv[3])
torch.set_num_threads(2)
gen = condgen.load(plugin)
gen.generate(1, condition=condition or None, seed=0, batch_size=1)  # warm-up: weights, caches
start = time.perf_counter()
gen.generate(batch, condition=condition or None, seed=1, batch_size=batch)
seconds = time.perf_counter() - start
print(json.dumps({"generator": gen.name, "samples_per_s": batch / seconds, "peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def measure(plugin: str, batch: int) -> dict:
    done = subprocess.run([sys.executable, "-c", CHILD, plugin, str(batch), json.dumps(CONDITIONS.get(plugin, {}))],
                          capture_output=True, text=True, timeout=1800)
    if done.returncode != 0:
        return {"error": (done.stderr.strip().splitlines() or ["failed"])[-1][:200]}
    return json.loads(done.stdout.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true")
    parser.add_argument("--plugins", nargs="*", default=list(PLUGINS))
    args = parser.parse_args()
    machine = f"{platform.machine()}, {os.cpu_count()} cores, torch threads 2"
    results = {"machine": machine, "plugins": {}}
    if RESULTS.is_file() and set(args.plugins) != set(PLUGINS):
        earlier = json.loads(RESULTS.read_text())
        if earlier.get("machine") == machine:  # a partial run keeps the rows it did not measure
            results["plugins"] = earlier.get("plugins", {})
    for plugin in args.plugins:
        results["plugins"][plugin] = {str(b): measure(plugin, b) for b in BATCHES}
        print(plugin, json.dumps(results["plugins"][plugin]), flush=True)
    order = [p for p in PLUGINS if p in results["plugins"]] + [p for p in results["plugins"] if p not in PLUGINS]
    results["plugins"] = {p: results["plugins"][p] for p in order}
    RESULTS.write_text(json.dumps(results, indent=1) + "\n")
    if args.write:
        head = "| plugin (default generator) | " + " | ".join(f"batch {b}: samples/s, peak MiB" for b in BATCHES) + " |"
        lines = [f"Machine: {results['machine']}.", "", head, "|---|" + "---:|" * len(BATCHES)]
        for plugin, rows in results["plugins"].items():
            name = next((r["generator"] for r in rows.values() if "generator" in r), plugin)
            cells = [f"{r['samples_per_s']:.3g}, {r['peak_mib']:.0f}" if "samples_per_s" in r else f"failed: {r['error']}" for r in rows.values()]
            lines.append(f"| {plugin} ({name}) | " + " | ".join(cells) + " |")
        text = DOC.read_text()
        start, end = "<!-- plugins-throughput:start -->", "<!-- plugins-throughput:end -->"
        head_text, rest = text.split(start, 1)
        DOC.write_text(head_text + start + "\n" + "\n".join(lines) + "\n" + end + rest.split(end, 1)[1])


if __name__ == "__main__":
    main()

"""Generate from the toy plugin with the Python API, compare guidance scales, save a run.

    .venv/bin/python examples/generate_toy.py [OUT_DIR]
"""

import sys
from pathlib import Path

import condgen

out = Path(sys.argv[1] if len(sys.argv) > 1 else "runs/example-toy")
gen = condgen.load("toy")
print(f"{gen.name}: {gen.description}")
print("conditions:", {k: c.accepted() for k, c in gen.conditions.items()})

for scale in (0.0, 1.0, 3.0):
    run = gen.generate(n=200, condition={"component": "north"}, guidance=[condgen.CFG(scale)], seed=0)
    mean_y = float(run.x[:, 1].mean())
    print(f"cfg={scale:g}: mean y of 200 samples asked for 'north' = {mean_y:.2f}")

run = gen.generate(n=400, condition={"component": ["north", "east", "south", "west"]}, sampler="euler", steps=40, seed=1)
print("saved", run.save(out))

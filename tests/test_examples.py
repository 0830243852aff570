import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_toy_example_runs_and_guidance_pulls_north(tmp_path):
    result = subprocess.run([sys.executable, str(ROOT / "examples" / "generate_toy.py"), str(tmp_path / "out")], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    lines = dict(line.split(" = ") for line in result.stdout.splitlines() if " = " in line)
    unguided = float(lines["cfg=0: mean y of 200 samples asked for 'north'"])
    conditional = float(lines["cfg=1: mean y of 200 samples asked for 'north'"])
    assert abs(unguided) < 1.0 and conditional > 3.5
    assert (tmp_path / "out" / "manifest.json").is_file()

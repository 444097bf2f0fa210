"""Where a command-line cache hit's time goes: a bare start of Python, the standard modules any such command
imports, and `layerkit build` of an unchanged layer, side by side in turns (run `make bench` first: it leaves the
layer and its cache in bench/work/).

    .venv/bin/python bench/import_floor.py [--rounds N]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

WORK = Path(__file__).resolve().parent / "work"
STDLIB = "import argparse, json, hashlib, pathlib, dataclasses, typing, zipfile, tomllib, shutil, tempfile"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    rounds = parser.parse_args().rounds
    layer, cache = WORK / "pc-hit-layer", WORK / "pc-hit-cache"
    if not cache.is_dir():
        print("bench/import_floor.py: no bench/work/pc-hit-cache; run make bench first", file=sys.stderr)
        return 1
    commands = {
        "bare start (python -c pass)": [sys.executable, "-c", "pass"],
        "standard modules a CLI needs": [sys.executable, "-c", STDLIB],
        "layerkit build, a cache hit": [sys.executable, "-m", "layerkit.cli", "build", str(layer), "--runtime",
                                        "python3.12", "--arch", "x86_64", "--json", "--cache-dir", str(cache),
                                        "--out", str(WORK / "import-floor.zip")],
    }
    times: dict[str, list[float]] = {name: [] for name in commands}
    for _ in range(rounds):  # in turns, so that the machine's noise falls on all three
        for name, command in commands.items():
            start = time.perf_counter()
            subprocess.run(command, capture_output=True, check=True)
            times[name].append(time.perf_counter() - start)
    bare = statistics.median(times["bare start (python -c pass)"])
    for name, runs in times.items():
        print(f"{name}: {statistics.median(runs) * 1000:.1f} ms ({statistics.median(runs) / bare:.1f}x a bare start)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Start-up of the light commands (lorag --help, plugins, check --help) against importing torch, in one
run: each command in a fresh interpreter, best of N; the ratio is what lazy plug-in loading bought."""
from __future__ import annotations

import argparse
import subprocess
import sys
import time

from bench.results_file import update

COMMANDS = {"lorag --help": ["--help"], "lorag plugins": ["plugins"], "lorag check --help": ["check", "--help"],
            "lorag train --help": ["train", "--help"]}


def best(argv: list[str], rounds: int) -> float:
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        subprocess.run(argv, check=True, capture_output=True)
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--rounds", type=int, default=5)
    a = ap.parse_args()
    lorag = [sys.executable, "-m", "lorag_harness"]
    rows = {name: round(best(lorag + argv, a.rounds), 3) for name, argv in COMMANDS.items()}
    torch_s = best([sys.executable, "-c", "import torch, transformers"], a.rounds)
    rows["python -c 'import torch, transformers' (reference)"] = round(torch_s, 3)
    out = {"rounds": a.rounds, "seconds": rows,
           "ratio_to_torch_import": {k: round(v / torch_s, 3) for k, v in rows.items() if k.startswith("lorag")}}
    for k, v in rows.items():
        print(f"{k}: {v:.3f} s")
    update("startup", out)


if __name__ == "__main__":
    main()

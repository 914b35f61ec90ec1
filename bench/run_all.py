"""Run every benchmark (``make bench``), one after the other, each in its own process.

Each benchmark prints its figures with a baseline measured in the same run; this
collects their output in ``bench/results/last-run.txt`` (stderr, e.g. tracebacks of
pyxs router threads at shutdown, goes to ``last-run.stderr``). About 16 minutes (the
real-terminal TUI benchmark alone is about 12: 4 windows of 60 s and their baselines);
with ``--quick`` about 2.5 (shorter runs: the figures are noisier and the TUI and attach
figures are not the issue's 60 s / 1,000 keystrokes).

Usage: python bench/run_all.py [--quick] [--only sampling,drain,...]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))

BENCHES = {
    "sampling": ([], ["--rounds", "5", "--paced", "4"]),
    "discovery": ([], ["--rounds", "3"]),
    "drain": ([], ["--rounds", "1"]),
    "attach": ([], ["--keys", "300"]),
    "tui": ([], ["--seconds", "15", "--base-seconds", "5"]),
    "tui_pty": ([], ["--quick", "--domains", "1000", "--sizes", "200x60"]),
}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--only", default=",".join(BENCHES))
    a = ap.parse_args()
    os.makedirs(os.path.join(HERE, "results"), exist_ok=True)
    out_path = os.path.join(HERE, "results", "last-run.txt")
    err_path = os.path.join(HERE, "results", "last-run.stderr")
    failed = []
    t_all = time.monotonic()
    with open(out_path, "w") as out, open(err_path, "w") as err:
        head = f"xcinspect benchmarks, {time.strftime('%Y-%m-%d %H:%M:%S %z')}{' (quick)' if a.quick else ''}"
        print(head, flush=True)
        out.write(head + "\n")
        for name in a.only.split(","):
            full, quick = BENCHES[name]
            cmd = [sys.executable, os.path.join(HERE, f"{name}.py"), *(quick if a.quick else full)]
            print(f"\n== {name}: {' '.join(cmd[1:])}", flush=True)
            out.write(f"\n== {name}\n")
            err.write(f"\n== {name}\n")
            err.flush()
            t0 = time.monotonic()
            proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err, text=True, cwd=HERE)
            for line in proc.stdout:
                sys.stdout.write(line)
                sys.stdout.flush()
                out.write(line)
            rc = proc.wait()
            note = f"   ({name}: {time.monotonic() - t0:.0f} s{'' if rc == 0 else f', exit status {rc}'})"
            print(note, flush=True)
            out.write(note + "\n")
            if rc != 0:
                failed.append(name)
        tail = f"\nall done in {time.monotonic() - t_all:.0f} s" + (f"; FAILED: {', '.join(failed)}" if failed else "")
        print(tail)
        out.write(tail + "\n")
    print(f"(output in {os.path.relpath(out_path)}; stderr in {os.path.relpath(err_path)})")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

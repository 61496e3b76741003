"""Token Optimization sweeps on 1, 2 and 4 workers (issue 11; docs/benchmarks.md "Sweeps").

One sweep — the tiny motion model trained for a few steps, 3 budgets × 12 samplings, 1×3 views, on 96 real encoded
videos — on a fresh local cluster of 1, 2 and 4 workers with 1 compute thread each (so 2 workers fill the 2 cores and
4 oversubscribe them). Wall time from the sweep's submission to its end, from the coordinator's own event times (the
script polls once a second so that it takes no CPU from the workers), and the speed-up over 1 worker (target
≥ 1.9× on 2 workers). The cells' numbers must be identical on every world size; the script checks that too.

  python3 tools/sweep_bench.py [--bin .build/release] [--workers 1,2,4] [--json]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

TRAIN = """name: sweep-bench-train
model: {root}/configs/models/tiny-motion.yaml
init: {{seed: 7}}
data: {{train: {data}/train.csv}}
train: {{global_batch: 8, steps: 8, seed: 7, lr: 3e-3, warmup: 2, layer_decay: 1, flip: false, crop_scale: 1}}
workers: {{min: 1, max: 1}}
"""

SWEEP = """kind: sweep
name: sweep-bench
checkpoint: {checkpoint}
data: {{eval: {data}/val.csv}}
budgets: [32, 64, 128]
candidates: {{frames: [2, 4, 6, 8], sizes: [32, 48, 64]}}
selection: group
views: 1x3
standard: {{frames: 8, size: 64}}
"""


def run(*args: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(list(args), check=True, text=True, stdout=subprocess.PIPE, **kwargs)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bin", default=str(ROOT / ".build/release"))
    parser.add_argument("--workers", default="1,2,4")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    fluxctl = str(Path(args.bin) / "fluxctl")
    work = Path(tempfile.mkdtemp(prefix="flux-sweep-bench-"))
    try:
        data = work / "data"
        run(fluxctl, "dataset", "synth", "--out", str(data), "--classes", "4", "--videos-per-class", "48",
            "--val-percent", "50", "--seed", "3")
        # The model: a few training steps on a 1-worker cluster; its final checkpoint is swept by path.
        state = work / "train"
        run(fluxctl, "up", "--workers", "1", "--threads-per-worker", "1", "--state-dir", str(state))
        spec = work / "train.yaml"
        spec.write_text(TRAIN.format(root=ROOT, data=data))
        job = json.loads(run(fluxctl, "submit", str(spec), "--wait", "--json", "--state-dir", str(state)).stdout
                         .splitlines()[0])["job"]
        checkpoint = json.loads(run(fluxctl, "checkpoints", job, "--json", "--state-dir", str(state)).stdout)[-1]["path"]
        run(fluxctl, "down", "--state-dir", str(state))
        sweep = work / "sweep.yaml"
        sweep.write_text(SWEEP.format(checkpoint=checkpoint, data=data))

        records, numbers = [], {}
        for n in [int(w) for w in args.workers.split(",")]:
            state = work / f"cluster-{n}"
            run(fluxctl, "up", "--workers", str(n), "--threads-per-worker", "1", "--state-dir", str(state))
            job = json.loads(run(fluxctl, "sweep", str(sweep), "--json", "--state-dir", str(state)).stdout)["job"]
            while True:
                time.sleep(1)
                status = json.loads(run(fluxctl, "status", job, "--json", "--state-dir", str(state)).stdout)
                if status["state"] in ("succeeded", "failed", "cancelled"):
                    break
            events = json.loads(run(fluxctl, "events", job, "--json", "--state-dir", str(state)).stdout)
            times = {e["kind"]: e["time_ms"] for e in events}
            seconds = (times[status["state"]] - times["submitted"]) / 1000
            report = json.loads(run(fluxctl, "results", job, "--format", "json", "--state-dir", str(state)).stdout)
            run(fluxctl, "down", "--state-dir", str(state))
            if status["state"] != "succeeded":
                raise SystemExit(f"the sweep on {n} workers {status['state']}: {status.get('message')}")
            numbers[n] = [(c["cell"]["index"], c["eval"]["top1"], c.get("scores_digest")) for c in report["grid"]]
            records.append({"bench": "sweep", "workers": n, "threads_per_worker": 1, "cells": len(report["grid"]),
                            "videos": report["grid"][0]["eval"]["videos"], "seconds": seconds})
            print(f"{n} worker(s): {len(report['grid'])} cells in {seconds:.2f} s", file=sys.stderr, flush=True)
        base = next((r["seconds"] for r in records if r["workers"] == 1), None)
        for r in records:
            r["speedup"] = base / r["seconds"] if base else None
        identical = len({json.dumps(v) for v in numbers.values()}) == 1
        for r in records:
            r["identical_to_1_worker"] = identical
        if args.json:
            print(json.dumps(records))
        else:
            for r in records:
                print(f"{r['workers']} worker(s) × 1 thread: {r['seconds']:.2f} s, {r['speedup']:.2f}× "
                      f"({r['cells']} cells × {r['videos']} videos; identical numbers: {identical})")
        return 0
    finally:
        for cluster in work.glob("cluster-*"):
            subprocess.run([fluxctl, "down", "--state-dir", str(cluster)], stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())

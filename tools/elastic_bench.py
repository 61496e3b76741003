"""Elastic training beside torchrun (issue 10; docs/benchmarks.md "Elastic training").

The same events on both: SIGKILL of one of 3 workers, SIGSTOP of one of 3, a third worker joining 2. For Flux:
`fluxctl up` (3 or 2 workers, 1 thread each), the tiny motion model on random clips (`data.synthetic`), a global
batch of 12, a commit every step so each step leaves a timestamped line in the workers' logs. For torchrun:
tools/anchors/torchrun_elastic.py (same model and batch, Gloo, c10d rendezvous, one agent per worker).

Reported per event: seconds from the event to the survivors' next completed step (for a join: the longest pause
of the workers already training, minus their median step), and whether any worker process was restarted.

  python3 tools/elastic_bench.py [--bin .build/release] [--python VENV_PYTHON] [--events kill,stop,join] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LINE = re.compile(r"^(\S+) info flux\.worker: (\S+): committed step (\d+) \(generation (\d+), rank (\d+)\)")

SPEC = """name: elastic-bench
model: {root}/configs/models/tiny-motion.yaml
init: {{seed: 7}}
data: {{synthetic: 100000}}
train: {{global_batch: 12, steps: 100000, seed: 7, lr: 3e-3, warmup: 5, layer_decay: 1}}
workers: {{min: 2, max: 3}}
commit_every: 1
reduction: fast
checkpoint_every: 0
"""


def commits(state: Path) -> list[dict]:
    rows = []
    for log in sorted((state / "logs").glob("w*.log")):
        for line in log.read_text(errors="replace").splitlines():
            m = LINE.match(line)
            if m:
                t = datetime.fromisoformat(m.group(1).replace("Z", "+00:00")).timestamp()
                rows.append({"t": t, "worker": log.stem, "step": int(m.group(3)), "generation": int(m.group(4)),
                             "rank": int(m.group(5))})
    return rows


def pids(state: Path) -> dict[str, int]:
    return {d.name: int((d / "worker.pid").read_text()) for d in (state / "workers").iterdir()
            if (d / "worker.pid").exists()}


def flux_event(binary: Path, event: str) -> dict:
    fluxctl = str(binary / "fluxctl")
    state = Path(tempfile.mkdtemp(prefix="flux-elastic-"))
    initial = 2 if event == "join" else 3
    run = lambda *a: subprocess.run([fluxctl, *a, "--state-dir", str(state)], check=True, capture_output=True,
                                    text=True)
    run("up", "--workers", str(initial), "--threads-per-worker", "1")
    result: dict = {"event": event, "anchor": "flux"}
    victim = None
    try:
        spec = state / "job.yaml"
        spec.write_text(SPEC.format(root=ROOT))
        run("submit", str(spec))
        deadline = time.time() + 120
        while time.time() < deadline and not any(r["step"] >= 20 for r in commits(state)):
            time.sleep(0.2)
        rows = commits(state)
        rank0 = sorted(r["t"] for r in rows if r["rank"] == 0)
        gaps = sorted(b - a for a, b in zip(rank0[-11:], rank0[-10:]))
        step_s = gaps[len(gaps) // 2]
        result["step_s"] = step_s
        before = pids(state)
        generation1 = {r["worker"]: r["rank"] for r in rows if r["generation"] == 1}
        t0 = time.time()
        if event in ("kill", "stop"):
            victim = max(generation1, key=generation1.get)  # the last rank, not rank 0
            os.kill(before[victim], signal.SIGKILL if event == "kill" else signal.SIGSTOP)
        else:
            subprocess.Popen([fluxctl, "up", "--add", "1", "--state-dir", str(state)], stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
        limit = t0 + 60
        first = None
        while time.time() < limit and first is None:
            rows = commits(state)
            if event == "join":
                new = [r for r in rows if r["generation"] >= 2]
                if new:
                    # The pause of the workers already training: their longest gap between steps around the join.
                    old = sorted(r["t"] for r in rows if r["worker"] in generation1 and r["rank"] == 0)
                    longest = max(b - a for a, b in zip(old, old[1:]) if b > t0 - step_s)
                    first = t0 + max(0.0, longest - step_s)
                    result["joined_after_s"] = min(r["t"] for r in new) - t0
            else:
                later = [r["t"] for r in rows if r["t"] > t0 and r["worker"] != victim and r["generation"] >= 2]
                if later:
                    first = min(later)
            time.sleep(0.05)
        key = "pause_s" if event == "join" else "seconds_to_next_step"
        result[key] = None if first is None else first - t0
        after = pids(state)
        result["workers_restarted"] = any(after.get(w) != p for w, p in before.items() if w != victim)
    finally:
        if victim is not None and event == "stop":
            try:
                os.kill(pids(state)[victim], signal.SIGCONT)
            except (ProcessLookupError, KeyError):
                pass
        subprocess.run([fluxctl, "down", "--state-dir", str(state)], capture_output=True)
    return result


SCALING_SPEC = """name: scaling-bench
model: fluxvit-small
init: {{seed: 7}}
data: {{synthetic: 100000}}
train: {{global_batch: {batch}, steps: 100000, seed: 7, frames: [{frames}], resolutions: [{size}], budgets: {budgets}{slots}}}
workers: {{min: {workers}, max: {workers}}}
commit_every: {commit}
checkpoint_every: 0
ring_security: {security}
reduction: {reduction}
step_hashes: false
"""


def flux_scaling(binary: Path, workers: int, args: argparse.Namespace) -> dict:
    """Clips/s of FluxViT-S on `workers` workers × 1 thread (all-reduce of its 22M gradients included)."""
    fluxctl = str(binary / "fluxctl")
    state = Path(tempfile.mkdtemp(prefix="flux-scaling-"))
    run = lambda *a: subprocess.run([fluxctl, *a, "--state-dir", str(state)], check=True, capture_output=True,
                                    text=True)
    run("up", "--workers", str(workers), "--threads-per-worker", "1")
    try:
        spec = state / "job.yaml"
        tokens = args.frames * (args.size // 14) ** 2
        spec.write_text(SCALING_SPEC.format(batch=args.batch, frames=args.frames, size=args.size, workers=workers,
                                            budgets=[tokens, tokens * 3 // 4, tokens // 2], security=args.security,
                                            commit=args.commit_every, reduction=args.reduction,
                                            slots=f", slots: {args.slots}" if args.slots else ""))
        run("submit", str(spec))
        deadline = time.time() + 900
        while time.time() < deadline:
            rank0 = sorted(r["t"] for r in commits(state) if r["rank"] == 0)
            if len(rank0) >= args.steps + 1:
                break
            time.sleep(0.5)
        rank0 = rank0[1:]  # the first commit includes warm-up (allocation, page faults)
        seconds = (rank0[-1] - rank0[0]) / (len(rank0) - 1) / args.commit_every
        return {"event": "scaling", "anchor": "flux", "workers": workers, "threads": 1, "step_s": seconds,
                "clips_per_s": args.batch / seconds, "security": args.security, "reduction": args.reduction,
                "slots": args.slots}
    finally:
        subprocess.run([fluxctl, "down", "--state-dir", str(state)], capture_output=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bin", default=str(ROOT / ".build/release"))
    parser.add_argument("--python", help="a Python with torch for the torchrun anchor (skipped without it)")
    parser.add_argument("--events", default="kill,stop,join")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--scaling", action="store_true", help="FluxViT-S clips/s on 1 and 2 workers × 1 thread")
    parser.add_argument("--batch", type=int, default=4, help="scaling: global batch")
    parser.add_argument("--frames", type=int, default=4, help="scaling: frames per clip")
    parser.add_argument("--size", type=int, default=112, help="scaling: resolution (a multiple of 14)")
    parser.add_argument("--steps", type=int, default=3, help="scaling: timed commits")
    parser.add_argument("--commit-every", type=int, default=3, help="scaling: steps between commits (timestamps)")
    parser.add_argument("--security", choices=["curve", "none"], default="curve", help="scaling: ring security")
    parser.add_argument("--reduction", choices=["fast", "exact"], default="fast", help="scaling: gradient reduction")
    parser.add_argument("--slots", type=int, help="scaling: train.slots for reduction exact (default: the job's)")
    parser.add_argument("--reduction-cost", action="store_true",
                        help="FluxViT-S on 2 workers x 1 thread with reduction fast, then exact: time per step and "
                             "bytes each rank sends per step")
    args = parser.parse_args()
    if args.reduction_cost:
        params = 22_000_000  # FluxViT-S gradients, as the all-reduce sends them (approximately; see docs)
        rows = []
        for reduction in ("fast", "exact"):
            args.reduction = reduction
            rows.append(flux_scaling(Path(args.bin), 2, args))
        # Ring all-reduce: each rank sends 2(n−1)/n of the buffer. fast: 4 bytes an element (+ a 7-float trailer);
        # exact: the exponents' max (4 bytes a block of 1024), the totals (7 floats), then the sums packed in 7 bytes.
        fast_bytes, exact_bytes = 4 * params, 7 * params + 4 * (params // 1024)
        rows[1]["time_ratio"] = rows[1]["step_s"] / rows[0]["step_s"]
        rows[1]["wire_ratio"] = exact_bytes / fast_bytes
        if args.json:
            print(json.dumps(rows))
        else:
            for r in rows:
                print(f"FluxViT-S {args.frames}x{args.size}², batch {args.batch}, 2 workers x 1 thread, ring {args.security}, "
                      f"reduction {r['reduction']}: {r['step_s']:.3f} s/step")
            print(f"exact / fast: {rows[1]['time_ratio']:.3f}x time per step (target <= 1.05x), "
                  f"{rows[1]['wire_ratio']:.4f}x bytes on the wire (target <= 2x)")
        return 0
    if args.scaling:
        one = flux_scaling(Path(args.bin), 1, args)
        two = flux_scaling(Path(args.bin), 2, args)
        two["speedup"] = two["clips_per_s"] / one["clips_per_s"]
        if args.json:
            print(json.dumps([one, two]))
        else:
            for r in (one, two):
                print(f"FluxViT-S {args.frames}x{args.size}², batch {args.batch}, {r['workers']} worker(s) x 1 thread, "
                      f"ring {args.security}, commit every {args.commit_every}: {r['step_s']:.2f} s/step, {r['clips_per_s']:.2f} clips/s")
            print(f"speedup 2 workers / 1 worker: {two['speedup']:.2f}x (target >= 1.85x)")
        return 0
    records = []
    for event in args.events.split(","):
        records.append(flux_event(Path(args.bin), event))
        if args.python:
            anchor = subprocess.run([args.python, str(ROOT / "tools/anchors/torchrun_elastic.py"), "--event", event],
                                    capture_output=True, text=True)
            lines = [l for l in anchor.stdout.splitlines() if l.startswith("{")]
            records.append(json.loads(lines[-1]) if lines else {"event": event, "anchor": "torchrun",
                                                                 "error": anchor.stderr[-400:]})
    if args.json:
        print(json.dumps(records))
        return 0
    print(f"{'event':6} {'system':9} {'step (s)':>9} {'to next step / pause (s)':>25} {'restarted':>10}")
    for r in records:
        value = r.get("seconds_to_next_step", r.get("pause_s"))
        text = "—" if value is None else f"{value:.2f}"
        if value is None and r.get("gave_up_after_s"):
            text = f"> {r['gave_up_after_s']:.0f}"
        step = r.get("step_s")
        print(f"{r['event']:6} {r['anchor']:9} {('—' if step is None else f'{step:.3f}'):>9} {text:>25} "
              f"{str(r.get('workers_restarted', r.get('error', '?'))):>10}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

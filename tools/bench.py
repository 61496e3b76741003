#!/usr/bin/env python3
"""`make bench`: Flux's figures beside the anchors', measured in one run on this machine.

Runs flux-bench (sgemm ceiling, forward at 1024/2048/3072 tokens) and, when the anchors' venv
exists (`make anchors`), the same model in PyTorch and ONNX Runtime (tools/anchors). Prints a table
with the ratios and writes every raw JSON line to bench-out/bench.json. Standard library only.

Video section (`--only video` runs it alone): makes four 10 s clips with the ffmpeg tool in
bench-out/video/ (see VIDEO_FILES), then per file and round times `flux-bench video` (sparse 8,
sparse 16, full decode) and tools/anchors/video_bench.py (decord, PyAV, the ffmpeg tool), ours and
the anchors interleaved, and reports the median over rounds.

All-reduce section (`--only allreduce`): raw ZeroMQ PUSH/PULL (`flux-bench zmq-throughput`), then for 2 and 4
ranks and 1M/22M/88M floats `flux-bench allreduce` with and without CURVE (`--ring-transport`, ipc by default)
beside torch.distributed's Gloo (tools/anchors/gloo_bench.py); bus bandwidths in GB/s (10⁹ bytes).

Sweep section (`--only sweep`): one Token Optimization sweep on 1, 2 and 4 local workers of 1 thread
(tools/sweep_bench.py) and `flux-bench coordinator` with 2,100 and 8,400 empty sweep cells.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / ".build" / "release" / "flux-bench"
SHAPES = [(4, 224), (8, 224), (12, 224)]  # 1024, 2048, 3072 tokens of FluxViT-S
TARGETS = {1024: 0.75, 2048: 0.85, 3072: 0.85}  # share of the same-run sgemm rate (design §6)
# Video clips (design §6): 10 s at 30 fps of a textured, moving test pattern, x264's default preset (medium,
# 3 B-frames, B-pyramid), GOP 30 and 250, at 340×256 and 1280×720.
VIDEO_FILES = [(w, h, g) for w, h in [(340, 256), (1280, 720)] for g in [30, 250]]
VIDEO_MODES = ["sparse8", "sparse16", "full"]
VIDEO_TARGET = 1.5  # sparse sampling: ≥ 1.5× faster than the better of decord and PyAV (design §6)


def run_json(cmd: list[str]) -> list[dict]:
    print("$ " + " ".join(cmd), file=sys.stderr, flush=True)
    out = subprocess.run(cmd, check=True, stdout=subprocess.PIPE, text=True).stdout
    return [json.loads(line) for line in out.splitlines() if line.startswith("{")]


ALLREDUCE_FLOATS = [1_000_000, 22_000_000, 88_000_000]
ALLREDUCE_RANKS = [2, 4]


def allreduce_section(args: argparse.Namespace, python: Path | None, records: list[dict]) -> None:
    """Ring all-reduce (issue 5) beside Gloo and raw ZeroMQ, in one run: flux-bench allreduce with and without CURVE,
    tools/anchors/gloo_bench.py, flux-bench zmq-throughput. Bus bandwidths in GB/s (10⁹ bytes)."""
    zmq = run_json([str(BENCH), "zmq-throughput", "--json"])[0]
    records.append(zmq)
    print(f"\nraw ZeroMQ PUSH/PULL, 2 processes, 1 MiB messages: {zmq['gb_per_s']:.2f} GB/s")
    print(f"{'ranks':>5} {'floats':>10} {'none s':>7} {'busbw':>6} {'curve s':>7} {'busbw':>6} {'gloo s':>7} {'busbw':>6}"
          f" {'none/gloo':>9} {'none/zmq':>8} {'curve/gloo':>10}")
    for ranks in ALLREDUCE_RANKS:
        for floats in ALLREDUCE_FLOATS:
            runs = str(args.runs if floats < 50_000_000 else max(3, args.runs // 2))
            row = {}
            for security in ("none", "curve"):
                rec = run_json([str(BENCH), "allreduce", "--ranks", str(ranks), "--floats", str(floats),
                                "--security", security, "--runs", runs, "--transport", args.ring_transport,
                                "--json"])[0]
                records.append(rec)
                row[security] = rec
            if python is not None:
                rec = run_json([str(python), str(ROOT / "tools/anchors/gloo_bench.py"), "--ranks", str(ranks),
                                "--floats", str(floats), "--runs", runs])[0]
                records.append(rec)
                row["gloo"] = rec
            g = row.get("gloo", {}).get("busbw_gb_per_s", float("nan"))
            n, c = row["none"]["busbw_gb_per_s"], row["curve"]["busbw_gb_per_s"]
            print(f"{ranks:>5} {floats:>10} {row['none']['median_s']:>7.3f} {n:>6.2f} {row['curve']['median_s']:>7.3f} "
                  f"{c:>6.2f} {row.get('gloo', {}).get('median_s', float('nan')):>7.3f} {g:>6.2f} {n / g:>8.2f}× "
                  f"{100 * n / zmq['gb_per_s']:>7.0f}% {c / g:>9.2f}×", flush=True)


def make_video(width: int, height: int, gop: int) -> Path:
    """The bench clip for one size and GOP, made once with the ffmpeg tool (kept in bench-out/video)."""
    out = ROOT / "bench-out" / "video"
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"testsrc2_{width}x{height}_g{gop}.mp4"
    if not path.exists():
        cmd = ["ffmpeg", "-v", "error", "-nostdin", "-y", "-f", "lavfi", "-i", f"testsrc2=size={width}x{height}:rate=30",
               "-t", "10", "-c:v", "libx264", "-g", str(gop), "-pix_fmt", "yuv420p", str(path) + ".tmp.mp4"]
        print("$ " + " ".join(cmd), file=sys.stderr, flush=True)
        subprocess.run(cmd, check=True)
        os.replace(str(path) + ".tmp.mp4", path)
    return path


def median(values: list[float]) -> float:
    values = sorted(values)
    mid = len(values) // 2
    return values[mid] if len(values) % 2 else (values[mid - 1] + values[mid]) / 2


def video_section(args, python: Path, anchors: bool, records: list[dict]) -> None:
    """Ours beside decord, PyAV and the ffmpeg tool on the four clips; `args.rounds` interleaved rounds."""
    # results[(file, mode, engine)] = per-round medians
    results: dict[tuple[str, str, str], list[float]] = {}
    files = [make_video(w, h, g) for w, h, g in VIDEO_FILES]
    for round_index in range(args.rounds):
        for path in files:
            name = path.stem
            for mode in VIDEO_MODES:
                cmd = [str(BENCH), "video", str(path), "--threads", str(args.threads), "--json",
                       "--runs", str(args.video_full_runs if mode == "full" else args.video_runs)]
                cmd += ["--full"] if mode == "full" else ["--frames", mode[len("sparse"):]]
                rec = run_json(cmd)[0]
                rec.update(engine="flux", round=round_index, mode=mode)
                records.append(rec)
                results.setdefault((name, mode, "flux"), []).append(rec["median_s"])
            if anchors:
                for rec in run_json([str(python), str(ROOT / "tools/anchors/video_bench.py"), str(path),
                                     "--modes", ",".join(VIDEO_MODES), "--threads", str(args.threads),
                                     "--runs", str(args.video_runs), "--full-runs", str(args.video_full_runs)]):
                    rec.update(bench="video_anchor", round=round_index)
                    records.append(rec)
                    engine = rec["engine"] + (f"/{rec['strategy']}" if rec.get("strategy") else "")
                    results.setdefault((name, rec["mode"], engine), []).append(rec["median_s"])

    def ms(name: str, mode: str, engine: str) -> float | None:
        values = results.get((name, mode, engine))
        return 1e3 * median(values) if values else None

    def cell(value: float | None, width: int) -> str:
        return f"{value:>{width}.1f}" if value is not None else f"{'—':>{width}}"

    print()
    print(f"Video: ms per clip, {args.threads} threads, median of {args.rounds} interleaved rounds "
          f"(each the median of {args.video_runs} runs, {args.video_full_runs} for full); "
          f"ratio = better of decord and PyAV ÷ Flux; target ≥ {VIDEO_TARGET}× at sparse sampling")
    header = (f"{'file':<26} {'mode':<8} {'Flux':>7} {'decord':>7} {'PyAV':>7} {'PyAV fw':>7} {'ffmpeg':>7} "
              f"{'ratio':>6} {'target':>6}")
    print(header)
    for path in files:
        name = path.stem
        for mode in VIDEO_MODES:
            ours = ms(name, mode, "flux")
            decord = ms(name, mode, "decord")
            if mode == "full":
                pyav, forward, tool = ms(name, mode, "pyav"), None, ms(name, mode, "ffmpeg")
            else:
                pyav, forward, tool = ms(name, mode, "pyav/seek"), ms(name, mode, "pyav/forward"), None
            best = min([v for v in (decord, pyav, forward) if v is not None], default=None)
            ratio = best / ours if best and ours else None
            target = ("met" if ratio >= VIDEO_TARGET else "MISSED") if ratio and mode != "full" else ""
            print(f"{name:<26} {mode:<8} {cell(ours, 7)} {cell(decord, 7)} {cell(pyav, 7)} {cell(forward, 7)} "
                  f"{cell(tool, 7)} {f'{ratio:.2f}×' if ratio else '—':>6} {target:>6}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--venv", default=os.environ.get("FLUX_VENV", str(Path.home() / ".cache/flux/venv")))
    parser.add_argument("--no-anchors", action="store_true")
    parser.add_argument("--only", choices=["model", "video", "allreduce", "elastic", "sweep"],
                        help="run one section: model (sgemm, forward, train step), video (decoding), allreduce, or "
                             "elastic (worker killed / stopped / joining beside torchrun, scaling, coordinator), or "
                             "sweep (one sweep on 1, 2, 4 workers; empty-cell dispatch rate)")
    parser.add_argument("--rounds", type=int, default=3, help="video: interleaved rounds (median reported)")
    parser.add_argument("--video-runs", type=int, default=5, help="video: timed runs per sparse measurement")
    parser.add_argument("--video-full-runs", type=int, default=3, help="video: timed runs per full decode")
    parser.add_argument("--ring-transport", choices=["ipc", "tcp"], default="ipc",
                        help="transport between the all-reduce ranks (ipc: Ring.sameHostEndpoint, as same-host ranks use)")
    args = parser.parse_args()
    records: list[dict] = []
    python = Path(args.venv) / "bin" / "python"
    anchors = not args.no_anchors and python.exists()
    if not anchors and not args.no_anchors:
        print(f"note: no anchors venv at {args.venv}; run `make anchors` to compare with PyTorch, ONNX Runtime, "
              "decord and PyAV", file=sys.stderr)
    if args.only in (None, "model"):
        model_section(args, python, anchors, records)
    if args.only in (None, "video"):
        video_section(args, python, anchors, records)
    if args.only in (None, "allreduce"):
        allreduce_section(args, python if anchors else None, records)
    if args.only in (None, "elastic"):
        elastic_section(python if anchors else None, records)
    if args.only in (None, "sweep"):
        sweep_section(records)

    out = ROOT / "bench-out"
    out.mkdir(exist_ok=True)
    (out / "bench.json").write_text("\n".join(json.dumps(r, sort_keys=True) for r in records) + "\n")
    print(f"\nraw results: {out / 'bench.json'}")
    return 0


def elastic_section(python: Path | None, records: list[dict]) -> None:
    """Elastic training (issue 10) beside torchrun on the same events (tools/elastic_bench.py,
    tools/anchors/torchrun_elastic.py), FluxViT-S scaling on 1 and 2 workers, and the coordinator's own costs
    (flux-bench coordinator)."""
    command = [sys.executable, str(ROOT / "tools/elastic_bench.py"), "--json"]
    if python is not None:
        command += ["--python", str(python)]
    print("$ " + " ".join(command), file=sys.stderr, flush=True)
    events = json.loads(subprocess.run(command, check=True, stdout=subprocess.PIPE, text=True).stdout.strip().splitlines()[-1])
    records += events
    print(f"\n{'event':6} {'system':9} {'step (s)':>9} {'to next step / pause (s)':>25} {'restarted':>10}")
    for r in events:
        value = r.get("seconds_to_next_step", r.get("pause_s"))
        text = f"> {r['gave_up_after_s']:.0f}" if value is None and r.get("gave_up_after_s") else (
            "—" if value is None else f"{value:.2f}")
        print(f"{r['event']:6} {r['anchor']:9} {r.get('step_s', float('nan')):>9.3f} {text:>25} "
              f"{str(r.get('workers_restarted', '?')):>10}", flush=True)
    scaling = json.loads(subprocess.run([sys.executable, str(ROOT / "tools/elastic_bench.py"), "--scaling", "--json"],
                                        check=True, stdout=subprocess.PIPE, text=True).stdout.strip().splitlines()[-1])
    records += scaling
    print(f"FluxViT-S scaling, 1 thread a worker: 1 worker {scaling[0]['clips_per_s']:.2f} clips/s, 2 workers "
          f"{scaling[1]['clips_per_s']:.2f} clips/s: {scaling[1]['speedup']:.2f}× (target ≥ 1.85×)", flush=True)
    # Issue 12: reduction exact beside fast, FluxViT-S on 2 workers × 1 thread, at the model's standard input and at a
    # small one where the all-reduce weighs most.
    for frames, size, commit in ((8, 224, 1), (4, 112, 3)):
        cost = json.loads(subprocess.run(
            [sys.executable, str(ROOT / "tools/elastic_bench.py"), "--reduction-cost", "--security", "none", "--json",
             "--frames", str(frames), "--size", str(size), "--commit-every", str(commit)],
            check=True, stdout=subprocess.PIPE, text=True).stdout.strip().splitlines()[-1])
        records += cost
        fast, exact = cost
        print(f"reduction, FluxViT-S {frames}×{size}², 2 workers × 1 thread: fast {fast['step_s']:.3f} s/step, exact "
              f"{exact['step_s']:.3f} s/step: {exact['time_ratio']:.3f}× (target ≤ 1.05×), "
              f"{exact['wire_ratio']:.4f}× the bytes (target ≤ 2×)", flush=True)
    for rec in run_json([str(BENCH), "coordinator", "--json"]):
        records.append(rec)
        print(f"coordinator: {rec['dispatches_per_s']:.0f} task dispatches/s (target ≥ 2,000); 64 heartbeating workers "
              f"{100 * rec['heartbeat_core_fraction']:.2f}% of a core (target < 5%)", flush=True)


def sweep_section(records: list[dict]) -> None:
    """Token Optimization sweeps (issue 11): one sweep's wall time on 1, 2 and 4 workers of 1 thread
    (tools/sweep_bench.py), and the coordinator's sweep-cell dispatch rate with empty cells (flux-bench coordinator)."""
    command = [sys.executable, str(ROOT / "tools/sweep_bench.py"), "--json"]
    print("$ " + " ".join(command), file=sys.stderr, flush=True)
    sweeps = json.loads(subprocess.run(command, check=True, stdout=subprocess.PIPE, text=True).stdout.strip().splitlines()[-1])
    records += sweeps
    for r in sweeps:
        print(f"sweep on {r['workers']} worker(s) × 1 thread: {r['seconds']:.2f} s, {r['speedup']:.2f}× "
              f"({r['cells']} cells; identical numbers: {r['identical_to_1_worker']})"
              + (" (target ≥ 1.9×)" if r["workers"] == 2 else ""), flush=True)
    for budgets in (100, 400):
        for rec in run_json([str(BENCH), "coordinator", "--json", "--seconds", "1", "--jobs", "10",
                             "--sweep-budgets", str(budgets)]):
            records.append(rec)
            print(f"coordinator: {rec['sweep_cells']} empty sweep cells at {rec['cells_per_s']:.0f} cells/s "
                  f"(target ≥ 2,000)", flush=True)


def model_section(args, python: Path, anchors: bool, records: list[dict]) -> None:
    """sgemm ceiling, FluxViT-S forward at three sizes and one training step, beside PyTorch and ONNX Runtime."""
    sgemm = run_json([str(BENCH), "sgemm", "--threads", str(args.threads), "--runs", str(args.runs), "--json"])[0]
    records.append(sgemm)

    rows = []
    for frames, size in SHAPES:
        # The VM's speed drifts: measure the ceiling right before each shape and compare with that.
        ceiling = run_json([str(BENCH), "sgemm", "--threads", str(args.threads), "--runs", str(args.runs), "--json"])[0]
        records.append(ceiling)
        ours = run_json([str(BENCH), "forward", "--preset", "fluxvit-small", "--frames", str(frames), "--size", str(size),
                         "--threads", str(args.threads), "--runs", str(args.runs), "--json"])[0]
        records.append(ours)
        theirs = {}
        if anchors:
            for rec in run_json([str(python), str(ROOT / "tools/anchors/forward_bench.py"), "--preset", "fluxvit-small",
                                 "--frames", str(frames), "--size", str(size), "--threads", str(args.threads),
                                 "--runs", str(args.runs)]):
                records.append(rec)
                theirs[rec["engine"]] = rec
        ours["sgemm_gflop_per_s"] = ceiling["gflop_per_s"]
        rows.append((ours, theirs))

    rate = sgemm["gflop_per_s"]
    print()
    print(f"OpenBLAS sgemm on the model's Linear shapes, {args.threads} threads: {rate:.1f} GFLOP/s "
          f"(4096³: {sgemm['shapes'][2]['gflop_per_s']:.1f}); the table's sgemm column is measured right before each row")
    print()
    header = f"{'tokens':>6} {'GMACs':>6} {'Flux s':>7} {'GFLOP/s':>7} {'sgemm':>6} {'% sgemm':>7} {'target':>6}"
    if anchors:
        header += f" {'PyTorch s':>9} {'ORT s':>7} {'Flux vs ORT':>11}"
    print(header)
    for ours, theirs in rows:
        share = ours["gflop_per_s"] / ours["sgemm_gflop_per_s"]
        tokens = ours["tokens"]
        line = (f"{tokens:>6} {ours['gmacs']:>6.1f} {ours['median_s']:>7.3f} {ours['gflop_per_s']:>7.1f} "
                f"{ours['sgemm_gflop_per_s']:>6.1f} "
                f"{100 * share:>6.0f}% {100 * TARGETS.get(tokens, 0):>5.0f}%")
        if anchors:
            pt = theirs.get("pytorch", {}).get("median_s")
            ort = theirs.get("onnxruntime", {}).get("median_s")
            line += f" {pt or float('nan'):>9.3f} {ort or float('nan'):>7.3f}"
            line += f" {ort / ours['median_s']:>10.2f}×" if ort else f" {'—':>11}"
        print(line)
    # One Flux training step (spec §5): budgets 2048/1024/512 on 8×224², batch 1.
    step = run_json([str(BENCH), "train-step", "--preset", "fluxvit-small", "--frames", "8", "--size", "224",
                     "--budgets", "2048,1024,512", "--threads", str(args.threads), "--runs", str(args.runs), "--json"])[0]
    records.append(step)
    torch_step = None
    if anchors and (ROOT / "tools/anchors/train_step_bench.py").exists():
        for rec in run_json([str(python), str(ROOT / "tools/anchors/train_step_bench.py"), "--preset", "fluxvit-small",
                             "--frames", "8", "--size", "224", "--budgets", "2048,1024,512", "--threads", str(args.threads),
                             "--runs", str(args.runs)]):
            records.append(rec)
            torch_step = rec
    print()
    line = (f"train step (8×224², budgets 2048/1024/512, batch 1): Flux {step['median_s']:.2f} s, "
            f"peak RSS {step['peak_rss_bytes'] / 1e9:.2f} GB")
    if torch_step:
        line += (f"; PyTorch {torch_step['median_s']:.2f} s, {torch_step['peak_rss_bytes'] / 1e9:.2f} GB "
                 f"(Flux is {torch_step['median_s'] / step['median_s']:.2f}× faster)")
    print(line)


if __name__ == "__main__":
    sys.exit(main())

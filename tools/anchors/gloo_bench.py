#!/usr/bin/env python3
"""All-reduce anchor: torch.distributed's Gloo backend on loopback, the figure `flux-bench allreduce` is compared with.

Starts --ranks processes (torch.multiprocessing, spawn) that join a Gloo group on 127.0.0.1 (TCP store on a free
port), then time `dist.all_reduce(x)` (sum) of --floats fp32: --warmup untimed runs, then --runs timed ones, each
after a barrier. Rank 0's times are reported, as `flux-bench allreduce` does: median_s, algbw = 4·floats / median and
busbw = algbw · 2(n − 1)/n, GB = 10⁹ bytes. The result is checked to be the exact sum (integer-valued inputs).

stdout carries exactly one JSON object; progress goes to stderr.
"""
from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import sys
import time


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def worker(rank: int, args: argparse.Namespace, port: int, queue) -> None:
    import torch
    import torch.distributed as dist

    torch.set_num_threads(1)
    os.environ["GLOO_SOCKET_IFNAME"] = os.environ.get("GLOO_SOCKET_IFNAME", "lo")
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=args.ranks)
    n = args.floats
    base = (torch.arange(n, dtype=torch.int64) % 101 - 50).to(torch.float32)
    x = torch.empty(n, dtype=torch.float32)
    times = []
    cpu = []
    for run in range(args.warmup + args.runs):
        x.copy_(base + rank)
        dist.barrier()
        start = time.perf_counter()
        cpu_start = time.process_time()  # every thread of this process, Gloo's included
        dist.all_reduce(x)
        elapsed = time.perf_counter() - start
        if run >= args.warmup:
            times.append(elapsed)
            cpu.append(time.process_time() - cpu_start)
    expected = base * args.ranks + args.ranks * (args.ranks - 1) / 2
    correct = bool(torch.equal(x, expected))
    dist.destroy_process_group()
    queue.put((rank, times, correct, cpu))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ranks", type=int, default=2)
    parser.add_argument("--floats", type=int, default=22_000_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=1)
    args = parser.parse_args()

    import torch
    import torch.multiprocessing as mp

    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    port = free_port()
    procs = [ctx.Process(target=worker, args=(r, args, port, queue)) for r in range(args.ranks)]
    for p in procs:
        p.start()
    results = {}
    for _ in procs:
        rank, times, correct, cpu = queue.get(timeout=600)
        results[rank] = (times, correct, cpu)
    for p in procs:
        p.join()
    times, _, _ = results[0]
    # CPU seconds of all ranks per operation (as flux-bench allreduce's cpu_s_all_ranks): load hardly changes it.
    cpu_all = statistics.median(sum(r[2][i] for r in results.values()) for i in range(len(times)))
    median = statistics.median(times)
    algbw = 4 * args.floats / median / 1e9
    busbw = algbw * 2 * (args.ranks - 1) / args.ranks
    print(f"gloo all_reduce {args.ranks} ranks {args.floats} floats: median {median:.4f} s, busbw {busbw:.2f} GB/s",
          file=sys.stderr)
    print(json.dumps({
        "bench": "allreduce", "engine": "gloo", "torch": torch.__version__, "ranks": args.ranks,
        "floats": args.floats, "bytes": 4 * args.floats, "security": "none", "median_s": median, "runs_s": times,
        "algbw_gb_per_s": algbw, "busbw_gb_per_s": busbw, "cpu_s_all_ranks": cpu_all,
        "correct": all(r[1] for r in results.values()),
    }, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())

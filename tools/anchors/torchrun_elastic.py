"""torchrun anchor for Flux's elastic benchmarks (issue 10, docs/benchmarks.md "Elastic training").

Runs the same tiny model (tiny-motion: 64² frames, patch 16, 8 frames, width 64, depth 2) on random clips with
a global batch of 12, data-parallel over Gloo, under torchrun's elastic agent with the c10d rendezvous: one agent
per worker (`--nnodes=2:3 --nproc-per-node=1`), the usual way to let workers come and go. Each step prints one JSON
line {"t", "step", "rank", "world", "pid"}; rank 0 saves a checkpoint every 5 steps, and a restarted worker
resumes from it (torchrun restarts every worker of the group on any membership change).

  python torchrun_elastic.py --event kill|stop|join [--steps 400] [--out DIR]

prints one JSON object: the event, the seconds from the event to the survivors' next step, whether workers were
restarted (pids changed), and the step-time baseline. Used by tools/elastic_bench.py beside `fluxd`.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "reference"))


def train(args: argparse.Namespace) -> None:
    """One worker, as torchrun starts it."""
    import torch
    import torch.distributed as dist
    import torch.nn.functional as F

    from fluxvit_ref import FluxViT, FluxViTConfig

    torch.set_num_threads(1)
    dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    torch.manual_seed(7)
    cfg = FluxViTConfig(img_size=64, patch_size=16, num_frames=8, embed_dim=64, depth=2, num_heads=2,
                        attn_pool_num_heads=4, clip_embed_dim=32, num_classes=4)
    model = FluxViT(cfg)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    step = 0
    checkpoint = Path(args.out) / "checkpoint.pt"
    if checkpoint.exists():
        state = torch.load(checkpoint)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        step = state["step"]
    params = [p for p in model.parameters()]
    batch = 12
    while step < args.steps:
        generator = torch.Generator().manual_seed(step)
        clips = torch.randn(batch, 3, 8, 64, 64, generator=generator)
        labels = torch.randint(0, 4, (batch,), generator=generator)
        lo, hi = batch * rank // world, batch * (rank + 1) // world
        # Flux's three budgets, one head each (spec §5), without the alignment terms.
        loss = sum(F.cross_entropy(model(clips[lo:hi], budget=b, head=h)["logits"], labels[lo:hi])
                   for h, b in enumerate((128, 96, 64)))
        optimizer.zero_grad()
        loss.backward()
        # One Gloo all-reduce of the flat gradient per step, as Flux's ring does (DDP refuses three forwards
        # per backward).
        flat = torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p)).reshape(-1) for p in params])
        dist.all_reduce(flat)
        flat /= world
        offset = 0
        for p in params:
            n = p.numel()
            p.grad = flat[offset:offset + n].view_as(p).clone()
            offset += n
        optimizer.step()
        step += 1
        print(json.dumps({"t": time.time(), "step": step, "rank": rank, "world": world, "pid": os.getpid()}),
              flush=True)
        if rank == 0 and step % 5 == 0:
            torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(), "step": step},
                       str(checkpoint) + ".tmp")
            os.replace(str(checkpoint) + ".tmp", checkpoint)
    dist.destroy_process_group()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def steps_in(path: Path) -> list[dict]:
    rows = []
    for line in path.read_text(errors="replace").splitlines():
        if line.startswith("{"):
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                pass
    return rows


def measure(args: argparse.Namespace) -> dict:
    """Starts the agents, waits for training, causes the event, and times the survivors' next step."""
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "checkpoint.pt").unlink(missing_ok=True)
    port = free_port()
    initial = 2 if args.event == "join" else 3

    def agent(index: int) -> tuple[subprocess.Popen, Path]:
        log = out / f"agent{index}.log"
        nodes = ["--nnodes=2:3", "--nproc-per-node=1"] if args.layout == "agents" else \
            ["--nnodes=1", f"--nproc-per-node={initial}"]
        command = [sys.executable, "-m", "torch.distributed.run", *nodes,
                   "--max-restarts=5", "--rdzv-backend=c10d", f"--rdzv-endpoint=127.0.0.1:{port}",
                   "--rdzv-id=flux-anchor", "--monitor-interval=0.1", "--local-addr=127.0.0.1", __file__, "--worker", "--steps",
                   str(args.steps), "--out", str(out)]
        # Without lazy Gloo initialization, torch 2.15's restarted workers fail connectFullMesh against their
        # peers' addresses round after round here (measured: no step within 90 s); with it they recover.
        env = dict(os.environ, TORCH_GLOO_LAZY_INIT="1")
        return subprocess.Popen(command, stdout=open(log, "w"), stderr=subprocess.STDOUT, env=env,
                                start_new_session=True), log

    agents = [agent(i) for i in range(initial if args.layout == "agents" else 1)]
    result: dict = {"event": args.event, "anchor": "torchrun", "layout": args.layout}
    try:
        deadline = time.time() + 300
        while time.time() < deadline:
            rows = [r for _, log in agents for r in steps_in(log)]
            if any(r["step"] >= 20 and r["world"] == initial for r in rows):
                break
            time.sleep(0.2)
        else:
            raise SystemExit("torchrun workers did not reach step 20")
        rows = [r for _, log in agents for r in steps_in(log)]
        rank0 = sorted(r["t"] for r in rows if r["rank"] == 0)
        gaps = sorted(b - a for a, b in zip(rank0[-11:], rank0[-10:]))
        result["step_s"] = gaps[len(gaps) // 2]
        pids_before = {r["pid"] for r in rows}
        # The victim: the worker process under the last agent (a child of the agent's process group).
        victim_log = agents[-1][1]
        victim_rows = steps_in(victim_log)
        if args.layout == "single":
            victim_rows = [r for r in victim_rows if r["rank"] == initial - 1]
        victim_pid = victim_rows[-1]["pid"] if args.event != "join" else -1
        t0 = time.time()
        if args.event == "kill":
            os.kill(victim_pid, signal.SIGKILL)
        elif args.event == "stop":
            os.kill(victim_pid, signal.SIGSTOP)
        elif args.event == "lost-host":
            os.killpg(agents[-1][0].pid, signal.SIGKILL)
        else:
            agents.append(agent(len(agents)))
        survivors = [log for _, log in agents[:-1]] if args.layout == "agents" else [agents[0][1]]
        limit = t0 + args.limit
        first = None
        while time.time() < limit and first is None:
            if args.event == "join":
                rows = [r for _, log in agents for r in steps_in(log)]
                if any(r["world"] == initial + 1 and r["t"] > t0 for r in rows):
                    # The pause of the workers already training: their longest gap between steps around the join.
                    times = sorted(r["t"] for r in rows if r["rank"] == 0 and r["t"] > t0 - result["step_s"])
                    longest = max([b - a for a, b in zip(times, times[1:])] + [min(r["t"] for r in rows if r["world"] == initial + 1) - t0])
                    first = t0 + max(0.0, longest - result["step_s"])
                    result["joined_after_s"] = min(r["t"] for r in rows if r["world"] == initial + 1) - t0
                    break
            for log in survivors:
                # A step after recovery: by a restarted worker or in a new world (a step already in flight when
                # the event happened does not count).
                later = [r for r in steps_in(log) if r["t"] > t0 and r["pid"] != victim_pid
                         and (r["pid"] not in pids_before or r["world"] != initial)]
                if later and args.event != "join":
                    first = min(r["t"] for r in later)
                    break
            time.sleep(0.05)
        result["pause_s" if args.event == "join" else "seconds_to_next_step"] = None if first is None else first - t0
        result["gave_up_after_s"] = None if first is not None else args.limit
        rows = [r for _, log in agents for r in steps_in(log)]
        result["workers_restarted"] = bool({r["pid"] for r in rows if r["t"] > t0} - pids_before)
        if args.event == "stop":
            os.kill(victim_pid, signal.SIGCONT)
    finally:
        # The agents, and every worker any of them started (torchrun gives workers their own process groups).
        seen = {r["pid"] for _, log in agents for r in steps_in(log)}
        for process, _ in agents:
            try:
                os.killpg(process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        for pid in seen:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        subprocess.run(["pkill", "-9", "-f", f"{__file__} --worker"], capture_output=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--event", choices=["kill", "stop", "join", "lost-host"], default="kill")
    parser.add_argument("--steps", type=int, default=100000)
    parser.add_argument("--layout", choices=["agents", "single"], default="agents",
                        help="one torchrun agent per worker (elastic membership), or one agent for all workers")
    parser.add_argument("--limit", type=float, default=90, help="give up waiting after this many seconds")
    parser.add_argument("--out", default="/tmp/flux-torchrun-anchor")
    args = parser.parse_args()
    if args.worker:
        train(args)
    else:
        print(json.dumps(measure(args)))


if __name__ == "__main__":
    main()

"""Anchor benchmark: one Flux training step of FluxViT in PyTorch (eager, fp32, CPU).

The figure `flux-bench train-step` is compared against. The model is the reference of
tools/reference/fluxvit_ref.py with the spec's training-from-scratch init (random weights; speed does
not depend on their values, apart from which tokens selection keeps). One step (spec §5):

  zero grads; forward the same batch with budgets (largest, middle, least) and heads 0, 1, 2;
  loss = CE_ls(logits0) + CE_ls(logits1) + CE_ls(logits2)
         + SL1(proj0(f1), sg(f0)) + SL1(proj1(f2), sg(f0))     (label smoothing 0.1, SL1 beta 1);
  backward; global gradient norm (clipped to --clip if given); AdamW step with the spec's groups
  (weight decay 0.05 except 1-D / .bias / pos_embed / cls_token, layer decay 0.75).

Two schedules of the same gradients:
  * default ("single_backward"): the way the official PyTorch code does it, one forward per budget
    into one graph, the five terms summed, one backward (fluxvit_ref.flux_loss). All three budgets'
    activations are alive at the backward.
  * --per-budget-backward ("per_budget_backward"): each budget's backward right after its forward,
    f0 detached and kept (fluxvit_ref.flux_backward_sequential); one budget's activations at a time.

Usage:
    $VENV/bin/python tools/anchors/train_step_bench.py [--preset fluxvit-small] [--frames 8] \
        [--size 224] [--budgets 2048,1024,512] [--batch 1] [--threads 2] [--runs 5] [--warmup 1] \
        [--clip MAX_NORM] [--per-budget-backward] [--attention eager|sdpa] [--profile]

Prints one JSON object on stdout, e.g.
    {"engine": "pytorch", "bench": "train_step", "median_s": 6.1, "peak_rss_bytes": 4.1e9,
     "frames": 8, "size": 224, "budgets": [2048, 1024, 512], "batch": 1, "threads": 2,
     "schedule": "single_backward", ...}
Progress, notes and the --profile table go to stderr. Time is the wall-clock of whole steps, median
over --runs steps after --warmup untimed ones (the first step also allocates AdamW's state).
peak_rss_bytes is ru_maxrss of this process (one configuration per process), read before --profile.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "reference"))
import fluxvit_ref as R  # noqa: E402


def log(msg: str) -> None:
    print(f"train_step_bench: {msg}", file=sys.stderr, flush=True)


def peak_rss_bytes() -> int:
    """ru_maxrss of this process; Linux reports KiB (macOS bytes)."""
    r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(r) if sys.platform == "darwin" else int(r) * 1024


def sdpa_attention_forward(self: R.Attention, x: torch.Tensor) -> torch.Tensor:
    """fluxvit_ref.Attention.forward with the attention core as F.scaled_dot_product_attention
    (PyTorch's fused CPU kernel: no n x n score matrix kept for the backward). Same maths: the
    default scale is hd^-0.5."""
    B, n, C = x.shape
    H = self.num_heads
    hd = C // H
    q, k, v = self.qkv(x).split(C, dim=-1)
    q = self.q_norm(q)
    k = self.k_norm(k)
    v_lpe = self.lpe(v)
    q, k, v = (t.reshape(B, n, H, hd).transpose(1, 2) for t in (q, k, v))
    o = F.scaled_dot_product_attention(q, k, v)
    o = o.transpose(1, 2).reshape(B, n, C)
    return self.proj(o + v_lpe)


class Phases:
    """Wall-clock per phase of one step (CPU ops are synchronous, so perf_counter splits are exact)."""

    def __init__(self):
        self.t = {"forward": 0.0, "backward": 0.0, "grad_norm": 0.0, "optimizer": 0.0}
        self.last = time.perf_counter()

    def mark(self, phase: str) -> None:
        now = time.perf_counter()
        self.t[phase] += now - self.last
        self.last = now


def step_single_backward(model, opt, video, labels, budgets, smoothing, clip, ph: Phases) -> float:
    """Official order: three forwards in one graph, summed loss, one backward (= R.train_step)."""
    opt.zero_grad(set_to_none=True)
    loss, _ = R.flux_loss(model, video, labels, budgets, smoothing)
    ph.mark("forward")
    loss.backward()
    ph.mark("backward")
    R.clip_grad_norm(list(model.parameters()), clip)
    ph.mark("grad_norm")
    opt.step()
    ph.mark("optimizer")
    return float(loss.detach())


def step_per_budget_backward(model, opt, video, labels, budgets, smoothing, clip, ph: Phases) -> float:
    """Spec §5's memory-saving order (= R.flux_backward_sequential, split into phases): budget 0
    forward + backward keeping sg(f0), then budget 1, then budget 2; gradients accumulate."""
    opt.zero_grad(set_to_none=True)
    o0 = model(video, budget=budgets[0], head=0)
    l0 = R.label_smoothing_ce(o0["logits"], labels, smoothing)
    f0 = o0["feature"].detach()
    ph.mark("forward")
    l0.backward()
    ph.mark("backward")
    del o0
    total = float(l0.detach())
    for j, m in ((1, 0), (2, 1)):
        o = model(video, budget=budgets[j], head=j)
        lj = R.label_smoothing_ce(o["logits"], labels, smoothing) + \
            R.smooth_l1_align(model.final_clip_decoder_for_projs[m](o["feature"]), f0)
        ph.mark("forward")
        lj.backward()
        ph.mark("backward")
        del o
        total += float(lj.detach())
    R.clip_grad_norm(list(model.parameters()), clip)
    ph.mark("grad_norm")
    opt.step()
    ph.mark("optimizer")
    return total


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", default="fluxvit-small", choices=sorted(R.PRESETS))
    ap.add_argument("--frames", type=int, default=8)
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--budgets", default="2048,1024,512", help="three budgets, largest first (heads 0, 1, 2)")
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--runs", type=int, default=5, help="timed steps (median reported)")
    ap.add_argument("--warmup", type=int, default=1, help="untimed steps first")
    ap.add_argument("--clip", type=float, default=None,
                    help="clip the global gradient norm to this (default: none; the norm is computed anyway)")
    ap.add_argument("--lr", type=float, default=1e-4, help="schedule value (times each group's layer-decay scale)")
    ap.add_argument("--weight-decay", type=float, default=0.05)
    ap.add_argument("--layer-decay", type=float, default=0.75)
    ap.add_argument("--smoothing", type=float, default=0.1)
    ap.add_argument("--per-budget-backward", action="store_true",
                    help="each budget's backward right after its forward (f0 detached) instead of one backward")
    ap.add_argument("--attention", choices=("eager", "sdpa"), default="eager",
                    help="eager: the reference's explicit softmax(q k^T) v (as forward_bench.py); "
                         "sdpa: F.scaled_dot_product_attention")
    ap.add_argument("--profile", action="store_true",
                    help="after timing, profile one more step with torch.profiler (table on stderr)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    if args.runs < 1 or args.warmup < 0 or args.batch < 1:
        ap.error("--runs and --batch must be >= 1, --warmup >= 0")
    try:
        budgets = [int(b) for b in args.budgets.split(",")]
    except ValueError:
        ap.error("--budgets must be three integers")
    if len(budgets) != 3 or budgets != sorted(budgets, reverse=True) or min(budgets) < 1:
        ap.error("--budgets needs three positive numbers, largest first")

    torch.set_num_threads(args.threads)
    torch.set_num_interop_threads(1)
    torch.manual_seed(args.seed)
    if args.attention == "sdpa":
        R.Attention.forward = sdpa_attention_forward
    cfg = R.preset(args.preset)
    P = cfg.patch_size
    if args.size % P:
        ap.error(f"--size must be a multiple of the patch size {P}")
    L = (args.size // P) ** 2
    N = args.frames * L
    if any(b < N for b in budgets) and args.frames % 2:
        ap.error("token selection needs an even frame count")
    tokens = [R.selection_groups(args.frames) * R.selection_keep_per_group(args.frames, L, b) if b < N else N
              for b in budgets]

    model = R.FluxViT(cfg)
    R.init_weights(model)
    model.train()
    opt = R.make_optimizer(model, args.weight_decay, args.layer_decay)
    R.set_lr(opt, args.lr)
    video = torch.randn(args.batch, 3, args.frames, args.size, args.size,
                        generator=torch.Generator().manual_seed(args.seed))
    labels = torch.arange(args.batch) % cfg.num_classes
    n_params = sum(p.numel() for p in model.parameters())
    setup_rss = peak_rss_bytes()

    schedule = "per_budget_backward" if args.per_budget_backward else "single_backward"
    step = step_per_budget_backward if args.per_budget_backward else step_single_backward
    log(f"pytorch {torch.__version__}: {args.preset} ({n_params / 1e6:.1f} M parameters), batch {args.batch}, "
        f"{args.frames}x{args.size}^2 ({N} tokens), budgets {budgets} -> tokens {tokens}, {schedule}, "
        f"{args.attention} attention, clip {args.clip}, {args.threads} threads, "
        f"{args.warmup} warm-up + {args.runs} timed steps; load average {os.getloadavg()}")

    def one(ph: Phases) -> float:
        return step(model, opt, video, labels, budgets, args.smoothing, args.clip, ph)

    for i in range(args.warmup):
        t0 = time.perf_counter()
        one(Phases())
        log(f"warm-up {i + 1}: {time.perf_counter() - t0:.3f} s")
    times, phases, loss = [], [], float("nan")
    for i in range(args.runs):
        ph = Phases()
        t0 = ph.last
        loss = one(ph)
        times.append(time.perf_counter() - t0)
        phases.append(ph.t)
        log(f"step {i + 1}: {times[-1]:.3f} s (" + ", ".join(f"{k} {v:.3f}" for k, v in ph.t.items()) +
            f"), loss {loss:.4f}")
    rss = peak_rss_bytes()
    load = os.getloadavg()

    fwd_gmacs = sum(R.gmacs(cfg, t, sampled=N) for t in tokens) * args.batch
    rec = {
        "engine": "pytorch", "bench": "train_step", "median_s": round(statistics.median(times), 4),
        "peak_rss_bytes": rss, "preset": args.preset, "frames": args.frames, "size": args.size,
        "budgets": budgets, "tokens": tokens, "sampled_tokens": N, "batch": args.batch,
        "threads": args.threads, "schedule": schedule, "attention": args.attention, "clip": args.clip,
        "lr": args.lr, "weight_decay": args.weight_decay, "layer_decay": args.layer_decay,
        "label_smoothing": args.smoothing, "dtype": "fp32", "runs": args.runs, "warmup": args.warmup,
        "runs_s": [round(t, 4) for t in times], "min_s": round(min(times), 4), "max_s": round(max(times), 4),
        "phase_median_s": {k: round(statistics.median(p[k] for p in phases), 4) for k in phases[0]},
        "forward_gmacs": round(fwd_gmacs, 2), "loss": round(loss, 5),
        "setup_peak_rss_bytes": setup_rss, "parameters": n_params,
        "load_average": [round(x, 2) for x in load], "cpu": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(), "version": torch.__version__,
    }
    print(json.dumps(rec), flush=True)

    if args.profile:
        from torch.profiler import ProfilerActivity, profile
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            one(Phases())
        print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=25), file=sys.stderr, flush=True)


if __name__ == "__main__":
    main()

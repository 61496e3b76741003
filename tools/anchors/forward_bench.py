"""Anchor benchmark: one FluxViT forward pass in PyTorch (eager, fp32) and in ONNX Runtime (CPU).

These are the figures `flux-bench` is compared against (`make bench`). The model is the reference
of tools/reference/fluxvit_ref.py with random weights (speed does not depend on their values, apart
from which tokens selection keeps).

Usage:
    $VENV/bin/python tools/anchors/forward_bench.py --preset fluxvit-small --frames 8 --size 224 \
        [--budget N] [--threads 2] [--runs 5] [--warmup 2] [--engines pytorch,onnxruntime]

Prints one JSON object per engine on stdout, e.g.
    {"engine": "pytorch", "median_s": 1.23, "gmacs": 83.3, "gflop_per_s": 135.4, "frames": 8,
     "size": 224, "tokens": 2048, "threads": 2, ...}
Progress and notes go to stderr. GMACs follow spec §7 (billions of multiply-accumulates, n = tokens
+ 1 with cls: per block 4nC^2 + 2nC*Hd + 2n^2C; patch embedding on all sampled tokens; one pooling
head 2nC^2 + C^2 + C*D; classifier D*K); gflop_per_s counts 2 FLOPs per MAC. Timing is wall-clock
of one batch-1 forward, median over --runs runs after --warmup runs.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "reference"))
import fluxvit_ref as R  # noqa: E402


def log(msg: str) -> None:
    print(f"forward_bench: {msg}", file=sys.stderr, flush=True)


class Logits(torch.nn.Module):
    """Export wrapper: video -> logits of one head, at a fixed budget (or none)."""

    def __init__(self, model: R.FluxViT, budget, head: int):
        super().__init__()
        self.model, self.budget, self.head = model, budget, head

    def forward(self, video: torch.Tensor) -> torch.Tensor:
        return self.model(video, budget=self.budget, head=self.head)["logits"]


def select_tokens_exportable(embed: torch.Tensor, budget: int):
    """Same kept set as fluxvit_ref.select_tokens, without the stable sort that the ONNX exporters
    reject: the stable descending rank of each token is counted by comparisons (rank = #greater +
    #equal with a lower index), and the k tokens of rank < k are listed in ascending order by a
    TopK over unique keys. O(n^2) per group, which is small next to attention."""
    B, T, L, C = embed.shape
    G = R.selection_groups(T)
    n = (T // G) * L
    k = R.selection_keep_per_group(T, L, budget)
    v = R.selection_importance(embed).reshape(B, G, n)
    idx = torch.arange(n)
    greater = (v.unsqueeze(-2) > v.unsqueeze(-1)).sum(-1)  # [B, G, n]: #j with v[j] > v[i]
    earlier_equal = ((v.unsqueeze(-2) == v.unsqueeze(-1)) & (idx.view(1, n) < idx.view(n, 1))).sum(-1)
    rank = greater + earlier_equal
    key = torch.where(rank < k, idx, idx + n)
    local = torch.topk(key, k, dim=-1, largest=False, sorted=True).indices
    return (local + (torch.arange(G) * n).view(1, G, 1)).reshape(B, G * k), None


class exportable_selection:
    """Context manager: the reference forward uses select_tokens_exportable while exporting."""

    def __enter__(self):
        self.saved = R.select_tokens
        R.select_tokens = select_tokens_exportable

    def __exit__(self, *exc):
        R.select_tokens = self.saved


def time_runs(fn, runs: int, warmup: int) -> list:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return times


def export_onnx(wrapper: torch.nn.Module, video: torch.Tensor, path: str, opset: int) -> str:
    """Export with the dynamo exporter, falling back to the TorchScript one. Returns its name."""
    errors = []
    for dynamo in (True, False):
        try:
            # stdout carries only the JSON lines: the exporters' progress goes to stderr.
            with warnings.catch_warnings(), contextlib.redirect_stdout(sys.stderr):
                warnings.simplefilter("ignore")
                torch.onnx.export(wrapper, (video,), path, opset_version=opset, dynamo=dynamo,
                                  input_names=["video"], output_names=["logits"], verbose=False)
            return "dynamo" if dynamo else "torchscript"
        except Exception as e:  # noqa: BLE001 - report and try the other exporter
            errors.append(f"{'dynamo' if dynamo else 'torchscript'}: {type(e).__name__}: {str(e)[:300]}")
    raise RuntimeError("; ".join(errors))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", default="fluxvit-small", choices=sorted(R.PRESETS))
    ap.add_argument("--frames", type=int, default=8)
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--budget", type=int, default=None, help="token budget (selection when below T*(size/P)^2)")
    ap.add_argument("--head", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--opset", type=int, default=18)
    ap.add_argument("--engines", default="pytorch,onnxruntime")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    if args.runs < 1 or args.warmup < 0:
        ap.error("--runs must be >= 1 and --warmup >= 0")
    engines = [e.strip() for e in args.engines.split(",") if e.strip()]
    for e in engines:
        if e not in ("pytorch", "onnxruntime"):
            ap.error(f"unknown engine {e!r}")

    torch.set_num_threads(args.threads)
    torch.set_num_interop_threads(1)
    torch.manual_seed(args.seed)
    cfg = R.preset(args.preset)
    model = R.FluxViT(cfg)
    R.init_weights(model)
    model.eval()
    P = cfg.patch_size
    if args.size % P:
        ap.error(f"--size must be a multiple of the patch size {P}")
    L = (args.size // P) ** 2
    N = args.frames * L
    selecting = args.budget is not None and args.budget < N
    if selecting and args.frames % 2:
        ap.error("token selection needs an even frame count")
    tokens = R.selection_groups(args.frames) * R.selection_keep_per_group(args.frames, L, args.budget) if selecting else N
    video = torch.randn(1, 3, args.frames, args.size, args.size, generator=torch.Generator().manual_seed(args.seed))

    common = {"preset": args.preset, "frames": args.frames, "size": args.size,
              "budget": args.budget, "sampled_tokens": N, "threads": args.threads, "batch": 1,
              "dtype": "fp32", "runs": args.runs, "warmup": args.warmup, "cpu": platform.processor() or platform.machine(),
              "cpu_count": os.cpu_count()}

    def emit(engine: str, times: list, tok: int, **extra) -> None:
        med = statistics.median(times)
        gm = R.gmacs(cfg, tok, sampled=N)
        rec = {"engine": engine, "median_s": round(med, 4), "gmacs": round(gm, 2),
               "gflop_per_s": round(2 * gm / med, 1), "tokens": tok, **common,
               "min_s": round(min(times), 4), "max_s": round(max(times), 4), **extra}
        print(json.dumps(rec), flush=True)

    with torch.no_grad():
        ref = model(video, budget=args.budget, head=args.head)["logits"]

    if "pytorch" in engines:
        log(f"pytorch {torch.__version__}: {args.preset} {args.frames}x{args.size} tokens {tokens}/{N}, "
            f"{args.threads} threads, {args.warmup} warm-up + {args.runs} runs")
        with torch.inference_mode():
            times = time_runs(lambda: model(video, budget=args.budget, head=args.head), args.runs, args.warmup)
        emit("pytorch", times, tokens, version=torch.__version__)

    if "onnxruntime" in engines:
        import numpy as np
        import onnxruntime as ort
        with tempfile.TemporaryDirectory(prefix="flux-bench-") as tmp:
            path = os.path.join(tmp, "fluxvit.onnx")
            ort_budget = args.budget if selecting else None
            try:
                if selecting:  # the exportable selection must keep exactly the reference's tokens
                    with torch.no_grad():
                        e = model.patch_embed(video)
                    want, _ = R.select_tokens(e, args.budget)
                    got, _ = select_tokens_exportable(e, args.budget)
                    if not torch.equal(want, got):
                        raise RuntimeError("exportable selection disagrees with the reference")
                with exportable_selection():
                    exporter = export_onnx(Logits(model, ort_budget, args.head), video, path, args.opset)
                ort_tokens, ref_ort = tokens, ref
            except RuntimeError as e:
                if not selecting:
                    raise
                log(f"the budget path does not export ({e}); exporting the unmasked path instead")
                exporter = export_onnx(Logits(model, None, args.head), video, path, args.opset)
                ort_tokens = N
                with torch.no_grad():
                    ref_ort = model(video, head=args.head)["logits"]
                ort_budget = None
            so = ort.SessionOptions()
            so.intra_op_num_threads = args.threads
            so.inter_op_num_threads = 1
            so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
            so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
            sess = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
            feed = {sess.get_inputs()[0].name: video.numpy()}
            out = sess.run(None, feed)[0]
            diff = float(np.abs(out - ref_ort.numpy()).max())
            log(f"onnxruntime {ort.__version__} ({exporter} export, opset {args.opset}): tokens {ort_tokens}/{N}, "
                f"max|logits - pytorch| = {diff:.2e}")
            times = time_runs(lambda: sess.run(None, feed), args.runs, args.warmup)
            emit("onnxruntime", times, ort_tokens, version=ort.__version__, exporter=exporter,
                 opset=args.opset, onnx_budget=ort_budget, max_abs_diff_vs_pytorch=diff)


if __name__ == "__main__":
    main()

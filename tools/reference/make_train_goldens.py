"""Write the training-core goldens of Tests/FluxTrainingTests/Goldens/ from the PyTorch reference.

Normally run by make_goldens.py (`make goldens`), after the self-checks of check_ref.py; alone:
    $(tools/reference/setup_venv.sh) tools/reference/make_train_goldens.py [--out DIR]

Writes (safetensors, F32 tensors, I64 indices, header keys sorted so regeneration is byte-identical):
    kernel_<name>.safetensors        one backward kernel: inputs, dout, out, grad.<input>
    model_grads_<case>.safetensors   the full Flux loss of the tiny model and every parameter gradient
    train_steps.safetensors          6 AdamW steps of configs/models/tiny-train.yaml
    init_stats.safetensors           the fluxvit-small sin-cos pos_embed (head and tail rows)
and configs/models/tiny-train.yaml. Every value is computed in float64 from F32-exact inputs and
weights, then rounded to F32; each file's metadata records how far PyTorch's own float32 run lies
from it (`fp32_max_rel_dev`). See Tests/FluxTrainingTests/Goldens/README.md.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import sys
from dataclasses import replace
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import save_file

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import fluxvit_ref as R  # noqa: E402
import make_goldens as MG  # noqa: E402

REPO = HERE.parent.parent
GENERATOR = "tools/reference/make_train_goldens.py"
SIZE_LIMIT = 2_500_000  # bytes, the whole folder

# --- the training trajectory ---------------------------------------------------------------------

TRAIN = R.FluxViTConfig(img_size=8, patch_size=4, num_frames=4, embed_dim=32, depth=2, num_heads=2,
                        mlp_ratio=4, attn_pool_num_heads=2, clip_embed_dim=16, num_classes=5, gelu="tanh")
TRAIN_BUDGETS = [24, 16, 8]
TRAIN_WEIGHT_SEED = 20250302
TRAIN_BATCH = 2
HYPER = {
    "base_lr": 1e-3, "final_lr": 1e-5, "warmup_start_lr": 1e-6, "epochs": 1, "iters_per_epoch": 6,
    "warmup_iters": 2, "weight_decay": 0.05, "layer_decay": 0.75, "beta1": R.ADAM_BETAS[0],
    "beta2": R.ADAM_BETAS[1], "adam_eps": R.ADAM_EPS, "label_smoothing": 0.1, "max_norm": 22.0,
    "clip_eps": 1e-6,
}
# (frames, size) per step 1..6. N = T*(size/4)^2: 8 (no selection), 36 (all three budgets select),
# 24 (16 and 8 select), 18 (16 and 8 select, G=1), 54 (all select), 16 (8 selects).
STEP_SAMPLING = [(2, 8), (4, 12), (6, 8), (2, 12), (6, 12), (4, 8)]
SAVED_STEPS = (1, 3, 6)  # parameters after these steps (all six would exceed the size limit)

# --- whole-model gradients (the tiny-test model and weights) ------------------------------------

# name, frames, size, gelu
MODEL_GRAD_CASES = [
    ("t6_s12_tanh", 6, 12, "tanh"),  # N=54 > every budget, G=2, both resizes
    ("t4_s8_erf", 4, 8, "erf"),      # N=16: budgets 24 and 16 keep all, 8 selects (G=2)
]
MODEL_GRAD_BATCH = 2


def meta(seed: int, case: str, **params) -> Dict[str, str]:
    m = MG.meta(seed, case, **params)
    m["generator"] = GENERATOR
    return m


def write(path: Path, tensors: Dict[str, torch.Tensor], metadata: Dict[str, str]) -> None:
    save_file(MG.contiguous(tensors), str(path), metadata=metadata)
    MG.canonicalize_header(path)
    shown = [f"{k}{list(t.shape)}" for k, t in sorted(tensors.items())
             if not k.startswith(("grad.blocks", "grad.clip", "grad.final", "grad.head", "init.", "step.",
                                  "lr_scale.", "weight_decay."))]
    more = len(tensors) - len(shown)
    print(f"  {path.name:34s} {path.stat().st_size:8d} B  " + ", ".join(shown[:14]) +
          (f", ... ({more} more)" if more else ""))


def f64(t: torch.Tensor, grad: bool = True) -> torch.Tensor:
    return t.detach().double().requires_grad_(grad)


def rel_dev(a: torch.Tensor, b: torch.Tensor) -> float:
    """max|a - b| / max(1e-30, max|b|): the float32 run's deviation from the float64 golden."""
    a64, b64 = a.detach().double(), b.detach().double()
    return float((a64 - b64).abs().max() / b64.abs().max().clamp_min(1e-30)) if b.numel() else 0.0


def zero_grad_param(name: str) -> bool:
    """Parameters whose gradient is identically zero: a bias common to all keys of the pooling
    attention (the pooling k_bias, and norm1_k's bias, which passes through the k Linear) shifts
    every logit of the query by the same amount, and softmax ignores that. Their computed gradient
    is rounding noise (about 1e-17 in float64, 1e-8 in float32, as large as Adam's eps)."""
    return name.endswith(("cross_attn.k_bias", "norm1_k.bias"))


def zero_grad_names(model: R.FluxViT) -> List[str]:
    return [n for n, _ in model.named_parameters() if zero_grad_param(n)]


def fmt(x: float) -> str:
    return f"{x:.3g}"


# ---------------------------------------------------------------------------------------------
# 1. Kernel backward goldens
# ---------------------------------------------------------------------------------------------


def fakeloss(inputs: Dict[str, torch.Tensor], fn, seed_gen: torch.Generator,
             noise: Sequence[str] = ()) -> Tuple[torch.Tensor, torch.Tensor, Dict[str, torch.Tensor], float]:
    """out = fn(**inputs64); dout ~ N(0,1); grads of (out * dout).sum() in float64. Also runs fn in
    float32 and returns the worst relative deviation of out and the grads from float64 (leaving
    out the inputs in `noise`, whose gradient is identically zero: rounding noise either way)."""
    leaves = {k: f64(v) for k, v in inputs.items()}
    out = fn(**leaves)
    dout = torch.randn(out.shape, generator=seed_gen)
    (out * dout.double()).sum().backward()
    grads = {k: v.grad for k, v in leaves.items()}
    l32 = {k: v.detach().clone().requires_grad_(True) for k, v in inputs.items()}
    o32 = fn(**l32)
    (o32 * dout).sum().backward()
    dev = max([rel_dev(o32, out)] + [rel_dev(l32[k].grad, grads[k]) for k in inputs if k not in noise])
    return out.detach(), dout, grads, dev


def scalar_loss(inputs: Dict[str, torch.Tensor], fn, wrt: Sequence[str]) -> Tuple[torch.Tensor, Dict[str, torch.Tensor], float]:
    leaves = {k: (f64(v, k in wrt) if v.is_floating_point() else v) for k, v in inputs.items()}
    loss = fn(**leaves)
    loss.backward()
    grads = {k: leaves[k].grad for k in wrt}
    l32 = {k: (v.detach().clone().requires_grad_(k in wrt) if v.is_floating_point() else v) for k, v in inputs.items()}
    lo32 = fn(**l32)
    lo32.backward()
    dev = max([rel_dev(lo32, loss)] + [rel_dev(l32[k].grad, grads[k]) for k in wrt])
    return loss.detach().reshape(1), grads, dev


def kernel_rmsnorm(seed: int) -> Tuple[Dict[str, torch.Tensor], Dict[str, str]]:
    gen = torch.Generator().manual_seed(seed)
    rows, cols, eps = 6, 32, R.RMS_EPS
    x = torch.randn(rows, cols, generator=gen)
    x[2] = 3.0 + 1e-3 * torch.randn(cols, generator=gen)   # nearly constant row
    x[4] = 1e-3 * torch.randn(cols, generator=gen)         # tiny row: mean(x^2) ~ eps
    x[5] *= 30.0                                           # large row
    w = 1 + 0.1 * torch.randn(cols, generator=gen)
    out, dout, g, dev = fakeloss({"x": x, "weight": w}, lambda x, weight: R.rms_norm(x, weight, eps), gen)
    rstd = torch.rsqrt(x.double().pow(2).mean(-1) + eps)
    t = {"x": x, "weight": w, "dout": dout, "out": out, "rstd": rstd, "grad.x": g["x"], "grad.weight": g["weight"]}
    return t, {"rows": rows, "cols": cols, "eps": eps, "fp32_max_rel_dev": fmt(dev),
               "notes": "row 2 nearly constant (3 + 1e-3 N(0,1)); row 4 tiny (1e-3 N(0,1)); row 5 x30"}


def kernel_layernorm(seed: int) -> Tuple[Dict[str, torch.Tensor], Dict[str, str]]:
    gen = torch.Generator().manual_seed(seed)
    rows, cols, eps = 6, 32, R.LN_EPS
    x = torch.randn(rows, cols, generator=gen)
    x[2] = 0.5 + 1e-3 * torch.randn(cols, generator=gen)   # nearly constant: variance 1e-6 << eps
    x[4] = 100.0 + torch.randn(cols, generator=gen)        # large offset: one-pass E[x^2]-E[x]^2 fails
    w = 1 + 0.1 * torch.randn(cols, generator=gen)
    b = 0.1 * torch.randn(cols, generator=gen)
    out, dout, g, dev = fakeloss({"x": x, "weight": w, "bias": b},
                                 lambda x, weight, bias: F.layer_norm(x, (cols,), weight, bias, eps), gen)
    x64 = x.double()
    mean = x64.mean(-1)
    rstd = torch.rsqrt(((x64 - mean[:, None]) ** 2).mean(-1) + eps)
    t = {"x": x, "weight": w, "bias": b, "dout": dout, "out": out, "mean": mean, "rstd": rstd,
         "grad.x": g["x"], "grad.weight": g["weight"], "grad.bias": g["bias"]}
    return t, {"rows": rows, "cols": cols, "eps": eps, "fp32_max_rel_dev": fmt(dev),
               "notes": "row 2 nearly constant (0.5 + 1e-3 N(0,1)); row 4 offset 100 (100 + N(0,1))"}


def kernel_gelu(seed: int, kind: str) -> Tuple[Dict[str, torch.Tensor], Dict[str, str]]:
    gen = torch.Generator().manual_seed(seed)
    x = torch.cat([torch.linspace(-6, 6, 40), torch.tensor([-30.0, -15.0, -12.0, -10.5, 10.5, 12.0, 15.0, 30.0]),
                   3 * torch.randn(16, generator=gen)])
    out, dout, g, dev = fakeloss({"x": x}, lambda x: R.gelu(x, kind), gen)
    t = {"x": x, "dout": dout, "out": out, "grad.x": g["x"]}
    return t, {"n": x.numel(), "gelu": kind, "fp32_max_rel_dev": fmt(dev),
               "notes": "linspace(-6, 6, 40), then +-10.5, +-12, +-15, +-30, then 16 draws of N(0, 9)"}


def attention_one_head(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, scale: float) -> Tuple[torch.Tensor, torch.Tensor]:
    s = (q @ k.transpose(0, 1)) * scale
    return s.softmax(-1) @ v, torch.logsumexp(s, -1)


def kernel_attention(seed: int, n: int, d: int, magnitude: float) -> Tuple[Dict[str, torch.Tensor], Dict[str, str]]:
    gen = torch.Generator().manual_seed(seed)
    scale = float(torch.tensor(d ** -0.5, dtype=torch.float32))  # the F32 value, used exactly
    q = magnitude * torch.randn(n, d, generator=gen)
    k = magnitude * torch.randn(n, d, generator=gen)
    v = torch.randn(n, d, generator=gen)
    out, dout, g, dev = fakeloss({"q": q, "k": k, "v": v}, lambda q, k, v: attention_one_head(q, k, v, scale)[0], gen)
    _, lse = attention_one_head(q.double(), k.double(), v.double(), scale)
    logits = (q.double() @ k.double().T) * scale
    t = {"q": q, "k": k, "v": v, "scale": torch.tensor([scale]), "dout": dout, "out": out, "lse": lse,
         "grad.q": g["q"], "grad.k": g["k"], "grad.v": g["v"]}
    return t, {"n": n, "d": d, "scale": repr(scale), "max_abs_logit": fmt(float(logits.abs().max())),
               "fp32_max_rel_dev": fmt(dev)}


POOL_CFG = R.FluxViTConfig(img_size=8, patch_size=4, num_frames=4, embed_dim=16, depth=1, num_heads=4,
                           mlp_ratio=4, attn_pool_num_heads=4, clip_embed_dim=12, num_classes=5)


def kernel_attention_pool(seed: int) -> Tuple[Dict[str, torch.Tensor], Dict[str, str]]:
    gen = torch.Generator().manual_seed(seed)
    n, C = 7, POOL_CFG.embed_dim
    pool = R.AttentionPool(POOL_CFG)
    MG.random_weights(pool, seed)
    x = torch.randn(n, C, generator=torch.Generator().manual_seed(seed + 1))
    params = {k: v.detach().clone() for k, v in pool.named_parameters()}

    def fn(x, **p):
        return torch.func.functional_call(pool, p, (x.unsqueeze(0),)).squeeze(0)

    zero = [k for k in params if zero_grad_param(k)]
    out, dout, g, dev = fakeloss({"x": x, **params}, fn, gen, noise=zero)
    for k in zero:
        assert float(g[k].abs().max()) < 1e-12, f"{k}: gradient not ~0"
    t = {"x": x, **params, "dout": dout, "out": out}
    t.update({f"grad.{k}": v for k, v in g.items()})
    return t, {"n": n, "C": C, "D": POOL_CFG.clip_embed_dim, "heads": POOL_CFG.attn_pool_num_heads,
               "ln_eps": R.LN_EPS, "zero_grad_params": json.dumps(zero), "fp32_max_rel_dev": fmt(dev)}


def kernel_pos_embed(seed: int) -> Tuple[Dict[str, torch.Tensor], Dict[str, str]]:
    gen = torch.Generator().manual_seed(seed)
    F_, G, T, h, C = 4, 2, 6, 3, 8
    pe = torch.randn(1, 1 + F_ * G * G, C, generator=gen)
    gw = 1 + 0.1 * torch.randn(C, generator=gen)
    gb = 0.1 * torch.randn(C, generator=gen)
    out, dout, g, dev = fakeloss({"pos_embed": pe, "gpe_weight": gw, "gpe_bias": gb},
                                 lambda pos_embed, gpe_weight, gpe_bias: R.resize_pos_embed(
                                     pos_embed, gpe_weight, gpe_bias, F_, G, T, h, h), gen)
    t = {"pos_embed": pe, "gpe_weight": gw, "gpe_bias": gb, "dout": dout, "out": out,
         "grad.pos_embed": g["pos_embed"], "grad.gpe_weight": g["gpe_weight"], "grad.gpe_bias": g["gpe_bias"]}
    return t, {"F": F_, "G": G, "T": T, "h": h, "w": h, "C": C, "fp32_max_rel_dev": fmt(dev)}


PATCH_CFG = R.FluxViTConfig(img_size=8, patch_size=4, num_frames=2, embed_dim=16, depth=1, num_heads=2,
                            mlp_ratio=4, attn_pool_num_heads=2, clip_embed_dim=8, num_classes=5)


def kernel_patch_embed(seed: int) -> Tuple[Dict[str, torch.Tensor], Dict[str, str]]:
    gen = torch.Generator().manual_seed(seed)
    B, T, S = 2, 2, 8
    pe = R.PatchEmbed(PATCH_CFG)
    MG.random_weights(pe, seed)
    video = torch.randn(B, 3, T, S, S, generator=torch.Generator().manual_seed(seed + 1))
    params = {k: v.detach().clone() for k, v in pe.named_parameters()}
    C = PATCH_CFG.embed_dim

    def fn(**p):
        return torch.func.functional_call(pe, p, (video.to(p["proj.weight"].dtype),)).reshape(B, -1, C)

    out, dout, g, dev = fakeloss(params, fn, gen)
    t = {"video": video, **params, "dout": dout, "out": out}
    t.update({f"grad.{k}": v for k, v in g.items()})
    return t, {"batch": B, "frames": T, "size": S, "P": PATCH_CFG.patch_size, "C": C, "tokens": T * (S // 4) ** 2,
               "rms_eps": R.RMS_EPS, "fp32_max_rel_dev": fmt(dev)}


def kernel_smooth_l1(seed: int) -> Tuple[Dict[str, torch.Tensor], Dict[str, str]]:
    B, D = 4, 8
    while True:  # no normalized difference within 0.02 of the kink |d| = beta = 1
        gen = torch.Generator().manual_seed(seed)
        pred = torch.randn(B, D, generator=gen)
        target = torch.randn(B, D, generator=gen)
        pred[1, 0], target[1, 0] = 4.0, -4.0      # nearly opposite in one coordinate: |d| > 1
        target[2] = -pred[2] + 0.3 * torch.randn(D, generator=gen)
        pred[3] *= 1e-3                           # small magnitude: the normalization matters
        d = R.l2normalize(pred.double()) - R.l2normalize(target.double())
        if bool(((d.abs() - 1).abs() > 0.02).all()) and bool((d.abs() > 1).any()):
            break
        seed += 1
    loss, g, dev = scalar_loss({"pred": pred, "target": target}, R.smooth_l1_align, ["pred"])
    n_linear = int((d.abs() > 1).sum())
    t = {"pred": pred, "target": target, "loss": loss, "grad.pred": g["pred"]}
    return t, {"batch": B, "D": D, "beta": 1.0, "linear_region_elements": n_linear, "fp32_max_rel_dev": fmt(dev)}, seed


def kernel_cross_entropy(seed: int) -> Tuple[Dict[str, torch.Tensor], Dict[str, str]]:
    gen = torch.Generator().manual_seed(seed)
    B, K, s = 4, 5, 0.1
    logits = 2 * torch.randn(B, K, generator=gen)
    logits[3] = torch.tensor([80.0, -20.0, 30.0, 79.5, 0.0])  # large logits: needs the max shift
    labels = torch.randint(0, K, (B,), generator=gen)
    labels[3] = 3
    loss, g, dev = scalar_loss({"logits": logits, "labels": labels},
                               lambda logits, labels: R.label_smoothing_ce(logits, labels, s), ["logits"])
    t = {"logits": logits, "labels": labels, "loss": loss, "grad.logits": g["logits"]}
    return t, {"batch": B, "K": K, "label_smoothing": s, "fp32_max_rel_dev": fmt(dev)}


def write_kernels(out: Path, base_seed: int) -> None:
    cases = [
        ("rmsnorm", lambda s: kernel_rmsnorm(s)),
        ("layernorm", lambda s: kernel_layernorm(s)),
        ("gelu_tanh", lambda s: kernel_gelu(s, "tanh")),
        ("gelu_erf", lambda s: kernel_gelu(s, "erf")),
        ("attention", lambda s: kernel_attention(s, 7, 8, 1.0)),
        ("attention_large", lambda s: kernel_attention(s, 6, 16, 5.0)),
        ("attention_pool", lambda s: kernel_attention_pool(s)),
        ("pos_embed", lambda s: kernel_pos_embed(s)),
        ("patch_embed", lambda s: kernel_patch_embed(s)),
        ("smooth_l1", lambda s: kernel_smooth_l1(s)),
        ("cross_entropy", lambda s: kernel_cross_entropy(s)),
    ]
    for idx, (name, fn) in enumerate(cases):
        seed = base_seed + 10 * idx
        res = fn(seed)
        if len(res) == 3:
            tensors, params, seed = res
        else:
            tensors, params = res
        write(out / f"kernel_{name}.safetensors", tensors, meta(seed, name, **params))


# ---------------------------------------------------------------------------------------------
# 2. Whole-model gradients
# ---------------------------------------------------------------------------------------------


def selection_is_clear(models: Sequence[R.FluxViT], video: torch.Tensor, budgets: Sequence[int]) -> bool:
    """The near-tie rule of the forward goldens, at every budget that selects, for every model
    given (the float64 golden model and its float32 twin); their kept sets must agree too."""
    from check_ref import cutoff_is_clear
    B, _, T, H, W = video.shape
    P = models[0].cfg.patch_size
    L = (H // P) * (W // P)
    N = T * L
    with torch.no_grad():
        embeds = [m.patch_embed(video.to(m.pos_embed.dtype)) for m in models]
    for budget in budgets:
        if budget >= N:
            continue
        k = R.selection_keep_per_group(T, L, budget)
        kept = None
        for e in embeds:
            ks, imp = R.select_tokens(e, budget)
            if not all(cutoff_is_clear(imp[b], T, L, k) for b in range(B)):
                return False
            if kept is not None and not torch.equal(kept, ks):
                return False
            kept = ks
    return True


def draw_batch(seed: int, B: int, T: int, S: int, K: int) -> Tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    video = torch.randn(B, 3, T, S, S, generator=gen)
    labels = torch.randint(0, K, (B,), generator=gen)
    return video, labels


def write_model_grads(out: Path, base_seed: int) -> None:
    for idx, (name, T, S, gelu) in enumerate(MODEL_GRAD_CASES):
        m32 = MG.build_tiny(gelu)
        m64 = copy.deepcopy(m32).double()
        P = m32.cfg.patch_size
        L = (S // P) ** 2
        N = T * L
        seed = base_seed + 1000 * idx
        while True:
            video, labels = draw_batch(seed, MODEL_GRAD_BATCH, T, S, m32.cfg.num_classes)
            if selection_is_clear([m64, m32], video, MG.TINY_BUDGETS):
                break
            seed += 1
        loss, parts = R.flux_loss(m64, video.double(), labels, MG.TINY_BUDGETS)
        loss.backward()
        loss32, parts32 = R.flux_loss(m32, video, labels, MG.TINY_BUDGETS)
        loss32.backward()
        for a, b in zip(parts["kept"], parts32["kept"]):
            assert (a is None) == (b is None) and (a is None or torch.equal(a, b)), f"{name}: fp32 kept set differs"
        dev = max([rel_dev(loss32, loss)] + [rel_dev(p32.grad, p64.grad) for (n, p32), p64 in
                                             zip(m32.named_parameters(), m64.parameters()) if not zero_grad_param(n)])
        for n, p in m64.named_parameters():
            assert not zero_grad_param(n) or float(p.grad.abs().max()) < 1e-12, f"{n}: gradient not ~0"
        t: Dict[str, torch.Tensor] = {"video": video, "labels": labels, "loss": loss.detach().reshape(1)}
        for j in range(3):
            t[f"loss.ce.{j}"] = parts["ce"][j].reshape(1)
            t[f"logits.{j}"] = parts["logits"][j]
            t[f"feature.{j}"] = parts["feature"][j]
            if parts["kept"][j] is not None:
                t[f"kept.{j}"] = parts["kept"][j]
        for m in (1, 2):
            t[f"loss.align.{m}"] = parts["align"][m - 1].reshape(1)
            t[f"align_pred.{m}"] = parts["align_pred"][m - 1]
        for pname, p in m64.named_parameters():
            assert p.grad is not None, pname
            t[f"grad.{pname}"] = p.grad
        kept_n = [("all" if k is None else str(k.shape[1])) for k in parts["kept"]]
        md = meta(seed, name, frames=T, size=S, batch=MODEL_GRAD_BATCH, gelu=gelu, tokens=N,
                  budgets=json.dumps(MG.TINY_BUDGETS), n_kept=json.dumps(kept_n),
                  groups=R.selection_groups(T), label_smoothing=0.1, weights="tiny_weights.safetensors",
                  config=json.dumps(replace(MG.TINY, gelu=gelu).to_dict(), sort_keys=True),
                  zero_grad_params=json.dumps(zero_grad_names(m64)), fp32_max_rel_dev=fmt(dev))
        write(out / f"model_grads_{name}.safetensors", t, md)


# ---------------------------------------------------------------------------------------------
# 3. AdamW trajectory
# ---------------------------------------------------------------------------------------------


def build_train_model() -> R.FluxViT:
    model = R.FluxViT(TRAIN)
    MG.random_weights(model, TRAIN_WEIGHT_SEED)
    return model


def schedule() -> np.ndarray:
    h = HYPER
    return R.cosine_schedule(h["base_lr"], h["final_lr"], h["epochs"], h["iters_per_epoch"],
                             warmup_iters=h["warmup_iters"], warmup_start=h["warmup_start_lr"])


def run_trajectory(base_seed: int, max_norm: Optional[float], verbose: bool = False) -> dict:
    """The six steps in float64 (the golden) with a float32 twin run on the same batches."""
    h = HYPER
    m32 = build_train_model()
    m64 = copy.deepcopy(m32).double()
    init = {k: v.detach().clone() for k, v in m32.named_parameters()}
    opt64 = R.make_optimizer(m64, h["weight_decay"], h["layer_decay"])
    opt32 = R.make_optimizer(m32, h["weight_decay"], h["layer_decay"])
    lrs = schedule()
    steps = []
    for s, (T, S) in enumerate(STEP_SAMPLING, start=1):
        seed = base_seed + 1000 * s
        while True:
            video, labels = draw_batch(seed, TRAIN_BATCH, T, S, TRAIN.num_classes)
            if selection_is_clear([m64, m32], video, TRAIN_BUDGETS):
                break
            seed += 1
        lr = float(lrs[s - 1])
        r64 = R.train_step(m64, opt64, video.double(), labels, TRAIN_BUDGETS, lr, max_norm, h["label_smoothing"])
        r32 = R.train_step(m32, opt32, video, labels, TRAIN_BUDGETS, lr, max_norm, h["label_smoothing"])
        for a, b in zip(r64["parts"]["kept"], r32["parts"]["kept"]):
            assert (a is None) == (b is None) and (a is None or torch.equal(a, b)), f"step {s}: fp32 kept set differs"
        # Parameter deviation of the float32 twin, in units of the suggested tolerance scale
        # max(1, max|p|), leaving out the parameters whose gradient is rounding noise.
        pdev = max(float((p32.detach().double() - p64.detach()).abs().max() / max(1.0, float(p64.detach().abs().max())))
                   for (n, p32), p64 in zip(m32.named_parameters(), m64.parameters()) if not zero_grad_param(n))
        for n, p in m64.named_parameters():
            assert not zero_grad_param(n) or float(p.grad.abs().max()) < 1e-12, f"step {s} {n}: gradient not ~0"
        steps.append({
            "seed": seed, "frames": T, "size": S, "video": video, "labels": labels, "lr": lr,
            "loss": float(r64["loss"]), "loss32": float(r32["loss"]), "grad_norm": float(r64["grad_norm"]),
            "kept": r64["parts"]["kept"], "param_dev32": pdev,
            "params": {k: v.detach().clone() for k, v in m64.named_parameters()} if s in SAVED_STEPS else None,
        })
        if verbose:
            print(f"    step {s}: T={T} size={S} seed={seed} lr={lr:.3g} loss={steps[-1]['loss']:.6f} "
                  f"(fp32 {steps[-1]['loss32']:.6f}) grad_norm={steps[-1]['grad_norm']:.4f} "
                  f"fp32 param dev {pdev:.2g}")
    return {"init": init, "steps": steps, "model": m64}


def write_train_steps(out: Path, base_seed: int) -> None:
    h = HYPER
    traj = run_trajectory(base_seed, h["max_norm"], verbose=True)
    steps = traj["steps"]
    norms = [st["grad_norm"] for st in steps]
    clipped = [n > h["max_norm"] for n in norms]
    if all(clipped) or not any(clipped):
        sys.exit(f"max_norm {h['max_norm']} must clip some steps but not all; grad norms {norms}")
    if min(abs(n - h["max_norm"]) for n in norms) < 0.05 * h["max_norm"]:
        sys.exit(f"a gradient norm lies within 5% of max_norm {h['max_norm']}: {norms}")
    worst = max(st["param_dev32"] for st in steps)
    if worst > 1e-5:
        sys.exit(f"the float32 twin trajectory deviates by {worst:.3g} (> 1e-5 of max(1, max|p|)): "
                 "a rounding-sensitive Adam update; change the seeds")
    model = traj["model"]
    depth = TRAIN.depth
    t: Dict[str, torch.Tensor] = {}
    for name, p in traj["init"].items():
        t[f"init.{name}"] = p
        t[f"lr_scale.{name}"] = torch.tensor([R.lr_scale(name, depth, h["layer_decay"])])
        t[f"weight_decay.{name}"] = torch.tensor([0.0 if R.no_weight_decay(name, p) else h["weight_decay"]])
    for s, st in enumerate(steps, start=1):
        t[f"frames.{s}"] = torch.tensor([st["frames"]], dtype=torch.int64)
        t[f"size.{s}"] = torch.tensor([st["size"]], dtype=torch.int64)
        t[f"video.{s}"] = st["video"]
        t[f"labels.{s}"] = st["labels"]
        t[f"loss.{s}"] = torch.tensor([st["loss"]], dtype=torch.float64)
        t[f"lr.{s}"] = torch.tensor([st["lr"]], dtype=torch.float64)
        t[f"grad_norm.{s}"] = torch.tensor([st["grad_norm"]], dtype=torch.float64)
        for j, k in enumerate(st["kept"]):
            if k is not None:
                t[f"kept.{s}.{j}"] = k
        if st["params"] is not None:
            for name, p in st["params"].items():
                t[f"step.{s}.{name}"] = p
    groups = R.param_groups(model, h["weight_decay"], h["layer_decay"])
    md = meta(steps[-1]["seed"], "train_steps", config=json.dumps(TRAIN.to_dict(), sort_keys=True),
              budgets=json.dumps(TRAIN_BUDGETS), batch=TRAIN_BATCH, steps=len(steps),
              saved_steps=json.dumps(list(SAVED_STEPS)), weight_seed=TRAIN_WEIGHT_SEED,
              step_seeds=json.dumps([st["seed"] for st in steps]),
              clipped=json.dumps(clipped), hyperparameters=json.dumps(h, sort_keys=True),
              optimizer="torch.optim.AdamW(foreach=False)",
              schedule=json.dumps([float(x) for x in schedule()]),
              groups=json.dumps([{"lr_scale": g["lr_scale"], "weight_decay": g["weight_decay"], "names": g["names"]}
                                 for g in groups]),
              zero_grad_params=json.dumps(zero_grad_names(model)),
              fp32_max_param_dev=fmt(max(st["param_dev32"] for st in steps)),
              fp32_max_loss_rel_dev=fmt(max(abs(st["loss32"] - st["loss"]) / abs(st["loss"]) for st in steps)))
    write(out / "train_steps.safetensors", t, md)


# ---------------------------------------------------------------------------------------------
# 4. Initialization: the sin-cos table
# ---------------------------------------------------------------------------------------------

INIT_HEAD_ROWS = 41  # rows 0..40 inclusive: the cls row and the first 40 grid entries
INIT_TAIL_ROWS = 5


def sincos_float64(C: int, F_: int, G: int) -> np.ndarray:
    """The same table from the spec's formula in float64 (for the recorded deviation)."""
    def code(dim: int, pos: np.ndarray) -> np.ndarray:
        k = np.arange(dim // 2, dtype=np.float64)
        om = 10000.0 ** (-k / (dim / 2))
        a = pos[:, None].astype(np.float64) * om[None]
        return np.concatenate([np.sin(a), np.cos(a)], axis=1)

    t, r, c = np.meshgrid(np.arange(F_), np.arange(G), np.arange(G), indexing="ij")
    grid = np.concatenate([code(C // 4, t.ravel()), code(C // 8 * 3, c.ravel()), code(C // 8 * 3, r.ravel())], axis=1)
    return np.concatenate([np.zeros((1, C)), grid], axis=0)


def write_init_stats(out: Path) -> None:
    small = R.preset("fluxvit-small")
    C, F_, G = small.embed_dim, small.num_frames, small.grid
    pe = R.sincos_pos_embed_3d(C, F_, G)[0]  # [1 + F*G*G, C]
    dev = float(np.abs(pe.numpy().astype(np.float64) - sincos_float64(C, F_, G)).max())
    tiny = R.sincos_pos_embed_3d(TRAIN.embed_dim, TRAIN.num_frames, TRAIN.grid)
    dev_tiny = float(np.abs(tiny[0].numpy().astype(np.float64) -
                            sincos_float64(TRAIN.embed_dim, TRAIN.num_frames, TRAIN.grid)).max())
    t = {"pos_embed.head": pe[:INIT_HEAD_ROWS], "pos_embed.tail": pe[-INIT_TAIL_ROWS:], "pos_embed.tiny_train": tiny}
    rules = {name: R.init_rule(name, TRAIN) for name, _ in R.FluxViT(TRAIN).named_parameters()}
    md = meta(0, "init_stats", preset="fluxvit-small", C=C, F=F_, G=G, rows=1 + F_ * G * G,
              head_rows=f"0..{INIT_HEAD_ROWS - 1}", tail_rows=f"{1 + F_ * G * G - INIT_TAIL_ROWS}..{F_ * G * G}",
              float64_max_abs_dev=fmt(max(dev, dev_tiny)),
              tiny_train_config=json.dumps(TRAIN.to_dict(), sort_keys=True),
              init_rules=json.dumps(rules, sort_keys=True))
    write(out / "init_stats.safetensors", t, md)


# ---------------------------------------------------------------------------------------------


def write_train_yaml(path: Path) -> None:
    MG.write_config_yaml(path, TRAIN, TRAIN_BUDGETS,
                         "# Tiny FluxViT for the training goldens (tools/reference/make_train_goldens.py writes this file).")


def write_all(out: Path, config_out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    print(f"writing training goldens to {out}")
    write_kernels(out, base_seed=500)
    write_model_grads(out, base_seed=600)
    write_train_steps(out, base_seed=700)
    write_init_stats(out)
    write_train_yaml(config_out)
    files = sorted(out.glob("*.safetensors"))
    total = sum(p.stat().st_size for p in files)
    print(f"total {total} bytes in {len(files)} files")
    if total >= SIZE_LIMIT:
        sys.exit(f"training goldens total {total} bytes, limit {SIZE_LIMIT}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=REPO / "Tests" / "FluxTrainingTests" / "Goldens")
    ap.add_argument("--config-out", type=Path, default=REPO / "configs" / "models" / "tiny-train.yaml")
    args = ap.parse_args()
    torch.set_num_threads(2)
    torch.use_deterministic_algorithms(True)
    write_all(args.out, args.config_out)


if __name__ == "__main__":
    main()

"""Self-checks of tools/reference/fluxvit_ref.py against independent facts.

Run: $VENV/bin/python tools/reference/check_ref.py   (make_goldens.py runs it first, too)

Each check compares the reference with a second, independently written computation (plain loops,
float64 numpy, PyTorch's own Conv3d / scaled_dot_product_attention) or with a fact of the spec.
Exits non-zero on the first failure, naming it.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
import fluxvit_ref as R  # noqa: E402

TINY = R.FluxViTConfig(img_size=8, patch_size=4, num_frames=4, embed_dim=64, depth=2, num_heads=2,
                       mlp_ratio=4, attn_pool_num_heads=4, clip_embed_dim=32, num_classes=5, gelu="tanh")


def _close(name: str, a: torch.Tensor, b: torch.Tensor, tol: float = 1e-5) -> None:
    a64, b64 = a.double(), b.double()
    diff = (a64 - b64).abs().max().item() if a.numel() else 0.0
    scale = max(1.0, b64.abs().max().item() if b.numel() else 0.0)
    if a.shape != b.shape or diff > tol * scale:
        raise AssertionError(f"{name}: shapes {tuple(a.shape)} vs {tuple(b.shape)}, max|diff| {diff:.3g} > {tol}*{scale:.3g}")


# --- selection --------------------------------------------------------------------------------


def select_loop(embed: np.ndarray, budget: int) -> list:
    """Token selection with plain Python loops in float64, straight from spec §4.2."""
    B, T, L, C = embed.shape
    G = 4 if T % 4 == 0 else (1 if T == 2 else 2)
    while T / G < 2:
        G //= 2
    Tg = T // G
    N = T * L
    r = 1 - budget / N
    k = int((1 - r) * (T / G * L))
    result = []
    for b in range(B):
        kept = []
        for g in range(G):
            imp = []  # (importance, index within group)
            for t in range(Tg):
                for l in range(L):
                    tt = 0 if t == 0 else t - 1  # frame 0 uses d[0], frame t uses d[t-1]
                    e0 = embed[b, g * Tg + tt, l].astype(np.float64)
                    e1 = embed[b, g * Tg + tt + 1, l].astype(np.float64)
                    imp.append((math.sqrt(float(((e1 - e0) ** 2).sum())), t * L + l))
            ranked = sorted(imp, key=lambda p: (-p[0], p[1]))
            kept.extend(sorted(g * Tg * L + i for _, i in ranked[:k]))
        result.append(kept)
    return result


def check_selection() -> None:
    groups = {2: 1, 4: 2, 6: 2, 8: 4, 10: 2, 12: 4, 16: 4, 24: 4}
    for T, G in groups.items():
        assert R.selection_groups(T) == G, f"selection_groups({T}) = {R.selection_groups(T)}, expected {G}"
    for T in (1, 3, 5):
        try:
            R.selection_groups(T)
        except ValueError:
            pass
        else:
            raise AssertionError(f"selection_groups({T}) must reject an odd frame count")
    # The official float rounding: budget 13 of N=24 (T=6, L=4) keeps 6 per group, not 6.5.
    assert R.selection_keep_per_group(6, 4, 13) == 6
    assert R.selection_keep_per_group(8, 4, 20) == 5
    # ... and rounding below the exact value: (1 - (1 - 14/36)) * 18 = 6.999..., and the standard
    # 12x224 grid (L=256) at budget 1024 keeps 4 x 255 = 1020 tokens, not 1024.
    assert R.selection_keep_per_group(4, 9, 14) == 6
    assert R.selection_keep_per_group(12, 256, 1024) == 255
    assert R.selection_keep_per_group(8, 256, 2048) == 512
    gen = torch.Generator().manual_seed(7)
    n = 0
    for T in (2, 4, 6, 8, 10, 12):
        for L in (1, 4, 9):
            for budget in range(1, T * L, max(1, T * L // 7)):
                embed = torch.randn(3, T, L, 5, generator=gen)
                if T >= 4:  # exact duplicates force ties beyond the structural frame 0/1 one
                    embed[:, 3] = embed[:, 2]
                kept, imp = R.select_tokens(embed, budget)
                want = select_loop(embed.numpy(), budget)
                # Strict: with this seed no float32/float64 near-tie changes the set (exact
                # duplicates tie exactly in both).
                if kept.tolist() != want:
                    raise AssertionError(f"selection T={T} L={L} budget={budget}: {kept.tolist()} != {want}")
                n += 1
                G = R.selection_groups(T)
                assert kept.shape == (3, G * R.selection_keep_per_group(T, L, budget))
                assert bool((kept[:, 1:] > kept[:, :-1]).all()), "kept indices must ascend"
    # Structural ties: with 2 frames per group every value appears twice; an odd k cuts a pair and
    # the lower index (frame 0) must win.
    embed = torch.randn(1, 2, 3, 4, generator=gen)
    kept, imp = R.select_tokens(embed, 3)  # N = 6, k = 3
    top = int(torch.argmax(imp[0, 0]))
    second = sorted(range(3), key=lambda l: -float(imp[0, 0, l]))[1]
    assert kept[0].tolist() == sorted([top, 3 + top, second]), f"tie rule broken: {kept.tolist()}"
    print(f"ok  selection: {n} cases agree with the float64 loop; groups; rounding; tie rule")


def cutoff_is_clear(importance: torch.Tensor, T: int, L: int, k: int, rel: float = 1e-3) -> bool:
    """True if, in every group, the k-th and (k+1)-th largest importances differ by more than `rel`
    relative, or are the same d entry (frames 0 and 1 of the group at one position) with both
    neighbours of that pair clearly separated. importance: [T, L]."""
    G = R.selection_groups(T)
    Tg = T // G
    if k <= 0 or k >= Tg * L:
        return True
    for g in range(G):
        vals = importance[g * Tg:(g + 1) * Tg].reshape(-1).double()
        order = torch.sort(vals, descending=True, stable=True).indices.tolist()
        v = vals[order].tolist()

        def apart(i: int, j: int) -> bool:
            if i < 0 or j >= len(v):
                return True
            return abs(v[i] - v[j]) > rel * max(abs(v[i]), abs(v[j]), 1e-30)

        a, b = order[k - 1], order[k]
        pair = {a, b} == {a % L, a % L + L} and v[k - 1] == v[k]
        if pair:
            if not (apart(k - 2, k - 1) and apart(k, k + 1)):
                return False
        elif not apart(k - 1, k):
            return False
    return True


# --- position embedding -----------------------------------------------------------------------


def _linear_1d(x: np.ndarray, out: int) -> np.ndarray:
    """PyTorch linear interpolation, align_corners=False, along the last axis (float64)."""
    n = x.shape[-1]
    scale = n / out
    y = np.empty(x.shape[:-1] + (out,))
    for i in range(out):
        src = max((i + 0.5) * scale - 0.5, 0.0)
        i0 = min(int(math.floor(src)), n - 1)
        i1 = min(i0 + 1, n - 1)
        t = src - i0
        y[..., i] = (1 - t) * x[..., i0] + t * x[..., i1]
    return y


def _cubic_weights(t: float, A: float = -0.75) -> list:
    def near(x):  # |x| <= 1
        return ((A + 2) * x - (A + 3)) * x * x + 1

    def far(x):  # 1 < |x| < 2
        return ((A * x - 5 * A) * x + 8 * A) * x - 4 * A

    return [far(t + 1), near(t), near(1 - t), far(2 - t)]


def _bicubic_1d(x: np.ndarray, out: int) -> np.ndarray:
    """PyTorch bicubic (separable) along the last axis, align_corners=False, border clamped."""
    n = x.shape[-1]
    scale = n / out
    y = np.zeros(x.shape[:-1] + (out,))
    for i in range(out):
        src = (i + 0.5) * scale - 0.5  # no clamp at 0 for cubic, as in PyTorch
        i0 = int(math.floor(src))
        t = src - i0
        for w, j in zip(_cubic_weights(t), range(i0 - 1, i0 + 3)):
            y[..., i] += w * x[..., min(max(j, 0), n - 1)]
    return y


def resize_numpy(pe: np.ndarray, gw: np.ndarray, gb: np.ndarray, F_: int, G: int, T: int, h: int, w: int) -> np.ndarray:
    C = pe.shape[-1]
    grid = pe[0, 1:].astype(np.float64) * gw + gb  # [F*G*G, C]
    x = grid.reshape(F_, G, G, C)
    if F_ != T:
        x = np.moveaxis(_linear_1d(np.moveaxis(x, 0, -1), T), -1, 0)
    if (G, G) != (h, w):
        x = np.moveaxis(_bicubic_1d(np.moveaxis(x, 1, -1), h), -1, 1)  # rows
        x = np.moveaxis(_bicubic_1d(np.moveaxis(x, 2, -1), w), -1, 2)  # columns
    return np.concatenate([pe[0, :1].astype(np.float64), x.reshape(T * h * w, C)], axis=0)


def check_resize() -> None:
    gen = torch.Generator().manual_seed(11)
    C = 6
    for (F_, G, T, h) in [(4, 2, 4, 2), (4, 2, 6, 3), (4, 2, 8, 5), (4, 2, 2, 1), (4, 4, 3, 2),
                          (3, 3, 7, 6), (8, 6, 6, 4), (4, 2, 4, 3), (4, 2, 8, 2)]:
        pe = torch.randn(1, 1 + F_ * G * G, C, generator=gen)
        gw = 1 + 0.1 * torch.randn(C, generator=gen)
        gb = 0.1 * torch.randn(C, generator=gen)
        got = R.resize_pos_embed(pe, gw, gb, F_, G, T, h, h)
        want = torch.from_numpy(resize_numpy(pe.numpy(), gw.numpy(), gb.numpy(), F_, G, T, h, h))
        _close(f"resize F={F_} G={G} -> T={T} h={h}", got, want, 1e-5)
        if (F_, G) == (T, h):
            ident = torch.cat([pe[0, :1], pe[0, 1:] * gw + gb])
            assert torch.equal(got, ident), "resize to the same grid must be GPE only (bit-exact)"
    print("ok  position embedding: GPE + linear/bicubic resize agree with float64 loops; identity grid exact")


# --- model pieces -----------------------------------------------------------------------------


def check_patch_embed(model: R.FluxViT) -> None:
    """Against the official formulation: rearrange to (row, col, ch) vectors, RMSNorm, back, Conv3d."""
    P = model.cfg.patch_size
    video = torch.randn(2, 3, 3, 12, 8, generator=torch.Generator().manual_seed(3))
    B, _, T, H, W = video.shape
    h, w = H // P, W // P
    pe = model.patch_embed
    x = video.permute(0, 2, 3, 4, 1)  # b t H W c
    x = x.reshape(B, T, h, P, w, P, 3).permute(0, 1, 2, 4, 3, 5, 6).reshape(B, T * h * w, P * P * 3)
    x = R.rms_norm(x, pe.norm_before.weight)
    x = x.reshape(B, T, h, w, P, P, 3).permute(0, 1, 2, 4, 3, 5, 6).reshape(B, T, H, W, 3).permute(0, 4, 1, 2, 3)
    y = F.conv3d(x, pe.proj.weight, pe.proj.bias, stride=(1, P, P))  # [B, C, T, h, w]
    y = R.rms_norm(y.flatten(3).permute(0, 2, 3, 1), pe.norm.weight)
    _close("patch embedding vs Conv3d", pe(video), y, 1e-5)
    print("ok  patch embedding agrees with the Conv3d formulation (non-square frame)")


def check_attention(model: R.FluxViT) -> None:
    blk = model.blocks[0]
    a = blk.attn
    x = torch.randn(2, 9, model.cfg.embed_dim, generator=torch.Generator().manual_seed(4))
    C = x.shape[-1]
    H = a.num_heads
    q, k, v = (x @ a.qkv.weight.T).split(C, -1)
    q, k = R.rms_norm(q, a.q_norm.weight), R.rms_norm(k, a.k_norm.weight)
    lpe = v * a.lpe.depthwise_conv.weight.view(C) + a.lpe.depthwise_conv.bias
    sh = lambda t: t.view(2, 9, H, C // H).transpose(1, 2)
    o = F.scaled_dot_product_attention(sh(q), sh(k), sh(v)).transpose(1, 2).reshape(2, 9, C)
    _close("block attention vs scaled_dot_product_attention", a(x), F.linear(o + lpe, a.proj.weight, a.proj.bias), 1e-5)

    pool = model.clip_projector[1]
    ca = pool.cross_attn
    x64 = x.double()
    ln = lambda m, t: F.layer_norm(t, (C,), m.weight.double(), m.bias.double(), 1e-5)
    q0 = ln(pool.norm1_q, x64.mean(1))  # [B, C]
    kk = ln(pool.norm1_k, x64) @ ca.k.weight.double().T + ca.k_bias.double()
    vv = ln(pool.norm1_v, x64) @ ca.v.weight.double().T + ca.v_bias.double()
    qq = q0 @ ca.q.weight.double().T + ca.q_bias.double()
    Hp = ca.num_heads
    hd = C // Hp
    out = torch.zeros(2, C, dtype=torch.float64)
    for b in range(2):
        for hh in range(Hp):
            s = slice(hh * hd, (hh + 1) * hd)
            sc = torch.softmax(kk[b, :, s] @ qq[b, s] / math.sqrt(hd), 0)
            out[b, s] = sc @ vv[b, :, s]
    want = out @ ca.proj.weight.double().T + ca.proj.bias.double()
    _close("attention pooling vs per-head float64 loop", pool(x), want, 1e-5)
    print("ok  block attention and pooling agree with independent formulations")


def check_budget_equivalence(model: R.FluxViT) -> None:
    gen = torch.Generator().manual_seed(5)
    video = torch.randn(2, 3, 6, 12, 8, generator=gen)
    N = 6 * 3 * 2
    full = model(video, budget=None, head=1)
    for b in (N, N + 1, 10 * N):
        o = model(video, budget=b, head=1)
        assert o["kept"] is None
        for key in ("logits", "feature", "proj0", "proj1"):
            assert torch.equal(o[key], full[key]), f"budget={b} differs from budget=None in {key}"
    # Selection keeping every token (budget = N - 0 via k = all) equals the full path up to rounding.
    # Batch independence with selection: each sample alone gives the same output.
    o = model(video, budget=20, head=2)
    for i in range(2):
        oi = model(video[i:i + 1], budget=20, head=2)
        assert torch.equal(oi["kept"][0], o["kept"][i]), "kept set depends on the batch"
        _close(f"batch independence sample {i}", oi["logits"][0], o["logits"][i], 1e-5)
    print("ok  budget=None == budget>=N (bit-exact); batch independence with selection")


def check_kept_path(model: R.FluxViT) -> None:
    """Selecting tokens == running the blocks on the gathered tokens of the full sequence."""
    gen = torch.Generator().manual_seed(6)
    video = torch.randn(1, 3, 8, 8, 8, generator=gen)
    o = model(video, budget=20, head=0, return_intermediates=True)
    f = model(video, head=0, return_intermediates=True)
    kept = o["kept"][0]
    full_tokens = f["intermediates"]["tokens"][0]
    _close("tokens == cls + gathered full tokens", o["intermediates"]["tokens"][0],
           torch.cat([full_tokens[:1], full_tokens[1 + kept]]), 0.0)
    print("ok  selected tokens are the gathered tokens of the unselected path")


def check_macs() -> None:
    s = R.preset("fluxvit-small")
    got = [R.gmacs(s, n) for n in (3072, 2048, 1024, 512)]
    for g, want in zip(got, (154, 83, 32, 13)):
        assert abs(g - want) < 1.0, f"GMACs {g:.1f} vs official {want}"
    print("ok  GMACs FluxViT-S: " + ", ".join(f"{g:.1f}" for g in got) + " (official 154/83/32/13)")


# --- training pieces (spec §5) --------------------------------------------------------------


def check_kernel_backwards() -> None:
    """Autograd of the reference's kernels against backward formulas derived by hand, in float64."""
    gen = torch.Generator().manual_seed(21)
    d = lambda *shape: torch.randn(*shape, generator=gen, dtype=torch.float64)  # noqa: E731

    # RMSNorm: dx = rstd (g - xh mean(g xh)), g = dy w; dw = sum dy xh.
    x, w, dy = d(5, 12), 1 + 0.1 * d(12), d(5, 12)
    x[1] = 3 + 1e-3 * d(12)
    xa, wa = x.clone().requires_grad_(), w.clone().requires_grad_()
    (R.rms_norm(xa, wa) * dy).sum().backward()
    rstd = torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + R.RMS_EPS)
    xh, g = x * rstd, dy * w
    _close("rmsnorm dx", xa.grad, rstd * (g - xh * (g * xh).mean(-1, keepdim=True)), 1e-12)
    _close("rmsnorm dw", wa.grad, (dy * xh).sum(0), 1e-12)

    # LayerNorm: dx = rstd (g - mean(g) - xh mean(g xh)); dw = sum dy xh; db = sum dy.
    b = 0.1 * d(12)
    xa, wa, ba = x.clone().requires_grad_(), w.clone().requires_grad_(), b.clone().requires_grad_()
    (F.layer_norm(xa, (12,), wa, ba, R.LN_EPS) * dy).sum().backward()
    mu = x.mean(-1, keepdim=True)
    rstd = torch.rsqrt(((x - mu) ** 2).mean(-1, keepdim=True) + R.LN_EPS)
    xh, g = (x - mu) * rstd, dy * w
    _close("layernorm dx", xa.grad, rstd * (g - g.mean(-1, keepdim=True) - xh * (g * xh).mean(-1, keepdim=True)), 1e-12)
    _close("layernorm dw", wa.grad, (dy * xh).sum(0), 1e-12)
    _close("layernorm db", ba.grad, dy.sum(0), 1e-12)

    # GELU: erf: Phi(x) + x phi(x); tanh: 0.5 (1 + t) + 0.5 x (1 - t^2) c (1 + 3 a x^2).
    x = torch.cat([torch.linspace(-12, 12, 49, dtype=torch.float64), 3 * d(20)])
    for kind in ("erf", "tanh"):
        xa = x.clone().requires_grad_()
        R.gelu(xa, kind).sum().backward()
        if kind == "erf":
            want = 0.5 * (1 + torch.erf(x / math.sqrt(2))) + x * torch.exp(-x * x / 2) / math.sqrt(2 * math.pi)
        else:
            c, a = math.sqrt(2 / math.pi), 0.044715
            t = torch.tanh(c * (x + a * x ** 3))
            want = 0.5 * (1 + t) + 0.5 * x * (1 - t * t) * c * (1 + 3 * a * x * x)
        _close(f"gelu {kind} derivative", xa.grad, want, 1e-12)

    # One-head attention with scale: dS = P (dP - rowsum(dO O)); dQ = s dS K; dK = s dS^T Q; dV = P^T dO.
    import make_train_goldens as T
    n, dh, sc = 6, 8, 0.3
    q, k, v, do = d(n, dh), d(n, dh), d(n, dh), d(n, dh)
    q[0] *= 20  # one row with large logits
    qa, ka, va = (t.clone().requires_grad_() for t in (q, k, v))
    out, lse = T.attention_one_head(qa, ka, va, sc)
    (out * do).sum().backward()
    S = sc * q @ k.T
    P = torch.exp(S - lse.detach()[:, None])
    _close("attention P from lse", P.sum(-1), torch.ones(n, dtype=torch.float64), 1e-12)
    O = P @ v
    dS = P * (do @ v.T - (do * O).sum(-1, keepdim=True))
    _close("attention dq", qa.grad, sc * dS @ k, 1e-12)
    _close("attention dk", ka.grad, sc * dS.T @ q, 1e-12)
    _close("attention dv", va.grad, P.T @ do, 1e-12)

    # Label-smoothing CE: loss = mean_b[-(1-s) log p_y - s mean_k log p_k]; dlogits = (p - t) / B.
    B, K, s = 4, 5, 0.1
    z, y = 3 * d(B, K), torch.tensor([0, 4, 2, 2])
    za = z.clone().requires_grad_()
    loss = R.label_smoothing_ce(za, y, s)
    loss.backward()
    logp = torch.log_softmax(z, -1)
    want = (-(1 - s) * logp[torch.arange(B), y] - s * logp.mean(-1)).mean()
    _close("label-smoothing CE", loss.reshape(1), want.reshape(1), 1e-12)
    tgt = torch.full((B, K), s / K, dtype=torch.float64)
    tgt[torch.arange(B), y] += 1 - s
    _close("label-smoothing CE dlogits", za.grad, (torch.softmax(z, -1) - tgt) / B, 1e-12)

    # Smooth L1 (beta 1) of l2-normalized arguments, target stop-gradient.
    p_, t_ = d(3, 6), d(3, 6)
    p_[0, 0], t_[0, 0] = 5.0, -5.0
    pa, ta = p_.clone().requires_grad_(), t_.clone().requires_grad_()
    loss = R.smooth_l1_align(pa, ta)
    loss.backward()
    nrm = p_.norm(dim=-1, keepdim=True)
    u = p_ / nrm
    diff = u - t_ / t_.norm(dim=-1, keepdim=True)
    assert bool((diff.abs() > 1).any()), "SL1 check must exercise the linear region"
    want = torch.where(diff.abs() < 1, 0.5 * diff * diff, diff.abs() - 0.5).mean()
    _close("smooth L1 value", loss.reshape(1), want.reshape(1), 1e-12)
    du = torch.where(diff.abs() < 1, diff, diff.sign()) / diff.numel()
    _close("smooth L1 dpred", pa.grad, (du - u * (u * du).sum(-1, keepdim=True)) / nrm, 1e-12)
    assert ta.grad is None, "the alignment target must be stop-gradient"
    print("ok  kernel backwards (RMSNorm, LayerNorm, GELU x2, attention + lse, CE, smooth L1) match hand formulas")


def _loss_fixed_target(model: R.FluxViT, video: torch.Tensor, labels: torch.Tensor, budgets, f0: torch.Tensor,
                       kept_want=None) -> torch.Tensor:
    """The Flux loss written again from spec §5 with sg(f0) replaced by the constant f0 (so that
    finite differences see exactly the function whose gradient autograd computes)."""
    s = 0.1
    total = torch.zeros((), dtype=torch.float64)
    feats = []
    for j, b in enumerate(budgets):
        o = model(video, budget=b, head=j)
        if kept_want is not None:
            assert (o["kept"] is None) == (kept_want[j] is None) and \
                (o["kept"] is None or torch.equal(o["kept"], kept_want[j])), "kept set moved under the perturbation"
        logp = torch.log_softmax(o["logits"], -1)
        total = total + (-(1 - s) * logp[torch.arange(len(labels)), labels] - s * logp.mean(-1)).mean()
        feats.append(o["feature"])
    tgt = f0 / f0.norm(dim=-1, keepdim=True)
    for m, f in ((0, feats[1]), (1, feats[2])):
        p = model.final_clip_decoder_for_projs[m](f)
        dd = p / p.norm(dim=-1, keepdim=True) - tgt
        total = total + torch.where(dd.abs() < 1, 0.5 * dd * dd, dd.abs() - 0.5).mean()
    return total


def check_loss_gradient() -> None:
    """Gradients of the Flux loss (float64) against central finite differences, and the sequential
    per-budget backward of spec §5 against the single graph."""
    import copy
    import make_goldens
    model = R.FluxViT(replace_cfg(TINY, gelu="erf"))
    make_goldens.random_weights(model, 2)
    model = model.double()
    budgets = (24, 16, 8)
    seed = 31
    while True:  # T=6, size 8: N=24, budget 24 keeps all, 16 and 8 select; clear cut-offs
        gen = torch.Generator().manual_seed(seed)
        video = torch.randn(2, 3, 6, 8, 8, generator=gen, dtype=torch.float64)
        with torch.no_grad():
            imp = R.selection_importance(model.patch_embed(video))
        if all(cutoff_is_clear(imp[b], 6, 4, R.selection_keep_per_group(6, 4, bb), rel=1e-2)
               for b in range(2) for bb in budgets[1:]):
            break
        seed += 1
    labels = torch.tensor([3, 1])
    loss, parts = R.flux_loss(model, video, labels, budgets)
    model.zero_grad()
    loss.backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters()}
    f0 = parts["feature"][0]
    params = dict(model.named_parameters())
    with torch.no_grad():
        l_check = _loss_fixed_target(model, video, labels, budgets, f0, parts["kept"])
    _close("flux loss vs the loss written again", l_check.reshape(1), loss.detach().reshape(1), 1e-12)
    names = ["cls_token", "pos_embed", "gpe_proj.depthwise_conv.weight", "patch_embed.norm_before.weight",
             "patch_embed.proj.weight", "blocks.0.attn.qkv.weight", "blocks.0.attn.lpe.depthwise_conv.bias",
             "blocks.1.attn.k_norm.weight", "blocks.1.ls2.gamma", "blocks.1.mlp.fc2.bias",
             "clip_projector.0.norm1_q.weight", "clip_projector.1.cross_attn.q_bias", "clip_projector.2.cross_attn.proj.weight",
             "clip_projector.0.cross_attn.k_bias", "fc_norm.weight", "head.2.bias",
             "final_clip_decoder_for_projs.0.head.weight", "final_clip_decoder_for_projs.1.norm.bias"]
    h = 1e-6
    gen = torch.Generator().manual_seed(5)
    n_checked = 0
    with torch.no_grad():
        for name in names:
            p = params[name]
            flat = p.view(-1)
            for idx in torch.randperm(flat.numel(), generator=gen)[:3].tolist():
                old = float(flat[idx])
                flat[idx] = old + h
                lp = _loss_fixed_target(model, video, labels, budgets, f0, parts["kept"])
                flat[idx] = old - h
                lm = _loss_fixed_target(model, video, labels, budgets, f0, parts["kept"])
                flat[idx] = old
                fd = float(lp - lm) / (2 * h)
                g = float(grads[name].view(-1)[idx])
                if abs(fd - g) > 1e-7 * max(1.0, abs(g)):
                    raise AssertionError(f"loss gradient {name}[{idx}]: autograd {g:.10g} vs finite difference {fd:.10g}")
                n_checked += 1
    for name in ("clip_projector.0.cross_attn.k_bias", "clip_projector.2.norm1_k.bias"):
        assert float(grads[name].abs().max()) < 1e-12, f"{name}: the gradient must vanish (softmax shift invariance)"
    # Spec §5's memory-saving order gives the same gradients.
    m2 = copy.deepcopy(model)
    m2.zero_grad()
    l2 = R.flux_backward_sequential(m2, video, labels, budgets)
    _close("sequential per-budget loss", l2.reshape(1), loss.detach().reshape(1), 1e-12)
    for n, p in m2.named_parameters():
        _close(f"sequential per-budget grad {n}", p.grad, grads[n], 1e-10)
    print(f"ok  Flux loss gradient: {n_checked} entries of {len(names)} parameters agree with float64 central "
          "differences (sg(f0) held fixed); pooling k biases have zero gradient; sequential backward == one graph")


def replace_cfg(cfg: R.FluxViTConfig, **kw) -> R.FluxViTConfig:
    from dataclasses import replace
    return replace(cfg, **kw)


def check_optimizer() -> None:
    """AdamW groups, the schedule, clipping and the update against hand-written versions."""
    model = R.FluxViT(TINY)
    depth = TINY.depth  # 2: scales 0.75^3, 0.75^2, 0.75, 1
    want = {  # name: (weight decay, lr scale)
        "cls_token": (0.0, 0.75 ** 3), "pos_embed": (0.0, 0.75 ** 3),
        "patch_embed.proj.weight": (0.05, 0.75 ** 3), "patch_embed.proj.bias": (0.0, 0.75 ** 3),
        "patch_embed.norm_before.weight": (0.0, 0.75 ** 3),
        "gpe_proj.depthwise_conv.weight": (0.05, 1.0), "gpe_proj.depthwise_conv.bias": (0.0, 1.0),
        "blocks.0.attn.qkv.weight": (0.05, 0.75 ** 2), "blocks.0.attn.lpe.depthwise_conv.weight": (0.05, 0.75 ** 2),
        "blocks.0.ls1.gamma": (0.0, 0.75 ** 2), "blocks.1.norm2.weight": (0.0, 0.75),
        "blocks.1.mlp.fc1.bias": (0.0, 0.75), "blocks.1.attn.q_norm.weight": (0.0, 0.75),
        "clip_projector.2.cross_attn.q_bias": (0.0, 1.0), "clip_projector.0.cross_attn.v.weight": (0.05, 1.0),
        "clip_projector.1.norm1_k.weight": (0.0, 1.0), "fc_norm.weight": (0.0, 1.0), "head.1.weight": (0.05, 1.0),
        "final_clip_decoder_for_projs.1.head.weight": (0.05, 1.0), "final_clip_decoder_for_projs.0.norm.bias": (0.0, 1.0),
    }
    group_of = {}
    for g in R.param_groups(model):
        for n in g["names"]:
            assert n not in group_of, f"{n} in two groups"
            group_of[n] = (g["weight_decay"], g["lr_scale"])
    assert set(group_of) == {n for n, _ in model.named_parameters()}, "groups must cover every parameter once"
    for n, (wd, sc) in want.items():
        assert group_of[n][0] == wd and abs(group_of[n][1] - sc) < 1e-15, f"group of {n}: {group_of[n]}, want {(wd, sc)}"
    decayed = sorted(n for n, (wd, _) in group_of.items() if wd)
    assert all(p.ndim >= 2 for n, p in model.named_parameters() if n in decayed)
    assert len(decayed) == 2 + depth * 5 + 3 * 4 + 3 + 2, f"{len(decayed)} decayed tensors: {decayed}"

    # Schedule: E=1, I=6, W=2 (the training goldens') and E=2, I=5, W=3, from the formula.
    for E, I, W in ((1, 6, 2), (2, 5, 3)):
        got = R.cosine_schedule(1e-3, 1e-5, E, I, warmup_iters=W, warmup_start=1e-6)
        want_s = [1e-6 + (1e-3 - 1e-6) * i / (W - 1) for i in range(W)] + \
            [1e-5 + 0.5 * (1e-3 - 1e-5) * (1 + math.cos(math.pi * i / (E * I - W))) for i in range(E * I - W)]
        assert len(got) == E * I and max(abs(a - b) for a, b in zip(got, want_s)) < 1e-18, f"schedule {got} vs {want_s}"

    # AdamW + clipping against a hand-written float64 update over 3 steps.
    import copy
    torch.manual_seed(0)
    m = copy.deepcopy(model).double()
    gen = torch.Generator().manual_seed(9)
    with torch.no_grad():
        for p in m.parameters():
            p.copy_(torch.randn(p.shape, generator=gen, dtype=torch.float64))
    ref = {n: p.detach().clone() for n, p in m.named_parameters()}
    state = {n: (torch.zeros_like(p), torch.zeros_like(p)) for n, p in ref.items()}
    opt = R.make_optimizer(m)
    b1, b2 = R.ADAM_BETAS
    for step, (lr, max_norm) in enumerate(((1e-3, 0.5), (5e-4, 1e6), (2e-4, 3.0)), start=1):
        grads = {n: torch.randn(p.shape, generator=gen, dtype=torch.float64) * 0.3 for n, p in ref.items()}
        for n, p in m.named_parameters():
            p.grad = grads[n].clone()
        norm = R.clip_grad_norm(list(m.parameters()), max_norm)
        R.set_lr(opt, lr)
        opt.step()
        total = math.sqrt(sum(float((g * g).sum()) for g in grads.values()))
        assert abs(float(norm) - total) < 1e-9 * total, f"grad norm {float(norm)} vs {total}"
        coef = min(1.0, max_norm / (total + 1e-6))
        for n in ref:
            wd, sc = group_of[n]
            g = grads[n] * coef
            mm, vv = state[n]
            mm = b1 * mm + (1 - b1) * g
            vv = b2 * vv + (1 - b2) * g * g
            state[n] = (mm, vv)
            lr_p = lr * sc
            p = ref[n] * (1 - lr_p * wd)
            ref[n] = p - lr_p / (1 - b1 ** step) * mm / (vv.sqrt() / math.sqrt(1 - b2 ** step) + R.ADAM_EPS)
        for n, p in m.named_parameters():
            _close(f"AdamW step {step} {n}", p.detach(), ref[n], 1e-12)
    print("ok  AdamW: groups (decay, layer scale) spot-checked, schedule formula, global-norm clipping, "
          "3 steps match a hand-written float64 update")


def check_init() -> None:
    """The sin-cos table against a float64 evaluation of the spec's formula, and init_weights
    against init_rule (constants exactly, distributions statistically)."""
    import make_train_goldens as T
    for C, F_, G in ((384, 24, 18), (32, 4, 2), (64, 4, 2)):
        pe = R.sincos_pos_embed_3d(C, F_, G)[0].double()
        want = torch.zeros(1 + F_ * G * G, C, dtype=torch.float64)
        ct, cs = C // 4, C // 8 * 3
        for t in range(F_):
            for r in range(G):
                for c in range(G):
                    row = 1 + (t * G + r) * G + c
                    for block, (off, dim, pos) in enumerate(((0, ct, t), (ct, cs, c), (ct + cs, cs, r))):
                        for k in range(dim // 2):
                            om = 10000.0 ** (-k / (dim / 2))
                            want[row, off + k] = math.sin(pos * om)
                            want[row, off + dim // 2 + k] = math.cos(pos * om)
        if C == 384:  # the full loop is slow for the big table: compare the rows the golden stores
            rows = list(range(41)) + list(range(pe.shape[0] - 5, pe.shape[0]))
            _close(f"sin-cos table C={C} F={F_} G={G}", pe[rows], want[rows], 2e-6)
            _close("sin-cos table vs the vectorized float64 formula",
                   pe, torch.from_numpy(T.sincos_float64(C, F_, G)), 2e-6)
        else:
            _close(f"sin-cos table C={C} F={F_} G={G}", pe, want, 2e-6)
    model = R.FluxViT(T.TRAIN)
    torch.manual_seed(0)
    R.init_weights(model)
    for n, p in model.named_parameters():
        rule = R.init_rule(n, model.cfg)
        x = p.detach().double().reshape(-1)
        if rule["kind"] == "constant":
            assert bool((x == torch.tensor(rule["value"], dtype=torch.float32).double()).all()), f"init {n}: {rule}"
        elif rule["kind"] == "sincos":
            assert torch.equal(p.detach(), R.sincos_pos_embed_3d(T.TRAIN.embed_dim, T.TRAIN.num_frames, T.TRAIN.grid))
        elif rule["kind"] == "uniform":
            assert float(x.abs().max()) <= rule["bound"] and (x.numel() < 100 or float(x.abs().max()) > 0.8 * rule["bound"]), n
        else:
            assert float(x.abs().max()) <= rule["cut"], n
            if x.numel() >= 500:
                assert abs(float(x.std()) / rule["std"] - 1) < 0.1, f"init {n}: std {float(x.std())} vs {rule['std']}"
    print("ok  init: sin-cos tables match the float64 formula (<= 2e-6), init_weights follows init_rule")


def run_all() -> None:
    import make_goldens
    model = R.FluxViT(TINY)
    make_goldens.random_weights(model, 1)
    model.eval()
    with torch.no_grad():
        check_selection()
        check_resize()
        check_patch_embed(model)
        check_attention(model)
        check_budget_equivalence(model)
        check_kept_path(model)
    check_macs()
    check_kernel_backwards()
    check_loss_gradient()
    check_optimizer()
    check_init()


if __name__ == "__main__":
    torch.set_num_threads(2)
    try:
        run_all()
    except AssertionError as e:
        print(f"FAILED: {e}", file=sys.stderr)
        sys.exit(1)
    print("all reference self-checks passed")

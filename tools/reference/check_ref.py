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


def check_training_smoke(model: R.FluxViT) -> None:
    """Only a smoke test: the §5 loss runs, is finite, and reaches every parameter."""
    import copy
    m = copy.deepcopy(model)
    R.init_weights(m)
    gen = torch.Generator().manual_seed(8)
    video = torch.randn(2, 3, 6, 8, 8, generator=gen)
    labels = torch.tensor([1, 3])
    loss, parts = R.flux_loss(m, video, labels, budgets=(20, 12, 6))
    loss.backward()
    missing = [n for n, p in m.named_parameters() if p.grad is None]
    assert torch.isfinite(loss) and not missing, f"loss {loss}, no gradient for {missing}"
    opt = R.make_optimizer(m)
    sched = R.cosine_schedule(1e-3, 1e-6, 2, 5, warmup_iters=3, warmup_start=1e-6)
    assert len(sched) == 10 and sched[0] == 1e-6 and sched[2] == 1e-3 and abs(sched[3] - 1e-3) < 1e-12
    R.set_lr(opt, float(sched[0]))
    opt.step()
    pe = R.sincos_pos_embed_3d(64, 4, 2)
    assert pe.shape == (1, 17, 64) and float(pe[0, 0].abs().sum()) == 0.0
    print("ok  training pieces smoke test (loss finite, gradients everywhere; NOT checked against goldens)")


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
    check_training_smoke(model)


if __name__ == "__main__":
    torch.set_num_threads(2)
    try:
        run_all()
    except AssertionError as e:
        print(f"FAILED: {e}", file=sys.stderr)
        sys.exit(1)
    print("all reference self-checks passed")

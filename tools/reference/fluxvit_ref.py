"""Plain PyTorch reference of FluxViT, written from /work/shared/fluxvit-spec.md (§2-§5).

This file is the numerical ground truth for the Swift implementation: tools/reference/make_goldens.py
runs it to write Tests/FluxViTTests/Goldens/*.safetensors. It is deliberately explicit (no fused
kernels, no flash-attn, no timm) so that every step can be read against the spec.

Parameter names and shapes are exactly those of spec §3, so `state_dict()` of this module can load
an official checkpoint (after conversion) and vice versa.

Conventions (spec §4):
  video  [B, 3, T, H, W]   normalized pixels
  P      patch size, h = H/P, w = W/P, L = h*w tokens per frame, N = T*L patch tokens
  C      embed dim, D clip dim, K classes

Deviations from the official code, all documented in the spec:
  * token selection halves the group count while a group would hold a single frame (T=4 -> 2 groups);
  * ties in the importance sort are broken by the lower index (stable sort);
  * the position embedding is resized whenever the grid (T, h, w) differs from (F, G, G) (the
    official code compares token counts only);
  * l2normalize divides by max(norm, 1e-12).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

RMS_EPS = 1e-6
LN_EPS = 1e-5


# ---------------------------------------------------------------------------------------------
# Configuration (spec §2)
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FluxViTConfig:
    """Model configuration; keyword names follow the official `FluxViT.__init__`."""

    img_size: int = 252
    patch_size: int = 14
    num_frames: int = 24
    embed_dim: int = 384
    depth: int = 12
    num_heads: int = 6
    mlp_ratio: float = 4.0
    attn_pool_num_heads: int = 16
    clip_embed_dim: int = 768
    num_classes: int = 400
    gelu: str = "tanh"  # 'tanh' (flash-attn FusedMLP, released checkpoints) or 'erf'

    def __post_init__(self) -> None:
        if self.gelu not in ("tanh", "erf"):
            raise ValueError(f"gelu must be 'tanh' or 'erf', got {self.gelu!r}")
        if self.embed_dim % self.num_heads or self.embed_dim % self.attn_pool_num_heads:
            raise ValueError("embed_dim must be divisible by num_heads and attn_pool_num_heads")
        if self.img_size % self.patch_size:
            raise ValueError("img_size must be a multiple of patch_size")

    @property
    def grid(self) -> int:
        """Base spatial grid G = img_size / patch_size."""
        return self.img_size // self.patch_size

    @property
    def mlp_hidden(self) -> int:
        return int(self.embed_dim * self.mlp_ratio)

    def to_dict(self) -> dict:
        return asdict(self)


PRESETS: Dict[str, FluxViTConfig] = {
    "fluxvit-small": FluxViTConfig(
        img_size=252, patch_size=14, num_frames=24, embed_dim=384, depth=12, num_heads=6,
        mlp_ratio=4, attn_pool_num_heads=16, clip_embed_dim=768, num_classes=400, gelu="tanh"),
    "fluxvit-base": FluxViTConfig(
        img_size=280, patch_size=14, num_frames=32, embed_dim=768, depth=12, num_heads=12,
        mlp_ratio=4, attn_pool_num_heads=16, clip_embed_dim=768, num_classes=400, gelu="tanh"),
}


def preset(name: str, **overrides) -> FluxViTConfig:
    """A named preset (spec §2), optionally with fields overridden (e.g. num_classes=174)."""
    if name not in PRESETS:
        raise KeyError(f"unknown preset {name!r}; known: {sorted(PRESETS)}")
    return replace(PRESETS[name], **overrides)


# ---------------------------------------------------------------------------------------------
# Functional building blocks
# ---------------------------------------------------------------------------------------------


def rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float = RMS_EPS) -> torch.Tensor:
    """x / sqrt(mean(x^2) + eps) * weight over the last axis, in fp32 (spec §4.4), or in float64 when
    the input is float64 (the training goldens compute in float64)."""
    x32 = x.to(torch.promote_types(x.dtype, torch.float32))
    return x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + eps) * weight


def l2normalize(x: torch.Tensor) -> torch.Tensor:
    """x / max(||x||_2, 1e-12) over the last axis (spec §4.7)."""
    return x / x.norm(dim=-1, keepdim=True).clamp_min(1e-12)


def gelu(x: torch.Tensor, kind: str) -> torch.Tensor:
    return F.gelu(x, approximate="tanh" if kind == "tanh" else "none")


# ---------------------------------------------------------------------------------------------
# Token selection (spec §4.2)
# ---------------------------------------------------------------------------------------------


def selection_groups(T: int) -> int:
    """Number of sparse groups G for T frames: 4 if T%4==0, 1 if T==2, else 2; then, our rule,
    halve G while a group would hold fewer than 2 frames (T=4 -> 2 groups of 2)."""
    if T % 2:
        raise ValueError(f"token selection needs an even frame count, got T={T}")
    G = 4 if T % 4 == 0 else (1 if T == 2 else 2)
    while T / G < 2:
        G //= 2
    return G


def selection_keep_per_group(T: int, L: int, budget: int) -> int:
    """k, the tokens kept per group, computed in float64 exactly as the official code does:
    r = 1 - budget/N; k = int((1 - r) * (T/G * L))."""
    G = selection_groups(T)
    N = T * L
    r = 1 - budget / N
    return int((1 - r) * (T / G * L))


def selection_importance(embed: torch.Tensor) -> torch.Tensor:
    """Importance of every patch token. embed: [B, T, L, C] -> [B, T, L].

    Within each group of T/G consecutive frames, d[t][l] = ||e[t+1][l] - e[t][l]||_2; frame 0 of
    the group gets d[0][l], frame t >= 1 gets d[t-1][l] (so frames 0 and 1 tie exactly).
    """
    B, T, L, C = embed.shape
    G = selection_groups(T)
    Tg = T // G
    e = embed.reshape(B, G, Tg, L, C)
    d = torch.linalg.vector_norm(e[:, :, 1:] - e[:, :, :-1], ord=2, dim=-1)  # [B, G, Tg-1, L]
    imp = torch.cat((d[:, :, :1], d), dim=2)  # [B, G, Tg, L]
    return imp.reshape(B, T, L)


def select_tokens(embed: torch.Tensor, budget: int) -> Tuple[torch.Tensor, torch.Tensor]:
    """Sparse-group token selection. embed: [B, T, L, C] (patch embeddings, before cls/position).

    Returns (kept, importance): kept is int64 [B, G*k] of global patch-token indices t*L + l in
    ascending order (cls excluded); importance is [B, T, L].
    Per group the k tokens of highest importance are kept; ties go to the lower index inside the
    group (a stable descending sort), which the official unstable argsort leaves undefined.
    """
    B, T, L, C = embed.shape
    G = selection_groups(T)
    Tg = T // G
    k = selection_keep_per_group(T, L, budget)
    imp = selection_importance(embed)
    flat = imp.reshape(B, G, Tg * L)
    order = torch.sort(flat, dim=-1, descending=True, stable=True).indices[..., :k]
    local = torch.sort(order, dim=-1).values  # kept tokens stay in original order
    offset = (torch.arange(G, dtype=torch.int64) * (Tg * L)).view(1, G, 1)
    kept = (local + offset).reshape(B, G * k)
    return kept, imp


# ---------------------------------------------------------------------------------------------
# Position embedding (spec §4.3)
# ---------------------------------------------------------------------------------------------


def resize_pos_embed(pos_embed: torch.Tensor, gpe_weight: torch.Tensor, gpe_bias: torch.Tensor,
                     F_: int, G: int, T: int, h: int, w: int) -> torch.Tensor:
    """GPE then resize of the stored position embedding.

    pos_embed [1, 1+F*G*G, C] (cls first, then (t, row, col) row-major); gpe_weight/bias [C]
    (the depthwise 1x1x1 conv of `gpe_proj`). Returns [1+T*h*w, C].
    GPE (pe*w + b per channel) applies to every entry but cls. Then, if the grid differs,
    linear interpolation along time F -> T (align_corners=False), then bicubic G x G -> h x w
    (align_corners=False, A = -0.75, border clamped), exactly as PyTorch's F.interpolate.
    """
    C = pos_embed.shape[-1]
    if pos_embed.shape != (1, 1 + F_ * G * G, C):
        raise ValueError(f"pos_embed has shape {tuple(pos_embed.shape)}, expected (1, {1 + F_ * G * G}, {C})")
    cls = pos_embed[0, :1]
    grid = pos_embed[0, 1:] * gpe_weight.reshape(1, C) + gpe_bias.reshape(1, C)  # [F*G*G, C]
    if F_ != T:
        x = grid.reshape(F_, G * G, C).permute(1, 2, 0)  # [G*G, C, F]
        x = F.interpolate(x, size=T, mode="linear", align_corners=False)
        grid = x.permute(2, 0, 1).reshape(T * G * G, C)
    if (G, G) != (h, w):
        x = grid.reshape(T, G, G, C).permute(0, 3, 1, 2)  # [T, C, G, G]
        x = F.interpolate(x, size=(h, w), mode="bicubic", align_corners=False)
        grid = x.permute(0, 2, 3, 1).reshape(T * h * w, C)
    return torch.cat((cls, grid), dim=0)


# ---------------------------------------------------------------------------------------------
# Modules. Attribute names produce the spec §3 state_dict keys.
# ---------------------------------------------------------------------------------------------


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float = RMS_EPS):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return rms_norm(x, self.weight, self.eps)


class DepthwiseConv(nn.Module):
    """Holds `depthwise_conv.weight` [C,1,1,1,1] and `.bias` [C]: a per-channel x*w + b."""

    def __init__(self, dim: int):
        super().__init__()
        self.depthwise_conv = nn.Conv3d(dim, dim, kernel_size=1, groups=dim)
        nn.init.ones_(self.depthwise_conv.weight)
        nn.init.zeros_(self.depthwise_conv.bias)

    @property
    def scale(self) -> torch.Tensor:
        return self.depthwise_conv.weight.reshape(-1)

    @property
    def shift(self) -> torch.Tensor:
        return self.depthwise_conv.bias

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x [..., C] -> x*w + b per channel."""
        return x * self.scale + self.shift


class PatchEmbed(nn.Module):
    """Dual-norm patch embedding (spec §4.1). video [B,3,T,H,W] -> [B, T, L, C]."""

    def __init__(self, cfg: FluxViTConfig):
        super().__init__()
        P, C = cfg.patch_size, cfg.embed_dim
        self.P = P
        self.norm_before = RMSNorm(P * P * 3)
        self.proj = nn.Conv3d(3, C, kernel_size=(1, P, P), stride=(1, P, P))
        self.norm = RMSNorm(C)

    def forward(self, video: torch.Tensor) -> torch.Tensor:
        B, Cin, T, H, W = video.shape
        P = self.P
        if Cin != 3 or H % P or W % P:
            raise ValueError(f"video must be [B, 3, T, H, W] with H, W multiples of {P}, got {tuple(video.shape)}")
        h, w = H // P, W // P
        # [B,3,T,h,P,w,P] -> [B,T,h,w,P(row),P(col),3]: per patch (row, col, channel), channel fastest.
        x = video.reshape(B, 3, T, h, P, w, P).permute(0, 2, 3, 5, 4, 6, 1).reshape(B, T, h * w, P * P * 3)
        x = self.norm_before(x)
        # proj.weight is (out, channel, t, row, col); bring it to (out, row, col, channel).
        Wm = self.proj.weight.reshape(-1, 3, P, P).permute(0, 2, 3, 1).reshape(-1, P * P * 3)
        x = F.linear(x, Wm, self.proj.bias)
        return self.norm(x)


class Attention(nn.Module):
    def __init__(self, cfg: FluxViTConfig):
        super().__init__()
        C = cfg.embed_dim
        self.num_heads = cfg.num_heads
        self.qkv = nn.Linear(C, 3 * C, bias=False)
        self.q_norm = RMSNorm(C)
        self.k_norm = RMSNorm(C)
        self.lpe = DepthwiseConv(C)
        self.proj = nn.Linear(C, C)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, n, C = x.shape
        H = self.num_heads
        hd = C // H
        q, k, v = self.qkv(x).split(C, dim=-1)  # rows of W_qkv: q, k, v; each head-major
        q = self.q_norm(q)  # over all C channels, before splitting heads
        k = self.k_norm(k)
        v_lpe = self.lpe(v)
        q, k, v = (t.reshape(B, n, H, hd).transpose(1, 2) for t in (q, k, v))  # [B, H, n, hd]
        scores = (q @ k.transpose(-2, -1)) * (hd ** -0.5)
        o = scores.softmax(dim=-1) @ v  # [B, H, n, hd]
        o = o.transpose(1, 2).reshape(B, n, C)
        return self.proj(o + v_lpe)


class LayerScale(nn.Module):
    def __init__(self, dim: int, init: float = 1e-5):
        super().__init__()
        self.gamma = nn.Parameter(torch.full((dim,), init))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gamma


class Mlp(nn.Module):
    def __init__(self, cfg: FluxViTConfig):
        super().__init__()
        self.fc1 = nn.Linear(cfg.embed_dim, cfg.mlp_hidden)
        self.fc2 = nn.Linear(cfg.mlp_hidden, cfg.embed_dim)
        self.kind = cfg.gelu

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(gelu(self.fc1(x), self.kind))


class Block(nn.Module):
    def __init__(self, cfg: FluxViTConfig):
        super().__init__()
        C = cfg.embed_dim
        self.norm1 = RMSNorm(C)
        self.attn = Attention(cfg)
        self.ls1 = LayerScale(C)
        self.norm2 = RMSNorm(C)
        self.mlp = Mlp(cfg)
        self.ls2 = LayerScale(C)

    def forward(self, x: torch.Tensor, inter: Optional[dict] = None, prefix: str = "") -> torch.Tensor:
        a = self.attn(self.norm1(x))
        if inter is not None:
            inter[prefix + "attn.out"] = a
        x = x + self.ls1(a)
        x = x + self.ls2(self.mlp(self.norm2(x)))
        return x


class CrossAttention(nn.Module):
    def __init__(self, dim: int, out_dim: int, num_heads: int):
        super().__init__()
        self.num_heads = num_heads
        self.q = nn.Linear(dim, dim, bias=False)
        self.k = nn.Linear(dim, dim, bias=False)
        self.v = nn.Linear(dim, dim, bias=False)
        self.q_bias = nn.Parameter(torch.zeros(dim))
        self.k_bias = nn.Parameter(torch.zeros(dim))
        self.v_bias = nn.Parameter(torch.zeros(dim))
        self.proj = nn.Linear(dim, out_dim)

    def forward(self, xq: torch.Tensor, xk: torch.Tensor, xv: torch.Tensor) -> torch.Tensor:
        B, nq, C = xq.shape
        n = xk.shape[1]
        H = self.num_heads
        hd = C // H
        q = F.linear(xq, self.q.weight, self.q_bias).reshape(B, nq, H, hd).transpose(1, 2)
        k = F.linear(xk, self.k.weight, self.k_bias).reshape(B, n, H, hd).transpose(1, 2)
        v = F.linear(xv, self.v.weight, self.v_bias).reshape(B, n, H, hd).transpose(1, 2)
        attn = ((q @ k.transpose(-2, -1)) * (hd ** -0.5)).softmax(dim=-1)
        o = (attn @ v).transpose(1, 2).reshape(B, nq, C)
        return self.proj(o)


class AttentionPool(nn.Module):
    """Attention pooling head (spec §4.5): one query, the mean of all tokens incl. cls."""

    def __init__(self, cfg: FluxViTConfig):
        super().__init__()
        C = cfg.embed_dim
        self.norm1_q = nn.LayerNorm(C, eps=LN_EPS)
        self.norm1_k = nn.LayerNorm(C, eps=LN_EPS)
        self.norm1_v = nn.LayerNorm(C, eps=LN_EPS)
        self.cross_attn = CrossAttention(C, cfg.clip_embed_dim, cfg.attn_pool_num_heads)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q0 = x.mean(dim=1, keepdim=True)
        out = self.cross_attn(self.norm1_q(q0), self.norm1_k(x), self.norm1_v(x))
        return out.squeeze(1)  # [B, D]


class AlignProjector(nn.Module):
    """Alignment projector m (spec §4.7): l2normalize(LN(W f + b))."""

    def __init__(self, dim: int):
        super().__init__()
        self.head = nn.Linear(dim, dim)
        self.norm = nn.LayerNorm(dim, eps=LN_EPS)

    def forward(self, f: torch.Tensor) -> torch.Tensor:
        return l2normalize(self.norm(self.head(f)))


class FluxViT(nn.Module):
    """FluxViT reference model (spec §3-§4)."""

    def __init__(self, cfg: FluxViTConfig):
        super().__init__()
        self.cfg = cfg
        C, D, K = cfg.embed_dim, cfg.clip_embed_dim, cfg.num_classes
        G = cfg.grid
        self.cls_token = nn.Parameter(torch.zeros(1, 1, C))
        self.pos_embed = nn.Parameter(torch.zeros(1, 1 + cfg.num_frames * G * G, C))
        self.gpe_proj = DepthwiseConv(C)
        self.patch_embed = PatchEmbed(cfg)
        self.blocks = nn.ModuleList([Block(cfg) for _ in range(cfg.depth)])
        self.clip_projector = nn.ModuleList([AttentionPool(cfg) for _ in range(3)])
        self.fc_norm = nn.LayerNorm(D, eps=LN_EPS)
        self.head = nn.ModuleList([nn.Linear(D, K) for _ in range(3)])
        self.final_clip_decoder_for_projs = nn.ModuleList([AlignProjector(D) for _ in range(2)])

    def position_embedding(self, T: int, h: int, w: int) -> torch.Tensor:
        """[1 + T*h*w, C]: GPE applied and resized to the grid (T, h, w)."""
        return resize_pos_embed(self.pos_embed, self.gpe_proj.scale, self.gpe_proj.shift,
                                self.cfg.num_frames, self.cfg.grid, T, h, w)

    def forward(self, video: torch.Tensor, budget: Optional[int] = None, head: int = 0,
                return_intermediates: bool = False):
        """video [B,3,T,H,W] -> dict with logits [B,K], feature [B,D], proj0 [B,D], proj1 [B,D],
        kept (int64 [B, n_kept] or None) and, if asked, `intermediates` (a dict of tensors).

        Token selection runs when `budget` is given and below N = T*h*w.
        """
        if head not in (0, 1, 2):
            raise ValueError(f"head must be 0, 1 or 2, got {head}")
        cfg = self.cfg
        B, _, T, H, W = video.shape
        P = cfg.patch_size
        h, w = H // P, W // P
        L = h * w
        N = T * L
        C = cfg.embed_dim
        inter: Optional[dict] = {} if return_intermediates else None

        e = self.patch_embed(video)  # [B, T, L, C]
        kept = None
        if budget is not None and budget < N:
            kept, _ = select_tokens(e.detach(), budget)
        x = e.reshape(B, N, C)
        if inter is not None:
            inter["patch_embed"] = x
        x = torch.cat((self.cls_token.expand(B, 1, C), x), dim=1)
        pos = self.position_embedding(T, h, w)
        if inter is not None:
            inter["pos_embed"] = pos
        x = x + pos
        if kept is not None:
            idx = torch.cat((torch.zeros(B, 1, dtype=torch.int64), kept + 1), dim=1)
            x = torch.gather(x, 1, idx.unsqueeze(-1).expand(B, idx.shape[1], C))
        if inter is not None:
            inter["tokens"] = x
        for i, blk in enumerate(self.blocks):
            x = blk(x, inter, f"blocks.{i}.")
            if inter is not None:
                inter[f"blocks.{i}.out"] = x
        f = self.clip_projector[head](x)
        logits = self.head[head](self.fc_norm(f))
        out = {
            "logits": logits,
            "feature": f,
            "proj0": self.final_clip_decoder_for_projs[0](f),
            "proj1": self.final_clip_decoder_for_projs[1](f),
            "kept": kept,
        }
        if inter is not None:
            out["intermediates"] = inter
        return out


def head_for_budget(budget: int, training_budgets: Sequence[int]) -> int:
    """Head index whose training budget (largest first: head 0) is nearest the test budget."""
    ordered = sorted(training_budgets, reverse=True)
    return min(range(len(ordered)), key=lambda j: (abs(ordered[j] - budget), j))


# ---------------------------------------------------------------------------------------------
# Training pieces (spec §5). check_ref.py checks them against independent computations (finite
# differences of the loss in float64, a hand-written AdamW, the schedule formula, a float64 sin-cos
# table); tools/reference/make_train_goldens.py writes Tests/FluxTrainingTests/Goldens/ from them.
# The official training code agrees (engines/engine_for_flexible_tuning.py, optim_factory.py,
# utils.cosine_scheduler, models/pos_embed.py of OpenGVLab/FluxViT).
# ---------------------------------------------------------------------------------------------

TRUNC_STD = 0.02
TRUNC_CUT = 2.0  # absolute bounds +-2 (timm's trunc_normal_(std=.02) default a=-2, b=2): +-100 sigma


def get_1d_sincos(dim: int, pos: np.ndarray) -> np.ndarray:
    """[len(pos), dim]: [sin(p*w_k)]_k followed by [cos(p*w_k)]_k, w_k = 10000^(-k/(dim/2)).
    Computed in float32 numpy, step by step as the official pos_embed.py does."""
    omega = np.arange(dim // 2, dtype=np.float32) / np.float32(dim / 2.0)
    omega = (1.0 / 10000 ** omega).astype(np.float32)
    out = np.einsum("m,d->md", pos.reshape(-1).astype(np.float32), omega)
    return np.concatenate([np.sin(out), np.cos(out)], axis=1)


def sincos_pos_embed_3d(C: int, F_: int, G: int) -> torch.Tensor:
    """[1, 1+F*G*G, C] fixed table: channels [0,C/4) time, next 3C/8 column, last 3C/8 row; cls 0."""
    if C % 16:
        raise ValueError("sin-cos position embedding needs C % 16 == 0")
    ct, cs = C // 4, C // 4 * 3
    t = get_1d_sincos(ct, np.arange(F_))  # [F, ct]
    col = np.tile(np.arange(G), G)  # entry (row, col) -> col
    row = np.repeat(np.arange(G), G)
    spatial = np.concatenate([get_1d_sincos(cs // 2, col), get_1d_sincos(cs // 2, row)], axis=1)  # [G*G, cs]
    grid = np.concatenate([np.repeat(t[:, None, :], G * G, axis=1),
                           np.repeat(spatial[None], F_, axis=0)], axis=-1).reshape(F_ * G * G, C)
    full = np.concatenate([np.zeros((1, C), np.float32), grid.astype(np.float32)], axis=0)
    return torch.from_numpy(full).unsqueeze(0)


@torch.no_grad()
def init_weights(model: FluxViT) -> None:
    """Training-from-scratch initialization of spec §5."""
    for m in model.modules():
        if isinstance(m, nn.Linear):
            nn.init.trunc_normal_(m.weight, std=TRUNC_STD, a=-TRUNC_CUT, b=TRUNC_CUT)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, RMSNorm):
            nn.init.ones_(m.weight)
        elif isinstance(m, LayerScale):
            m.gamma.fill_(1e-5)
        elif isinstance(m, DepthwiseConv):
            nn.init.ones_(m.depthwise_conv.weight)
            nn.init.zeros_(m.depthwise_conv.bias)
        elif isinstance(m, CrossAttention):
            for b in (m.q_bias, m.k_bias, m.v_bias):
                nn.init.zeros_(b)
    nn.init.trunc_normal_(model.cls_token, std=TRUNC_STD, a=-TRUNC_CUT, b=TRUNC_CUT)
    model.patch_embed.proj.reset_parameters()  # PyTorch default Conv3d init: U(+-1/sqrt(3*P*P))
    cfg = model.cfg
    model.pos_embed.copy_(sincos_pos_embed_3d(cfg.embed_dim, cfg.num_frames, cfg.grid))
    for i, blk in enumerate(model.blocks):
        blk.attn.proj.weight.div_(math.sqrt(2.0 * (i + 1)))
        blk.mlp.fc2.weight.div_(math.sqrt(2.0 * (i + 1)))


def init_rule(name: str, cfg: FluxViTConfig) -> dict:
    """The distribution init_weights draws parameter `name` from, as data (for the goldens' README
    and a statistical check on the Swift side): kind `trunc_normal` (mean 0, std, absolute cut),
    `uniform` (+-bound), `constant` (value) or `sincos` (the fixed table)."""
    P = cfg.patch_size
    if name == "pos_embed":
        return {"kind": "sincos"}
    if name == "cls_token":
        return {"kind": "trunc_normal", "std": TRUNC_STD, "cut": TRUNC_CUT}
    if name in ("patch_embed.proj.weight", "patch_embed.proj.bias"):
        return {"kind": "uniform", "bound": 1.0 / math.sqrt(3 * P * P)}
    if name.endswith(".gamma"):
        return {"kind": "constant", "value": 1e-5}
    if name.endswith("depthwise_conv.weight"):
        return {"kind": "constant", "value": 1.0}
    if name.endswith("bias"):  # Linear, LayerNorm, GPE/LPE biases and the pooling q/k/v biases
        return {"kind": "constant", "value": 0.0}
    if "norm" in name.split(".")[-2]:  # RMSNorm / LayerNorm weights
        return {"kind": "constant", "value": 1.0}
    std = TRUNC_STD
    parts = name.split(".")
    if parts[0] == "blocks" and name.endswith(("attn.proj.weight", "mlp.fc2.weight")):
        std = TRUNC_STD / math.sqrt(2.0 * (int(parts[1]) + 1))
    return {"kind": "trunc_normal", "std": std, "cut": TRUNC_CUT * std / TRUNC_STD}


def layer_id(name: str, depth: int) -> int:
    """0 for cls_token, pos_embed, patch_embed.*; i+1 for blocks.i.*; depth+1 for everything else
    (gpe_proj.*, clip_projector.*, fc_norm, head.*, final_clip_decoder_for_projs.*)."""
    if name in ("cls_token", "pos_embed") or name.startswith("patch_embed."):
        return 0
    if name.startswith("blocks."):
        return int(name.split(".")[1]) + 1
    return depth + 1


def no_weight_decay(name: str, param: torch.Tensor) -> bool:
    """1-D in the §3 shapes, a name ending in `.bias`, pos_embed or cls_token."""
    return param.ndim == 1 or name.endswith(".bias") or name in ("pos_embed", "cls_token")


def lr_scale(name: str, depth: int, layer_decay: float = 0.75) -> float:
    return layer_decay ** (depth + 1 - layer_id(name, depth))


def param_groups(model: FluxViT, weight_decay: float = 0.05, layer_decay: float = 0.75) -> List[dict]:
    """AdamW parameter groups: (decay or not) x layer id, each with `lr_scale` (spec §5)."""
    depth = model.cfg.depth
    groups: Dict[Tuple[int, bool], dict] = {}
    for name, p in model.named_parameters():
        lid = layer_id(name, depth)
        nd = no_weight_decay(name, p)
        g = groups.setdefault((lid, nd), {
            "params": [], "names": [], "weight_decay": 0.0 if nd else weight_decay,
            "lr_scale": lr_scale(name, depth, layer_decay)})
        g["params"].append(p)
        g["names"].append(name)
    return [groups[k] for k in sorted(groups)]


ADAM_BETAS = (0.9, 0.999)
ADAM_EPS = 1e-8


def make_optimizer(model: FluxViT, weight_decay: float = 0.05, layer_decay: float = 0.75) -> torch.optim.AdamW:
    """torch.optim.AdamW over param_groups, single-tensor path (foreach=False). Per parameter and
    step t (1-based), with lr = schedule * lr_scale and g the (clipped) gradient:
        p <- p * (1 - lr * wd)
        m <- m + (g - m) * (1 - b1);  v <- v * b2 + (1 - b2) * g * g
        p <- p - (lr / (1 - b1^t)) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)"""
    groups = param_groups(model, weight_decay, layer_decay)
    for g in groups:
        g.pop("names")
    return torch.optim.AdamW(groups, lr=0.0, betas=ADAM_BETAS, eps=ADAM_EPS, foreach=False)


def cosine_schedule(base: float, final: float, epochs: int, iters_per_epoch: int,
                    warmup_iters: int = 0, warmup_start: float = 0.0) -> np.ndarray:
    """Per-iteration values: linspace(warmup_start, base, W) then cosine from base to final."""
    total = epochs * iters_per_epoch
    warm = np.linspace(warmup_start, base, warmup_iters) if warmup_iters > 0 else np.array([])
    i = np.arange(total - warmup_iters)
    cos = final + 0.5 * (base - final) * (1 + np.cos(np.pi * i / (total - warmup_iters)))
    return np.concatenate((warm, cos))


def set_lr(opt: torch.optim.Optimizer, lr: float) -> None:
    for g in opt.param_groups:
        g["lr"] = lr * g["lr_scale"]


def label_smoothing_ce(logits: torch.Tensor, labels: torch.Tensor, smoothing: float = 0.1) -> torch.Tensor:
    """Mean over the batch of (1 - s) * (-log p[y]) + s * mean_k(-log p[k]) (timm's
    LabelSmoothingCrossEntropy, identical to PyTorch's label_smoothing)."""
    return F.cross_entropy(logits, labels, label_smoothing=smoothing)


def smooth_l1_align(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """SL1(l2normalize(pred), l2normalize(sg(target))), beta 1, mean over all elements."""
    return F.smooth_l1_loss(l2normalize(pred), l2normalize(target.detach()), beta=1.0)


def flux_loss(model: FluxViT, video: torch.Tensor, labels: torch.Tensor, budgets: Sequence[int],
              smoothing: float = 0.1) -> Tuple[torch.Tensor, dict]:
    """Flux loss of spec §5 on one batch (all budgets in one graph; the gradients are the same as
    running each budget's backward right after its forward, see flux_backward_sequential).

    budgets: (largest, middle, least); head j runs with budgets[j] (selection when below N).
    Loss = sum_j CE_ls(logits_j) + SL1(proj0(f1), sg(f0)) + SL1(proj1(f2), sg(f0)),
    SL1 with beta 1 on L2-normalized arguments, averaged over elements. (proj_m already ends in an
    l2normalize; normalizing again changes nothing but rounding, as in the official code.)
    parts: ce [3], align [2] (detached scalars), kept [3] (I64 or None), logits [3], feature [3],
    align_pred [2] (proj0(f1), proj1(f2)), all detached.
    """
    outs = [model(video, budget=b, head=j) for j, b in enumerate(budgets)]
    ce = [label_smoothing_ce(o["logits"], labels, smoothing) for o in outs]
    f = [o["feature"] for o in outs]
    p0 = model.final_clip_decoder_for_projs[0](f[1])
    p1 = model.final_clip_decoder_for_projs[1](f[2])
    al = [smooth_l1_align(p0, f[0]), smooth_l1_align(p1, f[0])]
    loss = ce[0] + ce[1] + ce[2] + al[0] + al[1]
    parts = {"ce": [c.detach() for c in ce], "align": [a.detach() for a in al],
             "kept": [o["kept"] for o in outs], "logits": [o["logits"].detach() for o in outs],
             "feature": [x.detach() for x in f], "align_pred": [p0.detach(), p1.detach()]}
    return loss, parts


def flux_backward_sequential(model: FluxViT, video: torch.Tensor, labels: torch.Tensor,
                             budgets: Sequence[int], smoothing: float = 0.1) -> torch.Tensor:
    """The memory-saving order of spec §5: budget 0 forward + backward (keeping sg(f0)), then
    budget 1, then budget 2; gradients accumulate in .grad. Returns the loss (detached)."""
    o0 = model(video, budget=budgets[0], head=0)
    l0 = label_smoothing_ce(o0["logits"], labels, smoothing)
    l0.backward()
    f0 = o0["feature"].detach()
    total = l0.detach()
    for j, m in ((1, 0), (2, 1)):
        o = model(video, budget=budgets[j], head=j)
        lj = label_smoothing_ce(o["logits"], labels, smoothing) + \
            smooth_l1_align(model.final_clip_decoder_for_projs[m](o["feature"]), f0)
        lj.backward()
        total = total + lj.detach()
    return total


def clip_grad_norm(params: Sequence[torch.Tensor], max_norm: Optional[float]) -> torch.Tensor:
    """Global L2 norm of all gradients, returned before clipping; if max_norm is given every
    gradient is multiplied by min(1, max_norm / (norm + 1e-6)) (torch.nn.utils.clip_grad_norm_)."""
    params = [p for p in params if p.grad is not None]
    if max_norm is None:
        return torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(p.grad) for p in params]))
    return torch.nn.utils.clip_grad_norm_(params, max_norm, foreach=False)


def train_step(model: FluxViT, opt: torch.optim.Optimizer, video: torch.Tensor, labels: torch.Tensor,
               budgets: Sequence[int], lr: float, max_norm: Optional[float], smoothing: float = 0.1) -> dict:
    """One Flux step: zero grads, loss, backward, clip, lr = schedule value * lr_scale, AdamW step."""
    opt.zero_grad(set_to_none=True)
    loss, parts = flux_loss(model, video, labels, budgets, smoothing)
    loss.backward()
    grad_norm = clip_grad_norm(list(model.parameters()), max_norm)
    set_lr(opt, lr)
    opt.step()
    return {"loss": loss.detach(), "grad_norm": grad_norm.detach(), "parts": parts}


# ---------------------------------------------------------------------------------------------
# MAC count (spec §7)
# ---------------------------------------------------------------------------------------------


def gmacs(cfg: FluxViTConfig, tokens: int, sampled: Optional[int] = None) -> float:
    """Billions of multiply-accumulates of one forward with `tokens` patch tokens kept (cls added
    here) out of `sampled` patch tokens embedded (defaults to `tokens`)."""
    C, Hd, D, K, P = cfg.embed_dim, cfg.mlp_hidden, cfg.clip_embed_dim, cfg.num_classes, cfg.patch_size
    n = tokens + 1
    N = tokens if sampled is None else sampled
    blocks = cfg.depth * (4 * n * C * C + 2 * n * C * Hd + 2 * n * n * C)
    patch = N * (3 * P * P) * C
    pool = 2 * n * C * C + C * C + C * D
    return (blocks + patch + pool + D * K) / 1e9

"""Write the model-parity goldens of Tests/FluxViTTests/Goldens/ from the PyTorch reference.

Usage (normally through `make goldens`):
    $(tools/reference/setup_venv.sh) tools/reference/make_goldens.py [--out DIR] [--skip-checks]

Runs the self-checks of check_ref.py first, then writes (all safetensors, F32 tensors, I64 indices):
    tiny_weights.safetensors        every parameter of the tiny config under its spec §3 name
    forward_<case>.safetensors      video, logits/feature/proj0/proj1 per head, kept, intermediates
    resize_<case>.safetensors       GPE + position-embedding resize cases
    select_<case>.safetensors       token-selection cases
and configs/models/tiny-test.yaml; then the training goldens of Tests/FluxTrainingTests/Goldens/
and configs/models/tiny-train.yaml through make_train_goldens.py. Each file's __metadata__ holds
format "1", the generator, the torch version, the seed and the case parameters (strings). See
Tests/FluxViTTests/Goldens/README.md and Tests/FluxTrainingTests/Goldens/README.md.
"""

from __future__ import annotations

import argparse
import json
import struct
import sys
from dataclasses import replace
from pathlib import Path
from typing import Dict, Optional

import torch
from safetensors.torch import save_file

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import fluxvit_ref as R  # noqa: E402

REPO = HERE.parent.parent
FORMAT = "1"
GENERATOR = "tools/reference/make_goldens.py"
WEIGHT_SEED = 20250301

TINY = R.FluxViTConfig(img_size=8, patch_size=4, num_frames=4, embed_dim=64, depth=2, num_heads=2,
                       mlp_ratio=4, attn_pool_num_heads=4, clip_embed_dim=32, num_classes=5, gelu="tanh")
TINY_BUDGETS = [24, 16, 8]

# name, frames, size, batch, budget, gelu
FORWARD_CASES = [
    ("t4_s8_b2_full_tanh", 4, 8, 2, None, "tanh"),
    ("t6_s12_b1_k30_tanh", 6, 12, 1, 30, "tanh"),    # both resizes (time 4->6, space 2->3), G=2
    ("t8_s8_b2_k20_erf", 8, 8, 2, 20, "erf"),        # G=4, time resize 4->8
    ("t4_s8_b1_k10_erf", 4, 8, 1, 10, "erf"),        # G halved 4->2 (our single-frame-group rule)
    ("t8_s12_b1_full_erf", 8, 12, 1, None, "erf"),
    ("t2_s8_b2_k5_tanh", 2, 8, 2, 5, "tanh"),        # G=1, time resize 4->2
    ("t6_s8_b2_k20_erf", 6, 8, 2, 20, "erf"),        # G=2 of 3 frames, time resize 4->6
    ("t4_s12_b1_k14_tanh", 4, 12, 1, 14, "tanh"),    # float rounding: k=int(6.999...)=6, kept 12 < 14
]

# F, G, T, h (w = h)
RESIZE_CASES = [
    (4, 2, 4, 2),   # identity grid: GPE only
    (4, 2, 6, 3),   # up in time and space
    (4, 2, 8, 5),
    (4, 2, 2, 1),   # down in time and space
    (4, 4, 3, 2),   # down in time and space
    (4, 2, 8, 2),   # time only
    (4, 2, 4, 3),   # space only
    (8, 6, 6, 4),   # down, larger grid
]
RESIZE_C = 16

# T, L, budget. The cut-off of a group with 2 frames and odd k always falls inside a frame 0/1 pair.
SELECT_CASES = [
    (2, 4, 5),      # G=1, k=5: tie at the cut-off
    (2, 9, 7),      # G=1, float rounding: k=int(6.999...)=6, not 7
    (4, 9, 20),     # G=2 (halved), k=10
    (4, 9, 14),     # float rounding: k=6, not 7
    (4, 4, 6),      # G=2, k=3: tie at the cut-off in every group
    (6, 4, 13),     # G=2 of 3 frames, k=int(6.5)=6: kept 12 < budget
    (6, 9, 26),     # float rounding: k=12, not 13
    (8, 9, 50),     # G=4, k=12
    (8, 9, 28),     # float rounding: k=6, not 7
    (8, 4, 12),     # G=4, k=3: tie at the cut-off in every group
    (12, 4, 30),    # G=4 of 3 frames, k=7
    (12, 9, 100),   # G=4 of 3 frames, k=25
]
SELECT_B, SELECT_C = 2, 8


def meta(seed: int, case: str, **params) -> Dict[str, str]:
    m = {"format": FORMAT, "generator": GENERATOR, "torch": torch.__version__, "seed": str(seed), "case": case}
    for k, v in params.items():
        m[k] = "none" if v is None else str(v)
    return m


def contiguous(tensors: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    out = {}
    for k, t in tensors.items():
        t = t.detach().contiguous()
        if t.is_floating_point():
            t = t.float()
        elif t.dtype != torch.int64:
            raise TypeError(f"{k}: unexpected dtype {t.dtype}")
        out[k] = t
    return out


@torch.no_grad()
def random_weights(model: R.FluxViT, seed: int) -> None:
    """Random weights of magnitudes that make every part of the model matter (NOT the training init):
    Linear/Conv weights N(0, 1/sqrt(fan_in)); biases N(0, 0.1); norm weights 1+N(0, 0.1);
    LayerScale U(0.3, 1.0); GPE/LPE weights 1+N(0, 0.1), biases N(0, 0.1); pos_embed, cls N(0, 0.5).
    Parameters are drawn in sorted-name order from one generator, so the result depends on the
    names and shapes only."""
    gen = torch.Generator().manual_seed(seed)
    params = dict(model.named_parameters())
    for name in sorted(params):
        p = params[name]
        n = lambda std: torch.randn(p.shape, generator=gen) * std  # noqa: E731
        if name in ("pos_embed", "cls_token"):
            v = n(0.5)
        elif name.endswith(".gamma"):
            v = 0.3 + 0.7 * torch.rand(p.shape, generator=gen)
        elif "depthwise_conv.weight" in name:
            v = 1 + n(0.1)
        elif name.endswith("bias"):  # .bias and the pooling q_bias/k_bias/v_bias
            v = n(0.1)
        elif p.ndim == 1:  # RMSNorm / LayerNorm weights
            v = 1 + n(0.1)
        else:  # Linear (out, in) and the patch Conv3d (out, 3, 1, P, P)
            fan_in = p[0].numel()
            v = n(fan_in ** -0.5)
        p.copy_(v)


def build_tiny(gelu: str = "tanh") -> R.FluxViT:
    model = R.FluxViT(replace(TINY, gelu=gelu))
    random_weights(model, WEIGHT_SEED)
    return model.eval()


def canonicalize_header(path: Path) -> None:
    """Rewrite the safetensors JSON header with sorted keys. save_file's header order varies from
    run to run; a canonical header makes regenerated goldens byte-identical (no spurious diffs).
    The data section is untouched (offsets are relative to it); the header is space-padded to a
    multiple of 8 bytes as the safetensors library does."""
    raw = path.read_bytes()
    n = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8:8 + n])
    text = json.dumps(header, sort_keys=True, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    path.write_bytes(struct.pack("<Q", len(text)) + text + raw[8 + n:])


def write(path: Path, tensors: Dict[str, torch.Tensor], metadata: Dict[str, str]) -> None:
    save_file(contiguous(tensors), str(path), metadata=metadata)
    canonicalize_header(path)
    print(f"  {path.name:34s} {path.stat().st_size:8d} B  " + ", ".join(
        f"{k}{list(t.shape)}" for k, t in sorted(tensors.items()) if not k.startswith(("blocks.", "proj"))))


# --- cases --------------------------------------------------------------------------------------


def write_weights(out: Path) -> None:
    model = build_tiny()
    md = meta(WEIGHT_SEED, "tiny_weights", config=json.dumps(TINY.to_dict(), sort_keys=True))
    write(out / "tiny_weights.safetensors", dict(model.state_dict()), md)


def draw_video(seed: int, shape) -> torch.Tensor:
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed))


@torch.no_grad()
def write_forward(out: Path, base_seed: int) -> None:
    from check_ref import cutoff_is_clear
    for idx, (name, T, size, B, budget, gelu) in enumerate(FORWARD_CASES):
        model = build_tiny(gelu)
        P = TINY.patch_size
        L = (size // P) ** 2
        N = T * L
        selecting = budget is not None and budget < N
        seed = base_seed + 1000 * idx
        while True:
            video = draw_video(seed, (B, 3, T, size, size))
            if not selecting:
                break
            k = R.selection_keep_per_group(T, L, budget)
            imp = R.selection_importance(model.patch_embed(video))
            if all(cutoff_is_clear(imp[b], T, L, k) for b in range(B)):
                break
            seed += 1
        tensors: Dict[str, torch.Tensor] = {"video": video}
        kept: Optional[torch.Tensor] = None
        for j in range(3):
            o = model(video, budget=budget, head=j, return_intermediates=(j == 0))
            for key in ("logits", "feature", "proj0", "proj1"):
                tensors[f"{key}.{j}"] = o[key]
            if j == 0:
                kept = o["kept"]
                inter = o["intermediates"]
                for key in ("patch_embed", "pos_embed", "tokens", "blocks.0.attn.out", "blocks.0.out",
                            "blocks.1.attn.out", "blocks.1.out"):
                    tensors[key] = inter[key]
            else:
                assert (kept is None) == (o["kept"] is None) and (kept is None or torch.equal(kept, o["kept"]))
        if kept is not None:
            tensors["kept"] = kept
        G = R.selection_groups(T) if selecting else None
        k = R.selection_keep_per_group(T, L, budget) if selecting else None
        md = meta(seed, name, frames=T, size=size, batch=B, budget=budget, gelu=gelu, tokens=N,
                  n_kept=(kept.shape[1] if kept is not None else N), groups=G, k_per_group=k,
                  weights="tiny_weights.safetensors", config=json.dumps(replace(TINY, gelu=gelu).to_dict(), sort_keys=True))
        write(out / f"forward_{name}.safetensors", tensors, md)


@torch.no_grad()
def write_resize(out: Path, base_seed: int) -> None:
    for idx, (F_, G, T, h) in enumerate(RESIZE_CASES):
        seed = base_seed + idx
        gen = torch.Generator().manual_seed(seed)
        C = RESIZE_C
        pe = torch.randn(1, 1 + F_ * G * G, C, generator=gen)
        gw = 1 + 0.1 * torch.randn(C, generator=gen)
        gb = 0.1 * torch.randn(C, generator=gen)
        res = R.resize_pos_embed(pe, gw, gb, F_, G, T, h, h)
        name = f"f{F_}g{G}_t{T}h{h}"
        md = meta(seed, name, F=F_, G=G, T=T, h=h, w=h, C=C)
        write(out / f"resize_{name}.safetensors",
              {"pos_embed": pe, "gpe_weight": gw, "gpe_bias": gb, "out": res}, md)


@torch.no_grad()
def write_select(out: Path, base_seed: int) -> None:
    from check_ref import cutoff_is_clear, select_loop
    for idx, (T, L, budget) in enumerate(SELECT_CASES):
        seed = base_seed + 1000 * idx
        k = R.selection_keep_per_group(T, L, budget)
        while True:
            embed = torch.randn(SELECT_B, T, L, SELECT_C, generator=torch.Generator().manual_seed(seed))
            kept, imp = R.select_tokens(embed, budget)
            if all(cutoff_is_clear(imp[b], T, L, k) for b in range(SELECT_B)):
                break
            seed += 1
        assert kept.tolist() == select_loop(embed.numpy(), budget), f"select T={T} L={L} budget={budget}"
        name = f"t{T}_l{L}_k{budget}"
        md = meta(seed, name, T=T, L=L, C=SELECT_C, batch=SELECT_B, budget=budget,
                  groups=R.selection_groups(T), k_per_group=k, n_kept=kept.shape[1],
                  tie_at_cutoff=str(ties_at_cutoff(imp, T, L, k)).lower())
        write(out / f"select_{name}.safetensors", {"embed": embed, "importance": imp, "kept": kept}, md)


def ties_at_cutoff(imp: torch.Tensor, T: int, L: int, k: int) -> bool:
    """Whether some group's cut-off falls between the two entries of a frame 0/1 pair."""
    G = R.selection_groups(T)
    Tg = T // G
    for b in range(imp.shape[0]):
        for g in range(G):
            v = imp[b, g * Tg:(g + 1) * Tg].reshape(-1)
            s = torch.sort(v, descending=True, stable=True).values
            if 0 < k < Tg * L and s[k - 1] == s[k]:
                return True
    return False


def write_config_yaml(path: Path, c: R.FluxViTConfig, budgets, comment: str) -> None:
    lines = [
        comment,
        f"img_size: {c.img_size}",
        f"patch_size: {c.patch_size}",
        f"num_frames: {c.num_frames}",
        f"embed_dim: {c.embed_dim}",
        f"depth: {c.depth}",
        f"num_heads: {c.num_heads}",
        f"mlp_ratio: {c.mlp_ratio:g}",
        f"attn_pool_num_heads: {c.attn_pool_num_heads}",
        f"clip_embed_dim: {c.clip_embed_dim}",
        f"num_classes: {c.num_classes}",
        f"gelu: {c.gelu}",
        f"budgets: [{', '.join(str(b) for b in budgets)}]",
    ]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    print(f"  {path.relative_to(REPO) if path.is_relative_to(REPO) else path}")


def write_tiny_yaml(path: Path) -> None:
    write_config_yaml(path, TINY, TINY_BUDGETS,
                      "# Tiny FluxViT for tests and golden parity (tools/reference/make_goldens.py writes this file).")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=REPO / "Tests" / "FluxViTTests" / "Goldens")
    ap.add_argument("--config-out", type=Path, default=REPO / "configs" / "models" / "tiny-test.yaml")
    ap.add_argument("--train-out", type=Path, default=REPO / "Tests" / "FluxTrainingTests" / "Goldens")
    ap.add_argument("--train-config-out", type=Path, default=REPO / "configs" / "models" / "tiny-train.yaml")
    ap.add_argument("--skip-checks", action="store_true", help="do not run check_ref.py first")
    args = ap.parse_args()
    torch.set_num_threads(2)
    torch.use_deterministic_algorithms(True)
    if not args.skip_checks:
        import check_ref
        check_ref.run_all()
    args.out.mkdir(parents=True, exist_ok=True)
    print(f"writing goldens to {args.out}")
    write_weights(args.out)
    write_forward(args.out, base_seed=100)
    write_resize(args.out, base_seed=200)
    write_select(args.out, base_seed=300)
    write_tiny_yaml(args.config_out)
    total = sum(p.stat().st_size for p in args.out.glob("*.safetensors"))
    print(f"total {total} bytes in {len(list(args.out.glob('*.safetensors')))} files")
    if total > 4 * 1024 * 1024:
        sys.exit(f"goldens total {total} bytes exceeds 4 MB")
    import make_train_goldens
    make_train_goldens.write_all(args.train_out, args.train_config_out)


if __name__ == "__main__":
    main()

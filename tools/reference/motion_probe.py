"""Learnability probe for the synthetic motion dataset (issue #4): is the task learnable, and by what?

Decodes a `fluxctl dataset synth` folder with PyAV (cached as frames.npz beside the manifests), then either
- `--model hand`: a hand-made motion estimator (no learning): for each clip, the shift among right/left/up/down by
  `--shift` pixels that best maps frame t onto frame t+1 (sum of absolute differences); its accuracy says how much
  motion signal the videos carry;
- `--model cnn`: a small 3-D CNN (the classic motion learner), or
- `--model vit`: the PyTorch reference FluxViT (tools/reference/fluxvit_ref.py, spec init) on the tiny-motion grid,
  trained with plain cross-entropy (label smoothing 0.1) and AdamW over the spec's parameter groups,
and prints validation top-1 every 100 steps. Segment sampling as spec §6 (random offset in training, middle at
test); `--single` repeats one sampled frame, picked uniformly (a single-frame control; `fluxctl dataset synth --still`
writes the same control as files).

    $VENV/bin/python tools/reference/motion_probe.py --ds DIR --model vit --steps 1500 --lr 1e-3
"""
import argparse, csv, os, sys, time

import numpy as np
import torch
import torch.nn as nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fluxvit_ref as R  # noqa: E402


def load(ds: str):
    cache = os.path.join(ds, "probe-frames.npz")
    if os.path.exists(cache):
        d = np.load(cache)
        return d["xtr"], d["ytr"], d["xva"], d["yva"]
    import av
    out = []
    for manifest in ("train.csv", "val.csv"):
        xs, ys = [], []
        for row in list(csv.reader(open(os.path.join(ds, manifest))))[1:]:
            with av.open(os.path.join(ds, row[0])) as c:
                xs.append(np.stack([f.to_ndarray(format="rgb24") for f in c.decode(video=0)]))
            ys.append(int(row[1]))
        out += [np.stack(xs), np.array(ys)]
    np.savez(cache, xtr=out[0], ytr=out[1], xva=out[2], yva=out[3])
    return out


def hand(x: np.ndarray, shift: int) -> int:
    """Right, left, up, down: the shift whose motion best explains the clip."""
    v = x.astype(np.float32)
    scores = [np.abs(v[1:] - np.roll(v[:-1], shift=(dy, dx), axis=(1, 2))).sum()
              for dx, dy in ((shift, 0), (-shift, 0), (0, -shift), (0, shift))]
    return int(np.argmin(scores))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--ds", required=True)
    p.add_argument("--model", choices=["hand", "cnn", "vit"], default="vit")
    p.add_argument("--shift", type=int, default=2, help="hand: pixels a frame")
    p.add_argument("--steps", type=int, default=1500)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--frames", type=int, default=8)
    p.add_argument("--patch", type=int, default=16)
    p.add_argument("--dim", type=int, default=64)
    p.add_argument("--depth", type=int, default=2)
    p.add_argument("--layer-decay", type=float, default=1.0)
    p.add_argument("--single", action="store_true", help="single-frame control")
    a = p.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    np.random.seed(0)
    xtr, ytr, xva, yva = load(a.ds)
    if a.model == "hand":
        pred = np.array([hand(x, a.shift) for x in xva])
        print(f"hand-made motion estimator: val top-1 {(pred == yva).mean():.3f}")
        return
    n_frames, size = xtr.shape[1], xtr.shape[2]
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1, 1) * 255
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1, 1) * 255

    def clip(x: np.ndarray, train: bool) -> torch.Tensor:
        seg = max(0.0, (n_frames - 1) / a.frames)
        idx = np.array([[round(seg * i + (np.random.rand() if train else 0.5) * seg) for i in range(a.frames)]
                        for _ in range(len(x))])
        if a.single:  # one of the sampled frames, picked uniformly, everywhere (its time is not given away)
            idx[:] = idx[np.arange(len(x)), np.random.randint(0, a.frames, len(x))][:, None]
        t = torch.from_numpy(np.stack([x[b, idx[b]] for b in range(len(x))])).float().permute(0, 4, 1, 2, 3)
        return (t - mean) / std

    if a.model == "cnn":
        net = nn.Sequential(
            nn.Conv3d(3, 16, (3, 4, 4), stride=(1, 4, 4), padding=(1, 0, 0)), nn.ReLU(),
            nn.Conv3d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool3d((1, 2, 2)),
            nn.Conv3d(32, 64, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool3d(1), nn.Flatten(), nn.Linear(64, 4))
        opt = torch.optim.AdamW(net.parameters(), lr=a.lr, weight_decay=0.05)
        forward = net
    else:
        cfg = R.FluxViTConfig(img_size=size, patch_size=a.patch, num_frames=a.frames, embed_dim=a.dim, depth=a.depth,
                              num_heads=2, mlp_ratio=4, attn_pool_num_heads=4, clip_embed_dim=32, num_classes=4)
        net = R.FluxViT(cfg)
        R.init_weights(net)
        opt = R.make_optimizer(net, 0.05, a.layer_decay)
        forward = lambda x: net(x)["logits"]  # noqa: E731
    loss_fn = nn.CrossEntropyLoss(label_smoothing=0.1)
    start = time.time()
    for step in range(a.steps):
        lr = a.lr * min(1.0, (step + 1) / 20) * 0.5 * (1 + np.cos(np.pi * step / a.steps))
        for g in opt.param_groups:
            g["lr"] = lr * g.get("lr_scale", 1.0)
        i = np.random.randint(0, len(xtr), a.batch)
        loss = loss_fn(forward(clip(xtr[i], True)), torch.from_numpy(ytr[i]))
        opt.zero_grad()
        loss.backward()
        opt.step()
        if (step + 1) % 100 == 0 or step + 1 == a.steps:
            with torch.no_grad():
                val = (forward(clip(xva, False)).argmax(1).numpy() == yva).mean()
                j = np.random.RandomState(1).choice(len(xtr), 256, replace=False)
                train = (forward(clip(xtr[j], False)).argmax(1).numpy() == ytr[j]).mean()
            print(f"step {step + 1} loss {loss.item():.3f} train top-1 {train:.2f} val top-1 {val:.2f} "
                  f"{time.time() - start:.0f}s", flush=True)


if __name__ == "__main__":
    main()

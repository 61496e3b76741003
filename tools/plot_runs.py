#!/usr/bin/env python3
"""Plot `fluxctl train --local` runs as one SVG: validation top-1 and training loss against the step.

Reads OUT/metrics.jsonl of each run (`kind: step` lines for the loss, `kind: validation` lines for top-1; use
`--val-every N` for a curve rather than one end point). Python's standard library only.

    python3 tools/plot_runs.py --run "motion=runs/motion" --run "single-frame control=runs/still" \
        --chance 0.25 --out docs/figures/motion-learning.svg
"""
import argparse
import json
import os
import sys

COLOURS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e"]
W, H = 760, 300          # one panel
LEFT, RIGHT, TOP, BOTTOM = 62, 20, 34, 46


def load(folder: str):
    path = os.path.join(folder, "metrics.jsonl")
    steps, val = [], []
    with open(path) as f:
        for line in f:
            row = json.loads(line)
            if row["kind"] == "step":
                steps.append((row["step"] + 1, row["loss"]))
            elif row["kind"] == "validation":
                val.append((row["step"], [b["top1"] for b in row["budgets"]], [b["budget"] for b in row["budgets"]]))
    if not steps:
        sys.exit(f"error: {path} has no step lines (is it a fluxctl train --out folder?)")
    return steps, val


def smooth(points, window):
    out, acc = [], []
    for x, y in points:
        acc.append(y)
        if len(acc) > window:
            acc.pop(0)
        out.append((x, sum(acc) / len(acc)))
    return out


def panel(y0, title, xmax, ylo, yhi, yticks, fmt, series, chance=None):
    """SVG for one panel at vertical offset y0; series: [(label, colour, points, dashed)]."""
    pw, ph = W - LEFT - RIGHT, H - TOP - BOTTOM
    X = lambda x: LEFT + pw * x / xmax  # noqa: E731
    Y = lambda y: y0 + TOP + ph * (1 - (y - ylo) / (yhi - ylo))  # noqa: E731
    out = [f'<text x="{LEFT}" y="{y0 + 22}" font-size="15" font-weight="bold">{title}</text>']
    for t in yticks:
        out.append(f'<line x1="{LEFT}" x2="{W - RIGHT}" y1="{Y(t):.1f}" y2="{Y(t):.1f}" stroke="#ddd"/>')
        out.append(f'<text x="{LEFT - 8}" y="{Y(t) + 4:.1f}" font-size="12" text-anchor="end">{fmt(t)}</text>')
    step = max(1, round(xmax / 5, -2) or 100)
    for x in range(0, xmax + 1, int(step)):
        out.append(f'<line x1="{X(x):.1f}" x2="{X(x):.1f}" y1="{Y(ylo):.1f}" y2="{Y(ylo) + 5:.1f}" stroke="#444"/>')
        out.append(f'<text x="{X(x):.1f}" y="{Y(ylo) + 19:.1f}" font-size="12" text-anchor="middle">{x}</text>')
    out.append(f'<text x="{LEFT + pw / 2}" y="{y0 + H - 8}" font-size="12" text-anchor="middle">step</text>')
    out.append(f'<rect x="{LEFT}" y="{Y(yhi):.1f}" width="{pw}" height="{ph}" fill="none" stroke="#444"/>')
    if chance is not None:
        out.append(f'<line x1="{LEFT}" x2="{W - RIGHT}" y1="{Y(chance):.1f}" y2="{Y(chance):.1f}" stroke="#888" '
                   f'stroke-dasharray="6 4"/>')
        out.append(f'<text x="{W - RIGHT - 4}" y="{Y(chance) + 15:.1f}" font-size="12" fill="#666" '
                   f'text-anchor="end">chance</text>')
    for i, (label, colour, points, marks) in enumerate(series):
        clipped = [(x, min(max(y, ylo), yhi)) for x, y in points]
        path = " ".join(f"{X(x):.1f},{Y(y):.1f}" for x, y in clipped)
        out.append(f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="2"/>')
        if marks:
            out += [f'<circle cx="{X(x):.1f}" cy="{Y(y):.1f}" r="3" fill="{colour}"/>' for x, y in clipped]
        ly = y0 + TOP + ph / 2 - 9 * len(series) + 18 * i + 4  # legend mid-height, right: clear of the curves here
        out.append(f'<line x1="{W - RIGHT - 230}" x2="{W - RIGHT - 206}" y1="{ly - 4}" y2="{ly - 4}" '
                   f'stroke="{colour}" stroke-width="3"/>')
        out.append(f'<text x="{W - RIGHT - 200}" y="{ly}" font-size="12">{label}</text>')
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run", action="append", required=True, help="LABEL=FOLDER (a fluxctl train --out folder)")
    p.add_argument("--chance", type=float, help="draw the chance level of top-1 (e.g. 0.25 for 4 classes)")
    p.add_argument("--smooth", type=int, default=20, help="moving-average window for the loss, in steps")
    p.add_argument("--out", required=True, help="SVG file to write")
    a = p.parse_args()
    runs = []
    for spec in a.run:
        if "=" not in spec:
            sys.exit(f"error: --run takes LABEL=FOLDER, got '{spec}'")
        label, folder = spec.split("=", 1)
        runs.append((label, *load(folder)))
    xmax = max(s[-1][0] for _, s, _ in runs)
    top = [(label, COLOURS[i % len(COLOURS)], [(x, t[0]) for x, t, _ in val], True)
           for i, (label, _, val) in enumerate(runs)]
    budget = next((v[0][2][0] for _, _, v in runs if v), None)
    losses = [(label, COLOURS[i % len(COLOURS)], smooth(s, a.smooth), False) for i, (label, s, _) in enumerate(runs)]
    lmax = max(y for _, _, pts, _ in losses for _, y in pts)
    lmin = min(y for _, _, pts, _ in losses for _, y in pts)
    gap = 0.5 if lmax - lmin <= 4 else 1.0
    lo, hi = (lmin // gap) * gap, (lmax // gap + 1) * gap
    ticks = [lo + gap * k for k in range(int(round((hi - lo) / gap)) + 1)]
    body = panel(0, f"Validation top-1 (head 0, budget {budget})", xmax, 0, 1, [0, 0.25, 0.5, 0.75, 1],
                 lambda t: f"{t * 100:.0f}%", top, a.chance)
    body += panel(H, f"Training loss (Flux loss, all heads; moving average of {a.smooth} steps)", xmax, lo, hi,
                  ticks, lambda t: f"{t:.1f}", losses)
    svg = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{2 * H}" '
           f'font-family="DejaVu Sans, Helvetica, Arial, sans-serif">', f'<rect width="{W}" height="{2 * H}" fill="white"/>']
    with open(a.out, "w") as f:
        f.write("\n".join(svg + body + ["</svg>"]) + "\n")
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()

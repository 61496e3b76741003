"""Anchor benchmark: the per-clip cost of video sampling in decord, PyAV and the ffmpeg tool.

The figures `flux-bench video` is compared against (`make bench`, design §6). Each timed run does
the whole job for one clip, as `flux-bench video` does: open the file, find the frames, decode,
convert to RGB at the model's size, and (sparse modes) stack and normalize to a float32
[3, T, 224, 224] array.

Modes (--modes, comma-separated):
  sparse8, sparse16  spec §6 test sampling of T frames (one clip: the segment middles, the indices
                     of Sources/FluxVideo/FrameSampling.swift testIndices), each frame resized so its
                     short side is --size, centre-cropped to --size², normalized with ImageNet's
                     mean/std into [3, T, size, size] float32.
  full               every frame decoded and converted to RGB uint8 at --size² (same resize and crop),
                     not normalized.

Engines (--engines, comma-separated):
  decord        decord.VideoReader(path, width, height, num_threads) + get_batch(indices) (sparse);
                get_batch over consecutive chunks of 32 frames (full). decord resizes in its own
                sws_scale; the centre crop is a numpy slice.
  pyav          PyAV, thread_type AUTO with --threads threads. Sparse: two strategies, both reported:
                "seek": demux the packet index once (pts and keyframe flags, as flux-bench does at
                open), then for each group of wanted frames sharing a keyframe seek to that keyframe
                and decode forward until the group is out; "forward": decode from the start, keep the
                wanted frames (by output count), stop after the last. Frames convert with
                frame.to_ndarray(width, height, format="rgb24") (one sws_scale) and a numpy crop.
  ffmpeg        the ffmpeg tool decoding the whole file, `ffmpeg -threads N -i FILE -f null -`,
                timed as a subprocess (process start included; no conversion to RGB): full only.

Usage:
    $VENV/bin/python tools/anchors/video_bench.py FILE [--modes sparse8,sparse16,full]
        [--engines decord,pyav,ffmpeg] [--size 224] [--threads 2] [--runs 10] [--warmup 1] [--check]

stdout: one JSON object per engine (and strategy) and mode, e.g.
    {"engine": "pyav", "strategy": "seek", "mode": "sparse8", "median_s": 0.081, "frames": 8,
     "decoded_frames": 151, "frame_count": 300, "file": ..., "threads": 2, "runs_s": [...], ...}
Progress goes to stderr. --check compares each engine's sparse frames with PyAV's decode-forward
frames (untimed, before timing) and reports the largest pixel difference.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)
# One lookup table per channel, as ClipTransforms.tensor does: (v/255 − mean)/std for v in 0...255.
TABLES = [((np.arange(256, dtype=np.float32) / 255) - MEAN[c]) / STD[c] for c in range(3)]


def log(msg: str) -> None:
    print(f"video_bench: {msg}", file=sys.stderr, flush=True)


def test_indices(n: int, t: int) -> list[int]:
    """FrameSampling.testIndices(frameCount: n, count: t) with one clip: the segment middles."""
    seg = max(0.0, (n - 1) / t)
    offset = int(seg / 2 * 1)  # seg/(clips+1)·(clip+1), clips = 1, clip = 0; int() truncates
    return [min(round(seg * i) + offset, n - 1) for i in range(t)]  # Python's round: half to even


def resized_geometry(width: int, height: int, size: int) -> tuple[int, int, int, int]:
    """Short side to `size`, long side scaled (rounded); then the centre crop's offsets (x, y)."""
    if width >= height:
        w, h = round(width * size / height), size
    else:
        w, h = size, round(height * size / width)
    return w, h, round((w - size) / 2), round((h - size) / 2)


def normalize(frames: np.ndarray) -> np.ndarray:
    """[T, H, W, 3] uint8 → [3, T, H, W] float32, (v/255 − mean)/std per channel."""
    out = np.empty((3,) + frames.shape[:3], dtype=np.float32)
    for c in range(3):
        np.take(TABLES[c], frames[..., c], out=out[c])
    return out


def probe(path: str) -> tuple[int, int, int]:
    """(width, height, frame count) by PyAV, counting packets (untimed)."""
    import av

    with av.open(path) as container:
        stream = container.streams.video[0]
        count = sum(1 for p in container.demux(stream) if p.size > 0)
        return stream.codec_context.width, stream.codec_context.height, count


# ---------------------------------------------------------------- decord


def make_decord(width: int, height: int):
    import decord

    decord.bridge.set_bridge("native")

    def sparse(path: str, t: int, size: int, threads: int):
        w, h, x0, y0 = resized_geometry(width, height, size)
        vr = decord.VideoReader(path, width=w, height=h, num_threads=threads)
        indices = test_indices(len(vr), t)
        frames = vr.get_batch(indices).asnumpy()[:, y0:y0 + size, x0:x0 + size]
        return normalize(frames), None

    def full(path: str, size: int, threads: int):
        w, h, x0, y0 = resized_geometry(width, height, size)
        vr = decord.VideoReader(path, width=w, height=h, num_threads=threads)
        n = len(vr)
        kept = 0
        for start in range(0, n, 32):
            batch = vr.get_batch(list(range(start, min(n, start + 32)))).asnumpy()
            kept += np.ascontiguousarray(batch[:, y0:y0 + size, x0:x0 + size]).shape[0]
        return kept

    return sparse, full


# ---------------------------------------------------------------- PyAV


def _open_av(path: str, threads: int):
    import av

    from av.video.reformatter import VideoReformatter

    container = av.open(path)
    stream = container.streams.video[0]
    stream.thread_type = "AUTO"
    stream.codec_context.thread_count = threads
    return container, stream, VideoReformatter()


def _rgb(reformatter, frame, w: int, h: int, x0: int, y0: int, size: int) -> np.ndarray:
    # One VideoReformatter per file keeps its SwsContext across frames; frame.to_ndarray(width=…) would set up a
    # new one for every frame (5× slower on a full decode at 340×256).
    rgb = reformatter.reformat(frame, width=w, height=h, format="rgb24", interpolation="BILINEAR")
    return rgb.to_ndarray()[y0:y0 + size, x0:x0 + size]


def pyav_sparse_seek(path: str, t: int, size: int, threads: int):
    """Packet index by demuxing, then one seek per group of wanted frames sharing a keyframe."""
    container, stream, reformatter = _open_av(path, threads)
    try:
        packets = [(p.pts, p.is_keyframe) for p in container.demux(stream) if p.pts is not None]
        order = sorted(pts for pts, _ in packets)
        keys = sorted(pts for pts, key in packets if key)
        width, height = stream.codec_context.width, stream.codec_context.height
        w, h, x0, y0 = resized_geometry(width, height, size)
        indices = test_indices(len(order), t)
        wanted = {order[i]: i for i in indices}
        groups: dict[int, set[int]] = {}
        for pts in wanted:
            key = max((k for k in keys if k <= pts), default=keys[0])
            groups.setdefault(key, set()).add(pts)
        got: dict[int, np.ndarray] = {}
        decoded = 0
        for key in sorted(groups):
            members = groups[key]
            container.seek(key, backward=True, any_frame=False, stream=stream)
            for frame in container.decode(stream):
                decoded += 1
                if frame.pts in members and frame.pts not in got:
                    got[frame.pts] = _rgb(reformatter, frame, w, h, x0, y0, size)
                if all(m in got for m in members):
                    break
        frames = np.stack([got[order[i]] for i in indices])
        return normalize(frames), decoded
    finally:
        container.close()


def pyav_sparse_forward(path: str, t: int, size: int, threads: int, frame_count: int):
    """Decode from the start; frame i is the i-th frame out (the ffmpeg tool's numbering)."""
    container, stream, reformatter = _open_av(path, threads)
    try:
        width, height = stream.codec_context.width, stream.codec_context.height
        w, h, x0, y0 = resized_geometry(width, height, size)
        # A loader takes the count from the container; these files (mp4) declare it.
        n = stream.frames or frame_count
        indices = test_indices(n, t)
        wanted = set(indices)
        last = max(indices)
        got: dict[int, np.ndarray] = {}
        decoded = 0
        for i, frame in enumerate(container.decode(stream)):
            decoded += 1
            if i in wanted:
                got[i] = _rgb(reformatter, frame, w, h, x0, y0, size)
            if i >= last:
                break
        return normalize(np.stack([got[i] for i in indices])), decoded
    finally:
        container.close()


def pyav_full(path: str, size: int, threads: int) -> int:
    container, stream, reformatter = _open_av(path, threads)
    try:
        width, height = stream.codec_context.width, stream.codec_context.height
        w, h, x0, y0 = resized_geometry(width, height, size)
        n = 0
        for frame in container.decode(stream):
            np.ascontiguousarray(_rgb(reformatter, frame, w, h, x0, y0, size))
            n += 1
        return n
    finally:
        container.close()


# ---------------------------------------------------------------- timing


def measure(fn, runs: int, warmup: int) -> tuple[float, list[float], object]:
    result = None
    for _ in range(warmup):
        result = fn()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), times, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("file")
    parser.add_argument("--modes", default="sparse8,sparse16,full")
    parser.add_argument("--engines", default="decord,pyav,ffmpeg")
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--full-runs", type=int, default=None, help="runs for mode full (default: --runs)")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--check", action="store_true", help="compare sparse frames across engines first")
    args = parser.parse_args()

    path = str(Path(args.file).resolve())
    width, height, frame_count = probe(path)
    engines = [e for e in args.engines.split(",") if e]
    modes = [m for m in args.modes.split(",") if m]
    full_runs = args.full_runs or args.runs
    log(f"{path}: {width}×{height}, {frame_count} frames; engines {engines}, modes {modes}")
    base = {"file": path, "width": width, "height": height, "frame_count": frame_count, "size": args.size,
            "threads": args.threads, "warmup": args.warmup, "python": platform.python_version()}

    decord_sparse_fn = decord_full_fn = None
    versions = {}
    if "decord" in engines:
        import decord

        versions["decord"] = decord.__version__
        decord_sparse_fn, decord_full_fn = make_decord(width, height)
    if "pyav" in engines:
        import av

        versions["pyav"] = av.__version__
        versions["pyav_ffmpeg"] = av.ffmpeg_version_info
    if "ffmpeg" in engines:
        versions["ffmpeg"] = subprocess.run(["ffmpeg", "-version"], capture_output=True, text=True).stdout.split()[2]

    def emit(engine: str, strategy: str | None, mode: str, median: float, times: list[float], **extra) -> None:
        rec = dict(base, engine=engine, mode=mode, median_s=median, min_s=min(times), max_s=max(times),
                   runs_s=times, runs=len(times), version=versions.get(engine), **extra)
        if strategy:
            rec["strategy"] = strategy
        if engine == "pyav":
            rec["ffmpeg_libs"] = versions.get("pyav_ffmpeg")
        rec["load_average"] = list(os.getloadavg())
        log(f"{engine}{'/' + strategy if strategy else ''} {mode}: median {median * 1e3:.1f} ms "
            f"(min {min(times) * 1e3:.1f}, max {max(times) * 1e3:.1f})")
        print(json.dumps(rec), flush=True)

    for mode in modes:
        if mode.startswith("sparse"):
            t = int(mode[len("sparse"):])
            indices = test_indices(frame_count, t)
            candidates = []
            if "decord" in engines:
                candidates.append(("decord", None, lambda: decord_sparse_fn(path, t, args.size, args.threads)))
            if "pyav" in engines:
                candidates.append(("pyav", "seek", lambda: pyav_sparse_seek(path, t, args.size, args.threads)))
                candidates.append(("pyav", "forward",
                                   lambda: pyav_sparse_forward(path, t, args.size, args.threads, frame_count)))
            reference = None
            if args.check and candidates:
                reference = pyav_sparse_forward(path, t, args.size, args.threads, frame_count)[0] \
                    if "pyav" in engines else None
            for engine, strategy, fn in candidates:
                median, times, result = measure(fn, args.runs, args.warmup)
                clip, decoded = result
                extra = {"frames": t, "indices": indices, "shape": list(clip.shape)}
                if decoded is not None:
                    extra["decoded_frames"] = decoded
                if reference is not None:
                    # Normalized values: one 8-bit step is 1/(255·std) ≈ 0.017.
                    extra["max_abs_diff_vs_pyav_forward"] = float(np.abs(clip - reference).max())
                emit(engine, strategy, mode, median, times, **extra)
        elif mode == "full":
            if "decord" in engines:
                median, times, n = measure(lambda: decord_full_fn(path, args.size, args.threads), full_runs,
                                           args.warmup)
                emit("decord", None, mode, median, times, decoded_frames=n)
            if "pyav" in engines:
                median, times, n = measure(lambda: pyav_full(path, args.size, args.threads), full_runs, args.warmup)
                emit("pyav", None, mode, median, times, decoded_frames=n)
            if "ffmpeg" in engines:
                cmd = ["ffmpeg", "-v", "error", "-nostdin", "-threads", str(args.threads), "-i", path, "-f", "null", "-"]
                median, times, _ = measure(lambda: subprocess.run(cmd, check=True), full_runs, args.warmup)
                emit("ffmpeg", None, mode, median, times, decoded_frames=frame_count, command=" ".join(cmd),
                     note="decode only, no RGB conversion; process start included")
        else:
            parser.error(f"unknown mode {mode!r}")


if __name__ == "__main__":
    main()

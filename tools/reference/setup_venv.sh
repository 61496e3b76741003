#!/usr/bin/env bash
# Create (if missing) the Python venv used by tools/reference and tools/anchors, and install
# tools/reference/requirements.txt into it (decord and PyAV for the video anchors too). The venv
# lives outside the repository:
#   ${FLUX_VENV:-$HOME/.cache/flux/venv}
# Idempotent: when the venv exists and holds exactly these requirements, it returns at once.
# Prints nothing but errors and progress on stderr; prints the venv's python path on stdout.
# Needs PyPI only (the torch wheel brings the nvidia packages with it: that is expected).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
req="$here/requirements.txt"
venv="${FLUX_VENV:-$HOME/.cache/flux/venv}"
python="${PYTHON:-python3}"
need_gb=8
stamp="$venv/.flux-requirements"

log() { echo "setup_venv: $*" >&2; }

req_hash() { sha256sum "$req" | cut -d' ' -f1; }

# Fast path: venv present, stamp matches the requirements, and the packages import.
if [[ -x "$venv/bin/python" && -f "$stamp" && "$(cat "$stamp")" == "$(req_hash)" ]]; then
    if "$venv/bin/python" -c 'import torch, safetensors, numpy, onnx, onnxruntime, decord, av' 2>/dev/null; then
        echo "$venv/bin/python"
        exit 0
    fi
    log "venv at $venv is stale or broken; reinstalling"
fi

# Free-space check on the disk that will hold the venv (nearest existing ancestor).
probe="$venv"
while [[ ! -d "$probe" ]]; do probe="$(dirname "$probe")"; done
avail_kb="$(df -Pk "$probe" | awk 'NR==2 {print $4}')"
if [[ ! -x "$venv/bin/python" ]] && (( avail_kb < need_gb * 1024 * 1024 )); then
    echo "setup_venv: error: only $((avail_kb / 1024 / 1024)) GB free on the disk holding $probe;" \
         "the venv (torch with its nvidia wheels) needs at least ${need_gb} GB." \
         "Free some space or set FLUX_VENV to a directory on a larger disk." >&2
    exit 1
fi

if ! command -v "$python" >/dev/null 2>&1; then
    echo "setup_venv: error: '$python' not found; install Python 3.10+ or set PYTHON=/path/to/python3" >&2
    exit 1
fi

if [[ ! -x "$venv/bin/python" ]]; then
    log "creating venv at $venv with $("$python" --version 2>&1)"
    mkdir -p "$(dirname "$venv")"
    "$python" -m venv "$venv"
fi

log "installing $(grep -cv '^\s*\(#\|$\)' "$req") packages from $req (a few minutes the first time)"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip >&2
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$req" >&2
"$venv/bin/python" -c 'import torch, safetensors, numpy, onnx, onnxruntime, decord, av' >&2
req_hash > "$stamp"
log "ready: torch $("$venv/bin/python" -c 'import torch; print(torch.__version__)')"
echo "$venv/bin/python"

#!/usr/bin/env bash
# Installs the Debian packages Flux builds and tests with, when any is missing; a no-op otherwise.
set -euo pipefail
packages=(libzmq3-dev libopenblas-dev libavcodec-dev libavformat-dev libavutil-dev libswscale-dev pkg-config ffmpeg)
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
echo "installing missing packages: ${missing[*]}"
sudo=""
[ "$(id -u)" -ne 0 ] && sudo="sudo"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"

#!/bin/sh
# pipelines/deps.sh - install the Debian packages tk needs that are missing.
# As root it runs apt-get; otherwise it prints the command to run and stops
# (exit 1).  Both README Quick start commands call it first.
#
# Build: gcc, make, pkg-config, OpenBLAS, libjpeg-turbo, libpng, libarchive,
# cJSON; g++ for the CUDA emulator (tests/emu).  Pipelines: GNU parallel.
# Tests and benchmarks: Debian's PyTorch, torchvision, NumPy, Pillow
# (/usr/bin/python3), clang (fuzzing), OpenBLAS's OpenMP build (one test
# runs tk-train on it; Debian's alternatives keep the pthread build the
# system's, by priority).  Demo and tests: real photographs
# from mate-backgrounds and plasma-workspace-wallpapers.
set -eu
pkgs="gcc g++ make pkg-config libopenblas-dev libjpeg-dev libpng-dev
libarchive-dev libcjson-dev parallel python3 python3-torch python3-torchvision
python3-numpy python3-pil clang libopenblas0-openmp mate-backgrounds plasma-workspace-wallpapers"

missing=""
for p in $pkgs; do
	s=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
	case "$s" in
	*" installed") ;;
	*) missing="$missing $p" ;;
	esac
done
[ -z "$missing" ] && exit 0

cmd="apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends$missing"
if [ "$(id -u)" != 0 ]; then
	echo "tk: missing Debian packages:$missing" >&2
	echo "tk: as root, run: $cmd" >&2
	exit 1
fi
echo "tk: installing$missing" >&2
sh -c "$cmd" >&2

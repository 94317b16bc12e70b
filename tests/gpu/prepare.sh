#!/bin/bash
# tests/gpu/prepare.sh - run HERE (Debian, with apt), before a GPU check:
# downloads the Debian packages that the build needs and a GPU machine
# lacks (OpenBLAS, libjpeg, libpng, libarchive, cJSON: headers, link
# libraries and their run-time dependencies; GNU parallel, for
# gpu-eval) into .carry/, which git
# ignores and tests/gpu/check.sh unpacks there with dpkg -x.  About 25 MB.
#
#   tests/gpu/prepare.sh && du -sh .carry
#
# Then, on the GPU machine, with .carry carried along:
#   bash tests/gpu/check.sh
set -eu
cd "$(dirname "$0")/../.."
pkgs="libopenblas-dev libopenblas-pthread-dev libopenblas0-pthread libgfortran5
libquadmath0 libjpeg62-turbo-dev libjpeg62-turbo libpng-dev libpng16-16
zlib1g-dev libarchive-dev libarchive13 libxml2 libicu72 libnettle8 liblz4-1
libzstd1 libacl1 liblzma5 libbz2-1.0 libcjson-dev libcjson1 parallel"
mkdir -p .carry
rm -f .carry/*.deb
get() { (cd .carry && apt-get -qq download $pkgs 2>&1 | grep -v unsandboxed); }
get || true
if [ "$(ls .carry/*.deb 2>/dev/null | wc -l)" -lt "$(echo $pkgs | wc -w)" ]; then
	apt-get update -qq
	get || true
fi
# Plain names: '%3a' (an epoch's colon) is not a character every copier
# keeps.
for f in .carry/*%3a*.deb; do [ -e "$f" ] && mv "$f" "${f//%3a/_}"; done
ls .carry/*.deb | wc -l | sed 's/$/ packages in .carry/'
du -sh .carry

#!/bin/bash
# pipelines/extract-shard.sh - the descriptors of one shard of an image list,
# for pipelines/eval.mk (run by GNU parallel, locally or on --sshlogin hosts,
# which then need the same paths).
#
#   extract-shard.sh BIN MODEL MAX_SIZE SCALES THREADS JOBS DEVICE PRECISION GPUS DAMAGED LIST I N OUT
#
# Shard I of N is the contiguous run of lines floor(I*L/N)+1 ..
# floor((I+1)*L/N) of LIST (tk-list lines, L of them), so the shards joined
# in order are the list in order.  They go through
#   tk-decode --max-size MAX_SIZE | tk-extract | tk-aggregate
# (queries are cropped to the bbox of their line) into OUT, written under a
# temporary name and renamed when complete and checked to hold one frame per
# line; an existing OUT is kept, so a finished shard is never recomputed.
# BIN: the tools' folder ('' or '-': PATH); SCALES, PRECISION: '-' for
# the tools' defaults.  THREADS: the threads of tk-extract and
# tk-aggregate; '-': this machine's share for one of the JOBS jobs it runs
# at once (its cores as nproc counts them - the CPU affinity, or
# OMP_NUM_THREADS where set - divided by JOBS, at least 1; JOBS '-': one
# job a core, so 1), computed here, on the machine that runs the job, so
# that the jobs do not each take every core.  DAMAGED 1: tk-decode --damaged (damaged
# JPEGs decoded as the reference's loader does, a warning each on this
# job's standard error), 0: such a JPEG stops the job.  DEVICE cuda: tk-extract and tk-aggregate
# on one of this machine's GPUS GPUs, the first free one: a job holds GPU
# k by a lock on ${TMPDIR:-/tmp}/tk-gpu-UID-k.lock while it runs, and one
# that finds them all taken waits, so that jobs share no GPU whatever job
# slot and host GNU parallel gives them.  DEVICE '-' or cpu: the CPU.
set -euo pipefail
[ $# = 14 ] || {
	echo "usage: $0 BIN MODEL MAX_SIZE SCALES THREADS JOBS DEVICE PRECISION GPUS DAMAGED LIST I N OUT" >&2
	exit 1
}
bin=$1 model=$2 max=$3 scales=$4 threads=$5 jobs=$6 device=$7 precision=$8 gpus=$9
damaged=${10} list=${11} i=${12} n=${13} out=${14}
[ -e "$out" ] && exit 0
# libgomp's idle threads spin less (as eval.mk sets it, for a job on
# another host too): see tk-extract(1), ENVIRONMENT.
[ -n "${OMP_WAIT_POLICY:-}" ] || export GOMP_SPINCOUNT=${GOMP_SPINCOUNT:-30000}
tk=""
[ -n "$bin" ] && [ "$bin" != - ] && tk="$bin/"
lines=$(wc -l <"$list")
from=$((i * lines / n)) to=$(((i + 1) * lines / n))
xopt=(--model "$model")
[ "$scales" != - ] && xopt+=(--scales "$scales")
threads=$(bash "$(dirname "$0")/job-threads.sh" "$threads" "$jobs")
topt=(--threads "$threads")
dopt=(--quiet)
case $damaged in
0) ;;
1) dopt=(--damaged) ;; # its warnings shown (no progress: not a terminal)
*) echo "extract-shard.sh: DAMAGED=$damaged: 0 or 1" >&2; exit 1 ;;
esac
case $device in
- | cpu) ;;
cuda)
	[[ $gpus =~ ^[1-9][0-9]*$ ]] || { echo "extract-shard.sh: GPUS=$gpus: not a count of GPUs" >&2; exit 1; }
	k=0
	until exec {lock}>"${TMPDIR:-/tmp}/tk-gpu-$(id -u)-$k.lock" && flock -n "$lock"; do
		exec {lock}>&-
		k=$(((k + 1) % gpus))
		[ "$k" = 0 ] && sleep 1 # all taken: a job ends soon
	done
	topt+=(--device "cuda:$k")
	[ "$precision" != - ] && topt+=(--precision "$precision")
	;;
*) echo "extract-shard.sh: DEVICE=$device: cpu or cuda" >&2; exit 1 ;;
esac
tmp="$out.tmp.$$"
trap 'rm -f "$tmp"' EXIT
sed -n "$((from + 1)),${to}p" "$list" |
	"${tk}tk-decode" "${dopt[@]}" --max-size "$max" |
	"${tk}tk-extract" --quiet "${xopt[@]}" "${topt[@]}" |
	"${tk}tk-aggregate" --quiet --model "$model" "${topt[@]}" >"$tmp"
got=$("${tk}tk-cat" --info "$tmp" | wc -l)
if [ "$got" != $((to - from)) ]; then
	echo "extract-shard.sh: $out: $got descriptors for $((to - from)) images" >&2
	exit 2
fi
mv "$tmp" "$out"

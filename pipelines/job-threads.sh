#!/bin/bash
# pipelines/job-threads.sh - the threads of one of the jobs a machine of
# pipelines/eval.mk's runs at once, printed; run on that machine.
#
#   job-threads.sh THREADS JOBS
#
# THREADS when given (not '-'); else the machine's cores (nproc) shared
# among its JOBS jobs, at least 1; with JOBS '-' (GNU parallel's one job
# a core), 1.  extract-shard.sh's tk-extract and tk-aggregate and a
# distractor shard's tk-rank take it, so that the jobs do not each take
# every core.
set -eu
[ $# = 2 ] || {
	echo "usage: $0 THREADS JOBS" >&2
	exit 1
}
threads=$1 jobs=$2
if [ "$threads" != - ]; then
	echo "$threads"
elif [ "$jobs" = - ]; then
	echo 1
else
	[[ $jobs =~ ^[1-9][0-9]*$ ]] || { echo "job-threads.sh: JOBS=$jobs: not a count of jobs" >&2; exit 1; }
	t=$(($(nproc) / jobs))
	echo $((t >= 1 ? t : 1))
fi

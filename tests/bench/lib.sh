# tests/bench/lib.sh - sourced by the shell benchmarks.
#
# best REPEAT TIMEFILE DECIMALS CMD...: run CMD (output discarded) REPEAT
# times under /usr/bin/time and print the fastest run's "wall cpu
# maxrss_MB": seconds with DECIMALS places, cpu being user + system.
best() {
	local repeat=$1 tf=$2 dec=$3 b="" t
	shift 3
	for _ in $(seq "$repeat"); do
		/usr/bin/time -o "$tf" -f "%e %U %S %M" "$@" >/dev/null
		t=$(awk -v d="$dec" '{printf "%.*f %.*f %.1f", d, $1, d, $2 + $3, $4 / 1024}' "$tf")
		if [ -z "$b" ] || awk -v a="$t" -v b="$b" 'BEGIN{split(a,x," ");split(b,y," ");exit !(x[1]<y[1])}'; then b=$t; fi
	done
	echo "$b"
}

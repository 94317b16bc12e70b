# tests/bench/lib.sh - sourced by the shell benchmarks.
#
# photographs: the array "photos", Debian's 23 photographs of 1280x1024 to
# 2560x1920 (mate-backgrounds' 12, plasma-workspace-wallpapers' 11), read
# once into the page cache; exits when neither package is installed.
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

photographs() {
	photos=()
	local f d
	for f in /usr/share/backgrounds/mate/nature/*.jpg; do [ -f "$f" ] && photos+=("$f"); done
	for d in BytheWater ColdRipple ColorfulCups DarkestHour EveningGlow FallenLeaf \
		Grey Kite OneStandsOut Path summer_1am; do
		f=/usr/share/wallpapers/$d/contents/images/2560x1600.jpg
		[ -f "$f" ] && photos+=("$f")
	done
	[ ${#photos[@]} -gt 0 ] ||
		{ echo "needs mate-backgrounds and plasma-workspace-wallpapers" >&2; exit 1; }
	cat "${photos[@]}" >/dev/null
}

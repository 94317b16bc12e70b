#!/bin/bash
# pipelines/train-config.sh - the options that a pipelines/train.mk run
# was started with, checked before the run goes on.
#
#   train-config.sh DIR CSV LINE...
#
# DIR/config holds the LINEs (train.mk's cfg: the options that define the
# run, as NAME=VALUE) and the SHA-256 of CSV, the data set's list
# (train_clean.csv or train.csv), so that DATA may move but not change.
# A new or empty DIR gets them.  A DIR whose config holds the same is left
# alone, the file's time too, so that make remakes nothing.  Any other DIR
# stops the run with a message and is left as it is: its lists and epochs
# were made with other options, or, without a config, by an older
# train.mk, and are neither reused nor removed (days of training are not
# thrown away for a typo).
set -euo pipefail
[ $# -ge 2 ] || {
	echo "usage: $0 DIR CSV LINE..." >&2
	exit 1
}
dir=$1 csv=$2
shift 2
[ -r "$csv" ] || {
	echo "train.mk: no $csv: DATA is the GLDv2 folder holding $(basename "$csv") and train/" >&2
	exit 1
}
sum=$(sha256sum <"$csv")
want=$(printf '%s\n' "$@" "$(basename "$csv")=sha256:${sum%% *}")
mkdir -p "$dir"
refuse() {
	{
		echo "train.mk: OUT=$dir is a run with other options:"
		diff <(cat "$dir/config") <(echo "$want") | sed -n 's/^</  then:/p; s/^>/  now: /p' || true
		echo "train.mk: nothing was done: run with the options of then ($dir/config)," \
			"or give another OUT for a new run"
	} >&2
	exit 1
}
if [ -e "$dir/config" ]; then
	[ "$(cat "$dir/config")" = "$want" ] || refuse
	exit 0
fi
if [ -n "$(ls -A "$dir" | grep -v -e '^config\.' -e '^\.lock$')" ]; then
	echo "$want" >"$dir/config.new"
	{
		echo "train.mk: OUT=$dir holds files but no config (an older train.mk's?), so their options are unknown"
		echo "train.mk: nothing was done: give another OUT, or, if they were made with these options" \
			"(cat $dir/config.new), go on with them: mv $dir/config.new $dir/config"
	} >&2
	exit 1
fi
# A new folder: the config is linked into place, never over another's (two
# runs started at once in one new OUT; renamed where the file system has
# no links), and then checked like any other.
echo "$want" >"$dir/config.tmp.$$"
ln "$dir/config.tmp.$$" "$dir/config" 2>/dev/null ||
	[ -e "$dir/config" ] || mv "$dir/config.tmp.$$" "$dir/config"
rm -f "$dir/config.tmp.$$"
[ "$(cat "$dir/config")" = "$want" ] || refuse

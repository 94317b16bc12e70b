#!/bin/bash
# pipelines/folder-config.sh - the settings that what a folder of
# pipelines/eval.mk's or train.mk's holds was made with, checked before
# anything in the folder is used or added to.
#
#   folder-config.sh MK NAME DIR WHAT AGAIN LINE...
#
# DIR/config holds the LINEs (the make file's cfg: the settings that
# define what DIR holds).  A new or empty DIR gets them.  A DIR whose
# config holds the same is left alone, the file's time too, so that make
# remakes nothing.  Any other DIR stops the run with a message and is
# left as it is: its files were made with other settings, or, without a
# config, by an older make file, and are neither reused nor removed (days
# of work are not thrown away for a typo).  MK (eval.mk, train.mk), NAME
# (the make variable that names DIR), WHAT (what DIR holds) and AGAIN
# (the way on besides another NAME) are for the messages.
set -euo pipefail
[ $# -ge 6 ] || {
	echo "usage: $0 MK NAME DIR WHAT AGAIN LINE..." >&2
	exit 1
}
mk=$1 name=$2 dir=$3 what=$4 again=$5
shift 5
want=$(printf '%s\n' "$@")
mkdir -p "$dir"
refuse() {
	{
		echo "$mk: $name=$dir holds $what made with other settings:"
		diff <(cat "$dir/config") <(echo "$want") | sed -n 's/^</  then:/p; s/^>/  now: /p' || true
		echo "$mk: nothing was done: give another $name, or $again"
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
		echo "$mk: $name=$dir holds files but no config (an older $mk's?), so their settings are unknown"
		echo "$mk: nothing was done: give another $name, or, if they were made with these" \
			"settings (cat $dir/config.new), keep them: mv $dir/config.new $dir/config"
	} >&2
	exit 1
fi
# A new folder: the config is linked into place, never over another's (two
# runs started at once in one new folder; renamed where the file system
# has no links), and then checked like any other.
echo "$want" >"$dir/config.tmp.$$"
ln "$dir/config.tmp.$$" "$dir/config" 2>/dev/null ||
	[ -e "$dir/config" ] || mv "$dir/config.tmp.$$" "$dir/config"
rm -f "$dir/config.tmp.$$"
[ "$(cat "$dir/config")" = "$want" ] || refuse

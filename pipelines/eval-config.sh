#!/bin/bash
# pipelines/eval-config.sh - the settings that the descriptors in a folder
# of pipelines/eval.mk's were made with, checked before anything in the
# folder is used.
#
#   eval-config.sh DIR NAME LINE...
#
# DIR/config holds the LINEs (the model file's path, size and time, the
# data folder, MAX_SIZE, ...: eval.mk's cfg).  A new or empty DIR gets
# them.  A DIR whose config holds the same is left alone, the file's time
# too, so that make remakes nothing.  Any other DIR stops the run with a
# message and is left as it is: its files were made with other settings,
# or, without a config, by an older eval.mk, and are neither reused nor
# removed (days of distractors are not thrown away for a typo).  NAME is
# the make variable that names DIR, for the message.
set -euo pipefail
[ $# -ge 3 ] || {
	echo "usage: $0 DIR NAME LINE..." >&2
	exit 1
}
dir=$1 name=$2
shift 2
mkdir -p "$dir"
want=$(printf '%s\n' "$@")
if [ -e "$dir/config" ]; then
	[ "$(cat "$dir/config")" = "$want" ] && exit 0
	{
		echo "eval.mk: $name=$dir holds descriptors made with other settings:"
		diff <(cat "$dir/config") <(echo "$want") | sed -n 's/^</  then:/p; s/^>/  now: /p' || true
		echo "eval.mk: they are not reused: remove $dir, or give another $name" \
			"(by default each model file and settings have folders of their own)"
	} >&2
	exit 1
fi
if [ -n "$(ls -A "$dir" | grep -v '^config\.')" ]; then
	echo "$want" >"$dir/config.new"
	{
		echo "eval.mk: $name=$dir holds files but no config (an older eval.mk's?), so their settings are unknown"
		echo "eval.mk: remove $dir, or, if they were made with this model and these settings" \
			"(cat $dir/config.new), keep them: mv $dir/config.new $dir/config"
	} >&2
	exit 1
fi
echo "$want" >"$dir/config.tmp.$$"
mv "$dir/config.tmp.$$" "$dir/config"

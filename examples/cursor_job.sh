#!/bin/sh
# A shell job that keeps its place with `cronwrap state`: each run handles the next
# items of a list and saves the cursor after each one, so a run killed at any moment
# resumes at the item it was on (which must therefore be safe to do twice).
#
#   @hourly  cronwrap run --name mail-digest --timeout 50m -- /usr/local/bin/cursor_job.sh LIST
set -eu
CRONWRAP=${CRONWRAP:-cronwrap}
list=$1
cursor=$($CRONWRAP state get cursor --default 0)
total=$(wc -l < "$list")
echo "slot $CRONWRAP_SLOT: starting at line $((cursor + 1)) of $total"
while [ "$cursor" -lt "$total" ]; do
    line=$(sed -n "$((cursor + 1))p" "$list")
    echo "handled: $line"      # the real, idempotent work goes here
    cursor=$((cursor + 1))
    $CRONWRAP state set cursor "$cursor"
done

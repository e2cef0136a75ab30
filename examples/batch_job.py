#!/usr/bin/env python3
"""A batch job that survives timeouts, SIGTERM and SIGKILL: it processes every line of INPUT
exactly once across runs, appending a result line per item to OUTPUT.

    */10 * * * *  cronwrap run --name import --schedule '*/10 * * * *' --timeout 8m \
                    --kill-after 30s -- /usr/local/bin/batch_job.py /srv/in.txt /srv/out.txt

How: after each batch it saves a checkpoint in $CRONWRAP_STATE_DIR (the cursor and the size
OUTPUT had then), written atomically (temporary file, fsync, rename, fsync of the directory).
A run killed mid-batch leaves OUTPUT longer than the checkpoint says; the next run cuts it
back to that size and redoes the batch, so no item is lost or written twice. It starts no
batch it could not finish before $CRONWRAP_DEADLINE (when the timeout will send SIGTERM),
and on SIGTERM (a timeout, a cancel) it finishes the item at hand, checkpoints and exits
within --kill-after. CRONWRAP_SLOT, CRONWRAP_ATTEMPT and CRONWRAP_RERUN_OF are printed.

Environment knobs (for the demo and the tests): BATCH_SIZE (10), ITEM_SECONDS (0),
BATCH_MARGIN (1: seconds kept free before the deadline beyond twice the slowest batch so far;
raise it where the machine can stall, a batch's fsyncs on a busy disk say), and
BATCH_IGNORE_DEADLINE=1 to keep going until the timeout hits.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path


class Stop:
    requested = False  # set by SIGTERM: finish the item at hand, checkpoint, exit


def on_sigterm(signum: int, frame: object) -> None:
    Stop.requested = True


def save_atomically(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def main(input_path: str, output_path: str) -> int:
    signal.signal(signal.SIGTERM, on_sigterm)
    state_dir = Path(os.environ.get("CRONWRAP_STATE_DIR") or ".")
    checkpoint_file = state_dir / "checkpoint.json"
    items = Path(input_path).read_text().splitlines()
    batch_size = int(os.environ.get("BATCH_SIZE", "10"))
    item_seconds = float(os.environ.get("ITEM_SECONDS", "0"))
    margin = float(os.environ.get("BATCH_MARGIN", "1"))
    deadline = os.environ.get("CRONWRAP_DEADLINE")
    if os.environ.get("BATCH_IGNORE_DEADLINE") == "1":
        deadline = None

    checkpoint = {"cursor": 0, "output_size": 0}
    if checkpoint_file.exists():
        checkpoint = json.loads(checkpoint_file.read_text())
    cursor = int(checkpoint["cursor"])
    print(
        f"slot {os.environ.get('CRONWRAP_SLOT')} attempt {os.environ.get('CRONWRAP_ATTEMPT')}"
        f" rerun-of {os.environ.get('CRONWRAP_RERUN_OF', '-')}: resuming at item {cursor}"
        f" of {len(items)}",
        flush=True,
    )

    with open(output_path, "ab") as out:
        out.truncate(int(checkpoint["output_size"]))  # drop what the last checkpoint missed
        slowest = 0.0
        while cursor < len(items) and not Stop.requested:
            if deadline is not None and time.time() + 2 * slowest + margin > int(deadline):
                print(f"stopping before the deadline: {len(items) - cursor} items left")
                return 0  # progress made; the next run goes on from the checkpoint
            began = time.monotonic()
            batch = items[cursor : cursor + batch_size]
            for n, item in enumerate(batch):
                time.sleep(item_seconds)  # the real work would go here
                out.write(f"{item}\n".encode())
                if Stop.requested:
                    batch = batch[: n + 1]
                    break
            out.flush()
            os.fsync(out.fileno())
            cursor += len(batch)
            state = {"cursor": cursor, "output_size": out.tell()}
            save_atomically(checkpoint_file, json.dumps(state).encode())
            slowest = max(slowest, time.monotonic() - began)
    if Stop.requested:
        print(f"stopped by SIGTERM after item {cursor}: the next run resumes there")
        return 128 + signal.SIGTERM
    print(f"done: {len(items)} items")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))

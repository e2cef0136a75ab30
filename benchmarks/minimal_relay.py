"""The minimal relay, the second yardstick of the throughput case (issue 21): runs a command
with its stdout on a pipe and passes that on to its own stdout as cheaply as Python can while
keeping the output's last 64 KiB, as any wrapper that reports a job's tail must: tee(2) into a
scratch pipe, splice(2) on, the oldest copy spliced to /dev/null; 1 MiB pipes. Blocking
calls, no timeout, no signals, no log: what is left is the floor of a relay in Python.
Linux, standard library only.

    minimal_relay.py COMMAND...
"""

import contextlib
import ctypes
import fcntl
import os
import subprocess
import sys

F_SETPIPE_SZ, PIPE = 1031, 1 << 20
KEEP = 64 * 1024

libc = ctypes.CDLL(None, use_errno=True)
tee = libc.tee
tee.argtypes = (ctypes.c_int, ctypes.c_int, ctypes.c_size_t, ctypes.c_uint)
tee.restype = ctypes.c_ssize_t

child = subprocess.Popen(sys.argv[1:], stdout=subprocess.PIPE)
assert child.stdout is not None
job = child.stdout.fileno()
scratch_r, scratch_w = os.pipe()
for fd in (job, scratch_w, 1):
    with contextlib.suppress(OSError):
        fcntl.fcntl(fd, F_SETPIPE_SZ, PIPE)
null = os.open(os.devnull, os.O_WRONLY)
held = 0
while True:
    n = tee(job, scratch_w, PIPE // 2, 0)
    if n < 0:
        raise OSError(ctypes.get_errno(), "tee")
    if n == 0:
        break
    held += n
    sent = 0
    while sent < n:
        sent += os.splice(job, 1, n - sent)
    if held > KEEP:
        held -= os.splice(scratch_r, null, held - KEEP)
tail = os.read(scratch_r, held)  # what a report would carry
sys.exit(child.wait())

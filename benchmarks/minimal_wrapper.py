"""The minimal wrapper, the yardstick of issues 8 and 21: a stdlib-only cron wrapper doing the
minimum cronwrap does on every run (flock, subprocess, one SQLite WAL insert, one local HTTP
ping). cronwrap's cost is judged against this.

    minimal_wrapper.py STATE_DIR PING_URL|- -- COMMAND...
"""

import fcntl
import os
import sqlite3
import subprocess
import sys
import time
import urllib.parse
import uuid

state, ping = sys.argv[1], sys.argv[2]
command = sys.argv[sys.argv.index("--") + 1 :]
name = "proto-" + str(os.getpid())
fd = os.open(os.path.join(state, name + ".lock"), os.O_RDWR | os.O_CREAT, 0o640)
fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
start = time.time()
code = subprocess.call(command)
db = sqlite3.connect(os.path.join(state, "proto.db"), timeout=60, isolation_level=None)
db.execute("PRAGMA journal_mode=WAL")
db.execute("CREATE TABLE IF NOT EXISTS runs (id TEXT, job TEXT, start REAL, end REAL, code INT)")
db.execute(
    "INSERT INTO runs VALUES (?,?,?,?,?)", (str(uuid.uuid4()), name, start, time.time(), code)
)
db.close()
if ping != "-":
    import http.client

    u = urllib.parse.urlsplit(ping)
    conn = http.client.HTTPConnection(u.netloc, timeout=3)
    conn.request("POST", f"{u.path}/{code}", body=b"")
    conn.getresponse().read()
sys.exit(code)

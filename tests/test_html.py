"""`status --html`: the page's structure (no script, no external resource, table semantics,
no secret) and how it renders in a real headless Debian chromium, on a phone-sized window."""

from __future__ import annotations

import os
import re
import shutil
import signal
import stat
import struct
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest

from cronwrap.notify.alerts import Alert, dashboard_link, job_anchor
from cronwrap.views.html import trend_svg, write_atomic
from tests.conftest import cronwrap, cw_env, popen_cronwrap, wait_for

SECRET_ENV = "hunter2-api-secret-value"
GH_TOKEN = "ghp_" + "A1b2C3d4E5" * 4


def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        if os.environ.get("CRONWRAP_REQUIRE_CHROMIUM"):
            raise RuntimeError("chromium is not on PATH, and CRONWRAP_REQUIRE_CHROMIUM is set")
        pytest.skip("chromium is not installed (apt-get install chromium)")
    return found


class Page(HTMLParser):
    """What the tests look for: tags, attributes, text."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        self.text.append(data)

    def all(self, tag: str) -> list[dict[str, str | None]]:
        return [a for t, a in self.tags if t == tag]


@pytest.fixture
def page_file(home: Path, tmp_path: Path) -> Path:
    """A store with an ok job (a few runs), a failing one whose output holds secrets, and a
    job that missed its slot; the page written by the real CLI."""
    env_run = cw_env(home, API_SECRET=SECRET_ENV)
    for i in range(3):
        r = cronwrap(
            home,
            "run",
            "--name",
            "sync",
            "--schedule",
            "* * * * *",
            "--",
            "sh",
            "-c",
            f"sleep 0.0{i + 1}",
            env=env_run,
        )
        assert r.returncode == 0, r.stderr
    bad = cronwrap(
        home,
        "run",
        "--name",
        "backup",
        "--schedule",
        "0 3 * * *",
        "--tz",
        "Europe/Berlin",
        "--",
        "sh",
        "-c",
        f'echo "using $API_SECRET and {GH_TOKEN}"; echo "disk <full> & done"; exit 3',
        env=env_run,
    )
    assert bad.returncode == 3
    out = tmp_path / "www" / "status.html"
    out.parent.mkdir()
    result = cronwrap(home, "status", "--crontab", "/dev/null", "--html", str(out))
    assert result.returncode == 1, result.stderr  # a job is failing: status says so
    assert result.stdout == ""
    return out


def test_page_is_self_contained_accessible_and_secret_free(page_file: Path) -> None:
    text = page_file.read_text()
    page = Page(text)
    assert SECRET_ENV not in text and GH_TOKEN not in text
    assert "[REDACTED]" in text
    assert "disk &lt;full&gt; &amp; done" in text  # output is escaped, not markup
    assert not page.all("script") and not page.all("link") and not page.all("img")
    for tag, attrs in page.tags:
        for name in ("src", "href"):
            value = attrs.get(name)
            assert value is None or value.startswith("#"), (tag, attrs)
    assert page.all("html")[0]["lang"] == "en"
    assert any(m.get("name") == "viewport" for m in page.all("meta"))
    assert page.all("h1") and page.all("h2") and page.all("caption")
    assert {a.get("scope") for a in page.all("th")} == {"col", "row"}
    ids = {a["id"] for _, a in page.tags if a.get("id")}
    host = os.uname().nodename
    assert job_anchor(host, "backup") in ids and job_anchor(host, "sync") in ids
    body = " ".join(page.text)
    assert "Failing" in body and "failed (exit 3)" in body and "OK" in body
    assert "CET" in body  # backup's times in its own zone
    assert "Recent failures" in body and "Missed slots" in body
    assert oct(page_file.stat().st_mode & 0o777) == "0o644"
    assert not [p for p in page_file.parent.iterdir() if p.name.startswith(".")]  # no temp left


def _png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    assert data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def _chromium(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            chromium(),
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            f"--user-data-dir={tmp_path / 'chromium-profile'}",
            "--window-size=390,844",
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_page_renders_in_headless_chromium(page_file: Path, tmp_path: Path) -> None:
    url = page_file.as_uri()
    shot = tmp_path / "status-phone.png"
    result = _chromium(tmp_path, "--enable-logging=stderr", "--v=0", f"--screenshot={shot}", url)
    assert result.returncode == 0, result.stderr[-2000:]
    width, height = _png_size(shot)
    assert (width, height) == (390, 844)
    assert shot.stat().st_size > 10_000  # a page was drawn, not a blank
    console = [
        line
        for line in result.stderr.splitlines()
        if "CONSOLE" in line or "Uncaught" in line or "Failed to load resource" in line
    ]
    assert console == []
    dom = _chromium(tmp_path, "--dump-dom", url)
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert "<caption>" in dom.stdout and "backup" in dom.stdout and "sync" in dom.stdout
    assert "Failing" in dom.stdout and "failed (exit 3)" in dom.stdout
    assert SECRET_ENV not in dom.stdout and GH_TOKEN not in dom.stdout


def test_trend_has_a_text_alternative() -> None:
    svg = trend_svg([1.0, 2.0, 4.0])
    assert svg.startswith("<svg") and "<title>" in svg and "aria-label" in svg
    assert "1s, 2s, 4s" in svg
    assert trend_svg([1.0]) == "<span>-</span>"


def test_atomic_write_replaces_the_page_whole(tmp_path: Path) -> None:
    target = tmp_path / "p.html"
    target.write_text("old")
    before = os.stat(target).st_ino
    write_atomic(target, "new page")
    assert target.read_text() == "new page"
    assert os.stat(target).st_ino != before  # renamed over, never rewritten in place
    assert [p.name for p in tmp_path.iterdir()] == ["p.html"]


def test_alerts_link_to_the_jobs_entry() -> None:
    link = dashboard_link("https://ops.example/cron.html", "db 1", "backup")
    assert link == "https://ops.example/cron.html#job-db_201--backup"
    alert = Alert("failure", {"job": "backup", "host": "db 1", "dashboard_url": link})
    assert f"Dashboard: {link}" in alert.text
    assert alert.payload()["dashboard_url"] == link


def test_the_page_shows_every_job_that_needs_attention_and_a_cancelled_run(
    home: Path, tmp_path: Path
) -> None:
    """A degraded job (its ping could not be delivered) is not shown as a plain OK, a
    cancelled run is among the recent failures (it is a dead letter), and the header's count
    is the number of rows that show a problem."""
    dead = "http://127.0.0.1:9/ping/5e7c1a4e-0000-4000-8000-000000000000"
    budgets = ["--ping-start-budget", "1s", "--ping-finish-budget", "1s"]
    ran = cronwrap(home, "run", "--name", "pinged", "--ping", dead, *budgets, "--", "true")
    assert ran.returncode == 0, ran.stderr
    started = tmp_path / "started"
    proc = popen_cronwrap(
        home, "run", "--name", "stopped", "--", "sh", "-c", f"touch {started}; exec sleep 30",
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    wait_for(started.exists)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 128 + signal.SIGTERM
    assert cronwrap(home, "run", "--name", "fine", "--", "true").returncode == 0
    out = tmp_path / "status.html"
    result = cronwrap(home, "status", "--crontab", "/dev/null", "--html", str(out))
    assert result.returncode == 1, result.stderr
    text = out.read_text()
    row = re.compile(r'<tr id="[^"]*"><th scope="row">([^<]*)</th>.*?</tr>')
    rows = {m.group(1): m.group(0) for m in row.finditer(text)}
    assert set(rows) == {"pinged", "stopped", "fine"}
    assert "Degraded" in rows["pinged"] and "ping" in rows["pinged"].lower()
    assert "Failing" in rows["stopped"] and "Degraded" not in rows["fine"]
    assert "2 need attention" in text
    failures = text.split('<h2 id="failures">', 1)[1].split("</section>", 1)[0]
    assert "stopped" in failures and "cancelled" in failures


def test_html_to_a_device_or_through_a_symlink_writes_there(home: Path, tmp_path: Path) -> None:
    """`--html /dev/stdout` prints the page; as root, renaming a new file over /dev/null
    would have replaced the device (it did, once, in this project's own tests). A symlink
    keeps pointing at the page, which is replaced."""
    cronwrap(home, "run", "--name", "pg", "--", "true")
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    import threading

    got: list[bytes] = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_bytes()))
    reader.start()
    result = cronwrap(home, "status", "--crontab", "/dev/null", "--html", str(fifo))
    reader.join(30)
    assert result.returncode == 0, result.stderr
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode) and b"<!DOCTYPE html>" in got[0]
    page, link = tmp_path / "page.html", tmp_path / "link.html"
    page.write_text("old")
    link.symlink_to(page)
    assert cronwrap(home, "status", "--crontab", "/dev/null", "--html", str(link)).returncode == 0
    assert link.is_symlink() and "<!DOCTYPE html>" in page.read_text()
    out = cronwrap(home, "status", "--crontab", "/dev/null", "--html", "/dev/stdout")
    assert "<!DOCTYPE html>" in out.stdout


def test_the_page_of_one_host_lists_that_hosts_failures(home: Path, tmp_path: Path) -> None:
    """--host H asks the store for H's failures: the 20 newest of every host, filtered
    afterwards, left out H's older ones whenever other hosts failed more recently."""
    from datetime import datetime, timedelta, timezone

    from tests.test_status_truth import Recorder

    rec = Recorder(home)
    at = datetime.now(timezone.utc) - timedelta(hours=3)
    rec.run("mine", at, schedule=None, tz=None, status="failed", host="h1")
    for n in range(25):
        later = at + timedelta(minutes=n + 1)
        rec.run("theirs", later, schedule=None, tz=None, status="failed", host="h2")
    rec.close()
    out = tmp_path / "h1.html"
    args = ("status", "--crontab", "/dev/null", "--host", "h1", "--html", str(out))
    result = cronwrap(home, *args)
    assert result.returncode == 1, result.stderr  # h1's job is failing
    failures = out.read_text().split('<h2 id="failures">', 1)[1].split("</section>", 1)[0]
    assert "mine" in failures and "theirs" not in failures


def test_job_anchors_are_unique_and_keep_plain_names_as_they_are() -> None:
    """Job names may hold `. _ @ + -` and hosts anything: each (host, job) gets its own id."""
    names = ["a@b", "a+b", "a_b", "a.b", "a-b", "a--b", "-a", "a-", "a b", "a_40b", "é", ""]
    pairs = [(h, j) for h in ["db-1", "db", "db-", "-1", "db--1", "d_b", "", "ü"] for j in names]
    ids = {job_anchor(h, j) for h, j in pairs}
    assert len(ids) == len(pairs)
    assert all(re.fullmatch(r"[A-Za-z0-9._-]+", i) for i in ids)  # valid, and no escaping
    assert job_anchor("db-1", "nightly-dump") == "job-db-1--nightly-dump"
    assert job_anchor("web1", "a@b") == "job-web1--a_40b"
    assert job_anchor("web1", "a_b") == "job-web1--a_5Fb"


def test_the_page_gives_jobs_with_look_alike_names_their_own_entries(
    home: Path, tmp_path: Path
) -> None:
    for name in ("a@b", "a+b", "a_b"):
        assert cronwrap(home, "run", "--name", name, "--", "true").returncode == 0
    out = tmp_path / "p.html"
    assert cronwrap(home, "status", "--crontab", "/dev/null", "--html", str(out)).returncode == 0
    ids = [a["id"] for _, a in Page(out.read_text()).tags if a.get("id")]
    assert len(ids) == len(set(ids))
    host = os.uname().nodename
    rows = {job_anchor(host, name) for name in ("a@b", "a+b", "a_b")}
    assert rows <= set(ids) and len(rows) == 3


def test_the_page_is_byte_identical(monkeypatch: pytest.MonkeyPatch) -> None:
    """The page says, byte for byte, what it said before its caches (texts, times, trends and
    anchors made once per page): the golden status jobs, local and fleet, and failures."""
    from cronwrap.views.html import render_page
    from tests.test_status_output import NOW, _golden, _run, jobs

    monkeypatch.setenv("TZ", "Europe/Berlin")
    failures = [
        _run(3, "backup", "failed", output_tail="disk <full>\n", reason="exit 2"),
        _run(4, "db<b>", "timeout", host="web2", signal=15),
    ]
    page = render_page(
        [*jobs(), *jobs(fleet=True)], failures, now=NOW, fleet=True, default_host="web1"
    )
    assert page == _golden("status-page.html", page)


def test_the_page_of_named_jobs_lists_only_their_failures(home: Path, tmp_path: Path) -> None:
    """--job NAME asks the store for NAME's failures: the page listed every job's, so a page
    made for one team's jobs showed another team's failures as if they were its own."""
    from datetime import datetime, timedelta, timezone

    from tests.test_status_truth import Recorder

    rec = Recorder(home)
    at = datetime.now(timezone.utc) - timedelta(hours=3)
    rec.run("mine", at, schedule=None, tz=None, status="failed")
    for n in range(25):
        later = at + timedelta(minutes=n + 1)
        rec.run("theirs", later, schedule=None, tz=None, status="failed")
    rec.close()
    out = tmp_path / "mine.html"
    args = ("status", "--crontab", "/dev/null", "--job", "mine", "--html", str(out))
    result = cronwrap(home, *args)
    assert result.returncode == 1, result.stderr  # the job is failing
    failures = out.read_text().split('<h2 id="failures">', 1)[1].split("</section>", 1)[0]
    assert "mine" in failures and "theirs" not in failures


def test_the_two_passes_of_a_repeated_hour_show_as_two_times(home: Path, tmp_path: Path) -> None:
    """An hourly and a daily job in New York both expected at 01:30 on the day clocks go
    back: the hourly one's is the second pass (EST, 06:30 UTC), the daily one's the first
    (EDT, 05:30 UTC). Equal wall times in one zone compare equal whatever their fold, so a
    page keyed by the instant alone showed the first for both."""
    from datetime import datetime, timezone

    from tests.test_status_truth import Recorder

    rec = Recorder(home)
    at = datetime(2025, 11, 1, 12, 0, tzinfo=timezone.utc)
    rec.run("hourly", at, schedule="30 * * * *", tz="America/New_York")
    rec.run("daily", at, schedule="30 1 * * *", tz="America/New_York")
    rec.close()
    out = tmp_path / "page.html"
    now = "2025-11-02T06:45:00Z"
    args = ("status", "--crontab", "/dev/null", "--html", str(out), "--now", now)
    result = cronwrap(home, *args)
    assert result.returncode == 1, result.stderr  # both missed runs since
    expected = re.findall(r'expected <time datetime="([^"]+)">([^<]+)<', out.read_text())
    assert sorted(expected) == [
        ("2025-11-02T05:30:00+00:00", "Sun 2025-11-02 01:30 EDT"),
        ("2025-11-02T06:30:00+00:00", "Sun 2025-11-02 01:30 EST"),
    ]

"""`status --html`: one self-contained static page (inline CSS and SVG, no script, no
external resource) that a web server can serve and a cron line can regenerate every minute.
Everything shown is escaped and passed through the redactor once more; the file is replaced
atomically. Standard library only."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Sequence
from datetime import datetime, timezone, tzinfo
from functools import lru_cache
from html import escape
from pathlib import Path

from cronwrap.notify.alerts import anchor_slug, job_anchor
from cronwrap.redact import Redactor
from cronwrap.views.humanize import relative
from cronwrap.views.table import STATE_SYMBOL, short_duration

TYPE_CHECKING = False
if TYPE_CHECKING:
    from cronwrap.state.records import RunRecord
    from cronwrap.views.status import JobStatus

TAIL_SHOWN = 2000
STATE_LABEL = {
    "ok": "OK",
    "failing": "Failing",
    "running": "Running",
    "skipped": "Skipped",
    "never": "Never run",
    "unmonitored": "Unmonitored",
    "unknown": "Unknown",
}

# Colours meet WCAG AA (contrast >= 4.5:1) for their text on their background; the state is
# also written out, so colour is never the only signal.
CSS = """
:root { color-scheme: light; --fg: #1a1a1a; --muted: #4a4a4a; --line: #c8c8c8; }
* { box-sizing: border-box; }
body { font: 16px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif;
  color: var(--fg); background: #fff; margin: 0 auto; padding: 1rem; max-width: 80rem; }
h1 { font-size: 1.5rem; margin: 0 0 .25rem; }
h2 { font-size: 1.25rem; margin: 1.5rem 0 .5rem; }
h3 { font-size: 1rem; margin: 0 0 .25rem; }
p.meta { color: var(--muted); margin: 0 0 1rem; }
table { border-collapse: collapse; width: 100%; }
caption { text-align: left; font-weight: 600; padding: .25rem 0; color: var(--muted); }
th, td { text-align: left; padding: .4rem .5rem; border-bottom: 1px solid var(--line);
  vertical-align: top; }
thead th { border-bottom: 2px solid var(--fg); }
tbody th { font-weight: 600; word-break: break-word; }
.badge { display: inline-block; padding: .05rem .45rem; border-radius: .3rem;
  font-weight: 600; white-space: nowrap; }
.st-ok { background: #e6f4ea; color: #0b5321; }
.st-failing { background: #fde8e8; color: #8a1010; }
.st-running { background: #e3f0fb; color: #0b4a7a; }
.st-skipped { background: #fff4d6; color: #5c4000; }
.st-never, .st-unmonitored { background: #ececec; color: #3a3a3a; }
.st-unknown, .st-degraded { background: #fff4d6; color: #5c4000; }
.missed { color: #8a1010; font-weight: 600; }
.when small, td small { color: var(--muted); display: block; }
svg.trend { display: block; }
article { border: 1px solid var(--line); border-left: 4px solid #8a1010; border-radius: .3rem;
  padding: .5rem .75rem; margin: 0 0 .75rem; }
pre { background: #f4f4f4; color: #1a1a1a; padding: .5rem; overflow-x: auto;
  white-space: pre-wrap; word-break: break-word; font-size: .85rem; margin: .5rem 0 0; }
tr:target, article:target { outline: 3px solid #0b4a7a; }
@media (max-width: 40rem) {
  body { padding: .5rem; }
  table, thead, tbody, tr, th, td { display: block; width: 100%; }
  thead tr { position: absolute; width: 1px; height: 1px; overflow: hidden;
    clip: rect(0 0 0 0); }
  tbody tr { border: 1px solid var(--line); border-radius: .3rem; margin: 0 0 .75rem;
    padding: .25rem .5rem; }
  caption { display: block; }
  th, td { border: 0; padding: .2rem 0; }
  td::before { content: attr(data-label) ": "; font-weight: 600; }
}
"""


def write_atomic(path: str | Path, text: str) -> None:
    """Write next to the target and rename over it: a reader sees the old page or the new
    one, never half of one. Through a symlink, the file it points at is replaced; a target
    that is not a regular file (/dev/stdout, /dev/null, a FIFO) is written to as it is —
    renaming over it would replace the device itself."""
    import stat

    with contextlib.suppress(FileNotFoundError):
        if not stat.S_ISREG(os.stat(path).st_mode):
            with open(path, "w", encoding="utf-8") as f:
                f.write(text)
            return
    target = Path(os.path.realpath(path))
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


@lru_cache(maxsize=256)
def _zone(name: str | None) -> tzinfo:
    from cronwrap.cron.schedule import zone
    from cronwrap.errors import CronwrapError

    try:
        return zone(name)
    except CronwrapError:
        return timezone.utc


def _when(at: datetime | None, tz_name: str | None, now: datetime) -> str:
    if at is None:
        return "-"
    local = at.astimezone(_zone(tz_name))
    iso = at.astimezone(timezone.utc).isoformat(timespec="seconds")
    return (
        f'<time datetime="{iso}">{escape(local.strftime("%a %Y-%m-%d %H:%M %Z"))}</time>'
        f"<small>{escape(relative(at, now))}</small>"
    )


class _Page:
    """What one page writes many times, made once: the escaped (and redacted) text of each
    distinct string, each instant in each zone, each trend and each anchor. Thousands of jobs
    share their hosts, results, schedules and next runs."""

    __slots__ = ("anchors", "clean", "now", "texts", "times", "trends")

    def __init__(self, now: datetime) -> None:
        self.now = now
        self.clean = Redactor()  # token shapes once more: nothing secret-looking reaches the page
        self.texts: dict[str, str] = {}
        self.times: dict[tuple[datetime | None, int, str | None], str] = {}
        self.trends: dict[tuple[float, ...], str] = {}
        self.anchors: dict[tuple[str, str], str] = {}

    def text(self, text: object) -> str:
        key = str(text)
        out = self.texts.get(key)
        if out is None:
            out = self.texts[key] = escape(self.clean.text(key))
        return out

    def when(self, at: datetime | None, tz_name: str | None) -> str:
        # an instant's text depends on the instant and the zone shown, not on at's tzinfo;
        # the fold tells apart the two passes of a repeated hour, which compare equal
        key = (at, at.fold if at is not None else 0, tz_name)
        out = self.times.get(key)
        if out is None:
            out = self.times[key] = _when(at, tz_name, self.now)
        return out

    def trend(self, durations: Sequence[float]) -> str:
        key = tuple(durations)
        out = self.trends.get(key)
        if out is None:
            out = self.trends[key] = trend_svg(key)
        return out

    def anchor(self, host: str, job: str) -> str:
        out = self.anchors.get((host, job))
        if out is None:
            out = self.anchors[host, job] = job_anchor(host, job)
        return out


def trend_svg(durations: Sequence[float], *, width: int = 120, height: int = 32) -> str:
    """The last runs' durations as a small inline line chart, with a text alternative."""
    if len(durations) < 2:
        return "<span>-</span>"
    lo, hi = min(durations), max(durations)
    span = hi - lo or 1.0
    points = " ".join(
        f"{x},{height - 3 - (d - lo) / span * (height - 6):.1f}"
        for x, d in zip(_xs(len(durations), width), durations, strict=True)
    )
    label = escape(
        f"Duration of the last {len(durations)} runs, oldest first: "
        + ", ".join(map(short_duration, durations))
    )
    last_x, last_y = points.rsplit(" ", 1)[-1].split(",")
    return (
        f'<svg class="trend" role="img" aria-label="{label}" width="{width}" '
        f'height="{height}" viewBox="0 0 {width} {height}" xmlns="http://www.w3.org/2000/svg">'
        f"<title>{label}</title>"
        f'<polyline fill="none" stroke="#0b4a7a" stroke-width="2" points="{points}"/>'
        f'<circle cx="{last_x}" cy="{last_y}" r="2.5" fill="#0b4a7a"/></svg>'
    )


@lru_cache(maxsize=64)
def _xs(count: int, width: int) -> tuple[str, ...]:
    """The x of each of `count` points across `width`: the same for every chart of that many."""
    step = (width - 4) / (count - 1)
    return tuple(f"{2 + i * step:.1f}" for i in range(count))


def _host_of(st: JobStatus, default_host: str) -> str:
    return st.host or (st.last.host if st.last is not None else default_host)


COLUMNS = ("Job", "Result", "Last run", "Duration", "Trend", "Next run", "Schedule", "Missed")


def render_page(
    jobs: Sequence[JobStatus],
    failures: Sequence[RunRecord],
    *,
    now: datetime,
    fleet: bool,
    title: str = "cronwrap status",
    default_host: str | None = None,
    problem: str | None = None,
    unreadable: bool = False,
) -> str:
    """The whole page: a summary, one table per host, recent failures, missed slots; first,
    what kept status from knowing (`problem`), if anything. A store that could not be read
    (`unreadable`) says nothing of failures or missed slots, nor of how many jobs there
    are when no crontab names one: the page says the status is unknown instead."""
    import socket

    host_default = default_host or socket.gethostname()
    page = _Page(now)
    t = page.text
    by_host: dict[str, list[JobStatus]] = {}
    for st in jobs:
        by_host.setdefault(_host_of(st, host_default), []).append(st)
    missed = [s for s in jobs if s.missed]
    generated = now.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
    iso = now.astimezone(timezone.utc).isoformat(timespec="seconds")
    if unreadable and not jobs:
        title += ": unknown"
        summary = "Status unknown: the store could not be read."
    else:
        summary = _summary(jobs, len(by_host), fleet=fleet)
    out = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        '<meta name="robots" content="noindex">',
        f"<title>{t(title)}</title>",
        f"<style>{CSS}</style>",
        "</head>",
        "<body>",
        "<header>",
        f"<h1>{t(title)}</h1>",
        f'<p class="meta">{summary} Generated <time datetime="{iso}">{generated}</time>.</p>',
        "</header>",
        "<main>",
    ]
    if problem:
        out.append(f'<p role="alert"><strong>Status unknown:</strong> {t(problem)}</p>')
    elif not jobs:
        out.append("<p>No jobs recorded yet.</p>")
    for host in sorted(by_host):
        rows = by_host[host]
        hid = f"host-{anchor_slug(host)}"
        out += [
            f'<section aria-labelledby="{hid}">',
            f'<h2 id="{hid}">Host {t(host)}</h2>',
            "<table>",
            f"<caption>Jobs on {t(host)}: {len(rows)}, "
            f"{sum(1 for s in rows if not s.healthy and not s.unmonitored)} need attention"
            "</caption>",
            "<thead><tr>" + "".join(f'<th scope="col">{h}</th>' for h in COLUMNS) + "</tr></thead>",
            "<tbody>",
        ]
        for st in sorted(rows, key=lambda s: (s.healthy, s.name)):
            out.append(_job_row(st, host, page))
        out += ["</tbody>", "</table>", "</section>"]
    if not unreadable:  # "no recent failures", "no missed slots": an unread store knows neither
        out += _failures(failures, page)
        out += _missed(missed, host_default, page)
    out += ["</main>", "</body>", "</html>", ""]
    return "\n".join(out)


def _summary(jobs: Sequence[JobStatus], hosts: int, *, fleet: bool) -> str:
    """How many jobs on how many hosts, and how many need attention."""
    attention = sum(1 for s in jobs if not s.healthy and not s.unmonitored)
    return (
        f"{len(jobs)} job{'s' if len(jobs) != 1 else ''} on {hosts} host{'s' if hosts != 1 else ''}"
        + (" (fleet store)" if fleet else "")
        + f", {attention} need{'s' if attention == 1 else ''} attention."
    )


def _missed(missed: Sequence[JobStatus], host_default: str, page: _Page) -> list[str]:
    """The section that lists the jobs with a missed slot."""
    out = ['<section aria-labelledby="missed"><h2 id="missed">Missed slots</h2>']
    if missed:
        out.append("<ul>")
        t = page.text
        for st in missed:
            host = _host_of(st, host_default)
            out.append(
                f'<li><a href="#{page.anchor(host, st.name)}">{t(st.name)} on {t(host)}</a>: '
                f"expected {page.when(st.expected, st.tz)}</li>"
            )
        out.append("</ul>")
    else:
        out.append("<p>No missed slots.</p>")
    out.append("</section>")
    return out


def _job_row(st: JobStatus, host: str, page: _Page) -> str:
    esc = page.text
    state = st.state if st.state in STATE_LABEL else "never"
    badge = (
        f'<span class="badge st-{state}">{STATE_SYMBOL.get(state, "")} '
        f"{esc(STATE_LABEL[state])}</span>"
    )
    if st.result.lower() != STATE_LABEL[state].lower():
        badge += f" {esc(st.result)}"
    if st.state == "unknown" and st.reason:
        badge += f"<small>{esc(st.reason)}</small>"
    if st.degraded:
        # the job ran, but not every signal went out: as the table's DEGRADED note
        badge += (
            f' <span class="badge st-degraded">⚠ Degraded</span>'
            f"<small>{esc(st.warnings[0])}</small>"
        )
    last = st.last
    cells = [
        ("Result", badge),
        ("Last run", page.when(last.started_at if last else None, st.tz)),
        ("Duration", esc(short_duration(last.duration_s if last else None))),
        ("Trend", page.trend(st.durations)),
        ("Next run", page.when(st.next_run, st.tz)),
        (
            "Schedule",
            (esc(st.schedule) if st.schedule else "-")
            + (f"<small>{esc(st.description)}</small>" if st.description else "")
            + (f"<small>{esc(st.schedule_error)}</small>" if st.schedule_error else ""),
        ),
        (
            "Missed",
            f'<span class="missed">missed {page.when(st.expected, st.tz)}</span>'
            if st.missed
            else "no",
        ),
    ]
    tds = "".join(f'<td data-label="{label}">{html}</td>' for label, html in cells)
    return f'<tr id="{page.anchor(host, st.name)}"><th scope="row">{esc(st.name)}</th>{tds}</tr>'


def _failures(failures: Sequence[RunRecord], page: _Page) -> list[str]:
    esc = page.text
    out = ['<section aria-labelledby="failures">', '<h2 id="failures">Recent failures</h2>']
    if not failures:
        return [*out, "<p>No recent failures.</p>", "</section>"]
    for r in failures:
        code = "-" if r.exit_code is None else str(r.exit_code)
        what = f"{r.status}, exit code {code}" + (f", signal {r.signal}" if r.signal else "")
        out.append(
            f'<article id="run-{esc(r.run_id)}"><h3>'
            f'<a href="#{page.anchor(r.host, r.job)}">{esc(r.job)}</a> on {esc(r.host)}</h3>'
            f"<p>{page.when(r.started_at, r.tz)} {esc(what)}</p>"
        )
        if r.reason:
            out.append(f"<p>Reason: {esc(r.reason)}</p>")
        tail = (r.output_tail or "")[-TAIL_SHOWN:]
        if tail.strip():
            out.append(f"<pre>{esc(tail)}</pre>")
        out.append("</article>")
    out.append("</section>")
    return out

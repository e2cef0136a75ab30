"""Alerts that reach a human: a JSON webhook for http(s) URLs, Apprise for every other scheme
(an optional extra, imported only when such an alert is sent), and an alert command. Delivery
is bounded in time, retried once, and never raises: failures come back as strings."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Mapping
from pathlib import Path

from cronwrap.errors import ConfigError
from cronwrap.redact import Redactor, redact_url

TYPE_CHECKING = False  # typing costs start-up time; these names are for the type checker
if TYPE_CHECKING:
    import threading
    from collections.abc import Callable
    from typing import Any

WEBHOOK_SCHEMES = ("http://", "https://")
_ANCHOR_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789.")


def anchor_slug(text: str) -> str:
    """`text` as part of an HTML id that no other text gives: letters, digits and `.` as they
    are, a `-` between two other characters too, and every other byte of the text's UTF-8 as
    `_XX` (`a@b` is `a_40b`, `a_b` is `a_5Fb`). A slug never starts or ends with `-` and
    never holds `--`, so `--` joins two of them unambiguously."""
    out = []
    last = len(text) - 1
    for i, c in enumerate(text):
        if c in _ANCHOR_CHARS or (
            c == "-" and 0 < i < last and text[i - 1] != "-" and text[i + 1] != "-"
        ):
            out.append(c)
        else:  # surrogatepass: a lone surrogate is its own bytes, unlike any real character's
            out.append("".join(f"_{b:02X}" for b in c.encode("utf-8", "surrogatepass")))
    return "".join(out) or "_"


def job_anchor(host: str, job: str) -> str:
    """The id of a job's entry in the `status --html` page, so alerts can link to it: one
    per (host, job), the same on every page."""
    return f"job-{anchor_slug(host)}--{anchor_slug(job)}"


def dashboard_link(base: str, host: str, job: str) -> str:
    """`base` (where the page is served) with the job's anchor."""
    return f"{base.split('#', 1)[0]}#{job_anchor(host, job)}"


# there is no PyPI release yet: extras come from the checkout or wheel cronwrap came from
_EXTRA_HINT = (
    "reinstall cronwrap from its checkout with pip install '.[alerts]' "
    "(or from its wheel: pip install 'cronwrap_cli-VERSION-py3-none-any.whl[alerts]')"
)


class Alert:
    """What happened, for every channel: `facts` become the webhook's JSON fields and the
    alert command's CRONWRAP_* variables."""

    __slots__ = ("event", "facts", "text", "title")

    def __init__(self, event: str, facts: Mapping[str, Any]) -> None:
        self.event = event  # failure | recovery | slow
        self.facts = dict(facts)
        job, host = self.facts.get("job"), self.facts.get("host")
        status = self.facts.get("status")
        if event == "recovery":
            self.title = f"✅ {job} recovered on {host}"
        elif event == "slow":
            self.title = f"🐢 {job} is slow on {host}"
        else:
            self.title = f"❌ {job} {status} on {host}"
        lines = [self.title]
        if self.facts.get("reason"):
            lines.append(str(self.facts["reason"]))
        code = self.facts.get("exit_code")
        duration = self.facts.get("duration_s")
        if event != "slow" and code is not None:
            lines.append(
                f"exit code {code}, {duration:.1f}s, attempts {self.facts.get('attempts')}"
                if duration is not None
                else f"exit code {code}"
            )
        if self.facts.get("dashboard_url"):
            lines.append(f"Dashboard: {self.facts['dashboard_url']}")
        tail = self.facts.get("output_tail")
        if tail and event == "failure":
            lines.append("```\n" + str(tail)[-1500:] + "\n```")
        self.text = "\n".join(lines)

    def payload(self) -> dict[str, Any]:
        return {"event": self.event, **self.facts, "title": self.title, "text": self.text}


def check_urls(urls: list[str]) -> None:
    """Fail up front (before the job runs) for a scheme that needs the missing extra."""
    _, problems = usable_urls(urls)
    if problems:
        raise ConfigError(problems[0])


def usable_urls(urls: list[str]) -> tuple[list[str], list[str]]:
    """The alert URLs that can be delivered here, and one line for each that cannot (not
    a URL, or a scheme that needs the missing Apprise extra): `run` leaves those out."""
    kept: list[str] = []
    problems: list[str] = []
    for url in urls:
        if url.startswith(WEBHOOK_SCHEMES):
            kept.append(url)
        elif "://" not in url:
            problems.append(
                f"alert {redact_url(url)!r} is not a URL (http(s)://, slack://, mailto://, ...)"
            )
        elif not apprise_installed():
            scheme = url.split("://", 1)[0]
            problems.append(
                f"alert URL {scheme}://… needs Apprise, cronwrap's alerts extra: {_EXTRA_HINT}"
            )
        else:
            kept.append(url)
    return kept, problems


def apprise_installed() -> bool:
    import importlib.util

    try:
        return importlib.util.find_spec("apprise") is not None
    except (ImportError, ValueError):
        return False


QUEUED_EVENTS = ("failure", "recovery")  # a late "slow" note is not worth keeping


def send_all(
    alert: Alert,
    urls: list[str],
    command: str | None,
    *,
    timeout_s: float,
    env: Mapping[str, str],
    queue: AlertQueue | None = None,
    job: str = "",
) -> list[str]:
    """Deliver to every channel within `timeout_s` in all; returns the failures. With a
    queue, this job's earlier undelivered alerts go first (per channel, in order), and a
    failure or recovery alert a channel did not take is kept there for the next try."""
    deadline = time.monotonic() + timeout_s
    errors: list[str] = []
    blocked: set[str] = set()
    if queue is not None:
        errors += queue.replay(job, urls, command, deadline=deadline, env=env, blocked=blocked)
    for channel in _channels(urls, command):
        if channel in blocked:  # older alerts still wait there: keep the order
            err: str | None = "an earlier alert is still undelivered"
        else:
            err = _deliver(channel, urls, command, alert, deadline, env)
        if err is None:
            continue
        errors.append(f"{_label(channel)}: {err}")
        if queue is not None and alert.event in QUEUED_EVENTS:
            try:
                queue.put(alert, channel, job=job, urls=urls)
                errors[-1] += " (kept for the next run)"
            except OSError as qerr:
                errors[-1] += f" (cannot keep it: {qerr.strerror or qerr})"
    return errors


def send_kept(
    queue: AlertQueue,
    job: str,
    urls: list[str],
    command: str | None,
    *,
    timeout_s: float,
    env: Mapping[str, str],
) -> list[str]:
    """Send the job's kept alerts now (every run end, alert due or not); returns failures."""
    deadline = time.monotonic() + timeout_s
    return queue.replay(job, urls, command, deadline=deadline, env=env, blocked=set())


def _channels(urls: list[str], command: str | None) -> list[str]:
    """Webhook URLs one by one, Apprise URLs as one channel, the command."""
    out = [u for u in urls if u.startswith(WEBHOOK_SCHEMES)]
    if any(not u.startswith(WEBHOOK_SCHEMES) for u in urls):
        out.append("apprise")
    if command:
        out.append("command")
    return out


def _label(channel: str) -> str:
    if channel in ("apprise", "command"):
        return "apprise" if channel == "apprise" else "alert command"
    return f"webhook {redact_url(channel)}"


def _deliver(
    channel: str,
    urls: list[str],
    command: str | None,
    alert: Alert,
    deadline: float,
    env: Mapping[str, str],
) -> str | None:
    if channel == "command":
        assert command is not None
        return _command(command, alert, deadline, env)
    if channel == "apprise":
        apprise_urls = [u for u in urls if not u.startswith(WEBHOOK_SCHEMES)]
        return _retry_once(lambda: _apprise(apprise_urls, alert, deadline), deadline)
    return _retry_once(lambda: _webhook(channel, alert, deadline), deadline)


class AlertQueue:
    """Failure and recovery alerts a channel did not take, kept (0600, in the state dir)
    and sent again before the job's next alert, like undelivered pings. Only to channels the
    job still has; a malformed record is moved to quarantine/."""

    def __init__(self, directory: str | Path) -> None:
        from cronwrap.notify.spool import Spool

        self.spool = Spool(directory)
        self.sent = 0  # of the last replay
        self.left = 0

    def put(self, alert: Alert, channel: str, *, job: str, urls: list[str]) -> None:
        import datetime

        at = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
        record: dict[str, object] = {"v": 1, "job": job, "channel": channel, "at": at}
        if channel == "apprise":  # so `cronwrap flush` can send it without the job's config
            record["urls"] = [u for u in urls if not u.startswith(WEBHOOK_SCHEMES)]
        self.spool.add({**record, "event": alert.event, "facts": alert.facts})

    def replay(
        self,
        job: str | None,
        urls: list[str],
        command: str | None,
        *,
        deadline: float,
        env: Mapping[str, str],
        blocked: set[str],
    ) -> list[str]:
        """Send kept alerts in order: this job's to the channels it still has, or (job None,
        `cronwrap flush`) every job's webhook and Apprise alerts to the URLs they were for
        (a kept alert command waits for its job's next run). A channel that fails again is
        `blocked` for the rest."""
        errors: list[str] = []
        self.sent = self.left = 0
        for path in self.spool.entries():
            try:
                record = self.spool.read(path)
                kept_job, channel = str(record["job"]), str(record["channel"])
                facts, event, at = record["facts"], record["event"], record["at"]
                if not isinstance(facts, dict) or event not in QUEUED_EVENTS:
                    raise ValueError("not an alert")
                targets, cmd = (urls, command) if job is not None else _targets(record, channel)
            except FileNotFoundError:
                continue  # another run took it since the listing: that one sends it
            except (OSError, ValueError, KeyError, TypeError, UnicodeError):
                self.spool.move(path, "quarantine")
                errors.append(f"a malformed kept alert was moved to {self.spool.dir}/quarantine")
                continue
            if job is not None and kept_job != job:
                continue
            if job is not None and channel not in _channels(targets, cmd):
                self.spool.move(path, "rejected")  # the job no longer alerts there
                continue
            if channel in blocked or time.monotonic() >= deadline or (job is None and cmd):
                blocked.add(channel)
                self.left += 1
                continue
            claimed = self.spool.claim(path)
            if claimed is None:  # another run is sending it
                continue
            late = Alert(str(event), {**facts, "late_from": at})
            late.title = f"(late, from {at}) {late.title}"
            late.text = f"(late, from {at}) {late.text}"
            err = _deliver(channel, targets, cmd, late, deadline, env)
            if err is None:
                self.spool.remove(claimed)
                self.sent += 1
            else:
                self.spool.unclaim(claimed)
                blocked.add(channel)
                self.left += 1
                errors.append(f"{_label(channel)}: kept alert from {at}: {err}")
        return errors


def _targets(record: Mapping[str, object], channel: str) -> tuple[list[str], str | None]:
    """The URLs (and command marker) a kept alert goes to without the job's config."""
    if channel == "command":
        return [], "command"
    if channel == "apprise":
        urls = record.get("urls")
        if not isinstance(urls, list) or not all(isinstance(u, str) for u in urls):
            raise ValueError("no Apprise URLs")
        return list(urls), None
    if not channel.startswith(WEBHOOK_SCHEMES):
        raise ValueError("unknown channel")
    return [channel], None


def _retry_once(send: Any, deadline: float) -> str | None:
    err = send()
    if err and time.monotonic() < deadline - 0.1:
        time.sleep(min(0.5, max(0.0, (deadline - time.monotonic()) / 4)))
        err = send()
    return str(err) if err else None


def _left(deadline: float) -> float:
    return max(0.05, deadline - time.monotonic())


def _webhook(url: str, alert: Alert, deadline: float) -> str | None:
    from cronwrap.notify.http import post

    body = json.dumps(alert.payload(), default=str).encode()
    try:
        status, _, _ = post(
            url,
            body,
            timeout=_left(deadline),
            headers={"Content-Type": "application/json", "User-Agent": "cronwrap"},
        )
    except OSError as err:
        return "timed out" if isinstance(err, TimeoutError) else (err.strerror or str(err))
    return None if 200 <= status < 300 else f"HTTP {status}"


def _apprise(urls: list[str], alert: Alert, deadline: float) -> str | None:
    try:
        import apprise
    except ImportError:
        return f"Apprise is not installed (cronwrap's alerts extra): {_EXTRA_HINT}"
    import logging

    logging.getLogger("apprise").setLevel(logging.CRITICAL)  # we report failures ourselves
    app = apprise.Apprise()
    for url in urls:
        if not app.add(url):
            return f"cannot use {redact_url(url)}"
    try:
        ok = app.notify(title=alert.title, body=alert.text)
    except Exception as err:
        return f"{type(err).__name__}: {err}"
    return None if ok else "delivery failed"


def _command(command: str, alert: Alert, deadline: float, env: Mapping[str, str]) -> str | None:
    child_env = dict(env)
    child_env["CRONWRAP_EVENT"] = alert.event
    for key, value in alert.facts.items():
        if key == "output_tail":
            continue
        child_env[f"CRONWRAP_{key.upper()}"] = "" if value is None else str(value)
    try:
        proc = subprocess.run(
            ["/bin/sh", "-c", command],
            env=child_env,
            timeout=_left(deadline),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            check=False,
            start_new_session=True,
        )
    except subprocess.TimeoutExpired:
        return "timed out"
    except OSError as err:
        return err.strerror or str(err)
    if proc.returncode != 0:
        # masked before it is cut, so the cut cannot leave part of a secret unrecognised
        said = Redactor().text(proc.stderr.decode(errors="replace"))
        return f"exit code {proc.returncode}: {said[-200:]}"
    return None


def in_background(fn: Callable[[], object]) -> threading.Thread:
    """Run `fn` in a daemon thread (alerts raised while the job still runs must not stop the
    output pump); returns the thread so the caller can join it before exiting."""
    import threading

    thread = threading.Thread(target=fn, daemon=True)
    thread.start()
    return thread

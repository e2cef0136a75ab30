"""`cronwrap explain`: the words, the JSON, DST notes, warnings, and no tracebacks ever."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from cronwrap.cli.app import cli
from cronwrap.cron.explain import describe, explain
from cronwrap.cron.schedule import parse
from cronwrap.errors import ExitCode, ScheduleError

AFTER = datetime(2026, 1, 1, tzinfo=timezone.utc)


def run(*args: str):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(cli, list(args))


@pytest.mark.parametrize(
    ("expr", "words"),
    [
        (
            "0 0 15 * 5",
            "At 00:00 on day 15 of the month or on any Friday (cron runs on either; "
            "it does not mean Friday the 15th)",
        ),
        (
            "0 0 */2 * 1",
            "At 00:00 on Mondays that are odd days of the month (the day-of-month "
            "field starts with `*`, so cron requires both)",
        ),
        ("* 2 * * *", "Every minute from 02:00 through 02:59 every day"),
        ("*/7 * * * *", "At minutes 0, 7, …, 56 of every hour every day"),
        ("0 9-17 * * mon-fri", "At minute 0 of hours 9-17 on Monday through Friday"),
        ("@weekly", "At 00:00 on Sundays"),
        ("0 0 1 jan,jul *", "At 00:00 on day 1 of the month in January and July"),
        ("* * * * *", "Every minute"),
        ("0 0 1,15 * *", "At 00:00 on days 1 and 15 of the month"),
        ("30 4 * * 0,6", "At 04:30 on Sundays and Saturdays"),
        ("0 0 */2 * *", "At 00:00 on odd-numbered days of the month (1, 3, …, 31)"),
    ],
)
def test_plain_words(expr: str, words: str) -> None:
    assert describe(parse(expr)) == words


@pytest.mark.parametrize(
    ("expr", "code"),
    [
        ("* 2 * * *", "every-minute-in-hour"),
        ("*/7 * * * *", "uneven-step"),
        ("0 */5 * * *", "uneven-step"),
        ("0 0 */2 * *", "dom-step"),
        ("0 0 13 * 5", "dom-dow-or"),
        ("0 0 */2 * 1", "star-and"),
        ("0 0 31 * *", "short-months"),
        ("0 0 29 2 *", "leap-day"),
        ("0 0 * * 7", "dow-7"),
        ("@reboot", "reboot"),
    ],
)
def test_pitfall_warnings_have_stable_codes(expr: str, code: str) -> None:
    x = explain(expr, tz=ZoneInfo("UTC"), after=AFTER)
    assert code in [w.code for w in x.warnings]


def test_no_warning_for_a_plain_daily_job() -> None:
    assert explain("30 4 * * *", tz=ZoneInfo("UTC"), after=AFTER).warnings == []


def test_every_minute_warning_suggests_the_fix() -> None:
    [w] = [
        w
        for w in explain("* 2 * * *", tz=ZoneInfo("UTC"), after=AFTER).warnings
        if w.code == "every-minute-in-hour"
    ]
    assert "60 times" in w.message and w.fix == "did you mean `0 2 * * *`?"


def test_dst_notes_for_fixed_and_wildcard_jobs() -> None:
    ny = ZoneInfo("America/New_York")
    fixed = explain("30 1,2 * * *", tz=ny, after=AFTER).dst_notes
    assert len(fixed) == 2
    assert "2026-03-08" in fixed[0].message and "starts at 03:00" in fixed[0].message
    assert "once" in fixed[1].message
    wild = explain("*/15 1-2 * * *", tz=ny, after=AFTER).dst_notes
    assert "do not happen" in wild[0].message and "twice" in wild[1].message
    assert explain("0 12 * * *", tz=ny, after=AFTER).dst_notes == []
    assert explain("30 2 * * *", tz=ZoneInfo("UTC"), after=AFTER).dst_notes == []


def test_lord_howe_half_hour_shift() -> None:
    lh = ZoneInfo("Australia/Lord_Howe")
    notes = explain("15 2 * * *", tz=lh, after=datetime(2025, 9, 1, tzinfo=timezone.utc))
    assert any("02:00-02:30" in n.message or "02:30" in n.message for n in notes.dst_notes)


def test_whole_crontab_line_checks_the_command() -> None:
    x = explain("0 0 15 * 5 backup --to=/srv %x", tz=ZoneInfo("UTC"), after=AFTER)
    assert x.command == "backup --to=/srv %x"
    codes = [w.code for w in x.warnings]
    assert "percent" in codes and "relative-command" in codes
    x = explain("@daily cronwrap run -- /bin/true", tz=ZoneInfo("UTC"), after=AFTER)
    assert "no-name" in [w.code for w in x.warnings]


def test_never_firing_is_an_error() -> None:
    with pytest.raises(ScheduleError, match="never runs"):
        explain("0 0 30 2 *", tz=ZoneInfo("UTC"), after=AFTER)


# ---------------------------------------------------------------- CLI


def test_cli_explain_text() -> None:
    result = run(
        "explain",
        "0 0 15 * 5",
        "--tz",
        "Europe/Berlin",
        "--after",
        "2026-01-01T00:00:00+00:00",
        "--count",
        "3",
    )
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "or on any Friday" in out and "Next runs" in out
    assert "Fri 2026-01-02 00:00 CET" in out and "(Thu 2026-01-01 23:00 UTC)" in out


def test_cli_explain_unquoted_fields_are_joined() -> None:
    result = run("explain", "0", "0", "*", "*", "*", "--count", "1")
    assert result.exit_code == 0, result.output


def test_cli_explain_json_schema() -> None:
    result = run(
        "explain",
        "--json",
        "--tz",
        "America/New_York",
        "--after",
        "2025-03-08T12:00:00-05:00",
        "0 2 * * *",
    )
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert set(doc) == {
        "expression",
        "macro",
        "expanded",
        "valid",
        "fields",
        "day_rule",
        "dst_class",
        "description",
        "tz",
        "next_runs",
        "dst_notes",
        "warnings",
        "command",
        "runs_end",
    }
    assert doc["day_rule"] == "and" and doc["dst_class"] == "fixed-time"
    assert doc["next_runs"][0] == {
        "at": "2025-03-09T03:00:00-04:00",
        "utc": "2025-03-09T07:00:00+00:00",
    }
    assert [f["field"] for f in doc["fields"]] == [
        "minute",
        "hour",
        "day-of-month",
        "month",
        "day-of-week",
    ]
    assert doc["dst_notes"][0]["kind"] == "forward"


def test_cli_explain_invalid_exits_1_with_caret() -> None:
    result = run("explain", "61 * * * *")
    assert result.exit_code == ExitCode.ERROR, result.output
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert lines[0] == 'cronwrap: minute "61" is out of range 0-59'
    assert lines[2] == "^^"


def test_cli_explain_bad_zone_is_one_line() -> None:
    result = run("explain", "0 0 * * *", "--tz", "Mars/Olympus")
    assert result.exit_code == ExitCode.ERROR
    assert result.stderr.strip().startswith("cronwrap: unknown time zone")


def test_cli_explain_no_color_and_plain_when_not_a_tty() -> None:
    result = CliRunner().invoke(cli, ["explain", "* 2 * * *"], env={"NO_COLOR": "1"})
    assert result.exit_code == 0
    assert "\x1b[" not in result.output
    forced = CliRunner().invoke(cli, ["explain", "* 2 * * *", "--color", "always"])
    assert "\x1b[" in forced.output


# ---------------------------------------------------------------- properties


def _safe_explain(text: str) -> None:
    result = CliRunner().invoke(cli, ["explain", "--", text])
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(
        result.exception
    )
    assert result.exit_code in (0, 1, 2), result.output
    if result.exit_code == 1:
        first = result.stderr.splitlines()[0]
        assert first.startswith("cronwrap: ") and "Traceback" not in result.stderr


CRONISH = st.lists(
    st.one_of(
        st.sampled_from(
            [
                "*",
                "*/5",
                "0",
                "1-5",
                "MON",
                "jan",
                "7",
                "L",
                "#",
                "?",
                ",",
                "-",
                "/",
                "60",
                "0-59/61",
                "5/15",
                "@daily",
                "@reboot",
                "@x",
                "%",
                "\\",
            ]
        ),
        st.text(alphabet="0123456789*/-,LW#?HRmonjaSUN@ \t", max_size=6),
    ),
    min_size=0,
    max_size=8,
).map(" ".join)


@settings(max_examples=300, deadline=None)
@given(CRONISH)
def test_explain_never_crashes_on_cron_like_input(text: str) -> None:
    _safe_explain(text)


@settings(max_examples=150, deadline=None)
@given(st.text(max_size=40))
def test_explain_never_crashes_on_any_text(text: str) -> None:
    _safe_explain(text)


@pytest.mark.skipif(sys.version_info < (3, 11), reason="cronsim needs Python 3.11")
def test_cross_check_with_cronsim_where_it_agrees_with_cron() -> None:
    """cronsim agrees with cron except for macros, a-a/n, never-firing expressions and
    `after` inside a repeated hour (cron-semantics.md §7); compare only outside those."""
    import random

    cronsim = pytest.importorskip("cronsim")
    rng = random.Random(2026)
    zones = ["UTC", "Europe/Berlin", "America/New_York", "Australia/Sydney"]
    compared = 0
    for _ in range(300):
        expr = " ".join(
            [
                rng.choice(["*", "0", "*/5", "7,37", "10-50/20", "59"]),
                rng.choice(["*", "0", "2", "1-3", "*/6", "9-17"]),
                rng.choice(["*", "1", "15", "*/2", "1-7", "29", "31"]),
                rng.choice(["*", "2", "3,10", "*/4", "jan-mar"]),
                rng.choice(["*", "0", "1-5", "5", "*/2", "sun,sat"]),
            ]
        )
        schedule = parse(expr)
        if schedule.never:
            continue
        tz = ZoneInfo(rng.choice(zones))
        # start at noon local (never inside a repeated hour)
        after = datetime(2025, rng.randint(1, 12), rng.randint(1, 28), 12, tzinfo=tz)
        ours = schedule.next_runs(after, tz, 20)
        it = cronsim.CronSim(expr, after)
        theirs = [next(it) for _ in range(len(ours))]
        assert [o.astimezone(timezone.utc) for o in ours] == [
            t.astimezone(timezone.utc) for t in theirs
        ], (expr, tz, after)
        compared += 1
    assert compared > 200


# ---------------------------------------------------------------- the fast entry point


def cw(*args: str, env: dict | None = None):  # type: ignore[no-untyped-def]
    import os
    import subprocess

    return subprocess.run(
        [sys.executable, "-m", "cronwrap", *args],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, **(env or {})},
    )


def test_fast_entry_prints_what_the_click_command_prints() -> None:
    args = [
        "explain",
        "30 2 * * *",
        "--tz",
        "America/New_York",
        "--after",
        "2026-01-01T00:00:00+00:00",
        "--count",
        "3",
    ]
    fast = cw(*args)
    slow = run(*args)
    assert fast.returncode == 0 and slow.exit_code == 0
    # "in …" counts from the real now, which moves between the two calls
    assert _no_relative(fast.stdout) == _no_relative(slow.stdout)
    assert cw(*args, "--json").stdout == run(*args, "--json").stdout


def test_fast_entry_options_match_the_click_command() -> None:
    from cronwrap.views.explain import _VALUE_OPTIONS

    click_opts = {o for p in cli.commands["explain"].params for o in p.opts if o.startswith("--")}
    assert click_opts == {*_VALUE_OPTIONS, "--json"}


@pytest.mark.parametrize(
    ("args", "code", "stderr"),
    [
        (["61 * * * *"], 1, 'cronwrap: minute "61" is out of range 0-59'),
        (["0 0 * * *", "--tz", "Nowhere/Land"], 1, "cronwrap: unknown time zone"),
        (["0 0 * * *", "--count", "x"], 2, "Error: --count"),
        (["0 0 * * *", "--bogus"], 2, "Error: no such option: --bogus"),
        ([], 2, "Error: missing argument EXPRESSION"),
        (["0 0 * * *", "--after", "yesterday"], 2, "--after"),
    ],
)
def test_fast_entry_errors(args: list[str], code: int, stderr: str) -> None:
    result = cw("explain", *args)
    assert result.returncode == code, result.stderr
    assert stderr in result.stderr and "Traceback" not in result.stderr


def test_fast_entry_help_goes_to_click() -> None:
    result = cw("explain", "--help")
    assert result.returncode == 0 and "Usage: cronwrap explain" in result.stdout


def test_fast_entry_colour_rules() -> None:
    assert "\x1b[" not in cw("explain", "* 2 * * *").stdout  # not a TTY
    assert "\x1b[" in cw("explain", "* 2 * * *", env={"FORCE_COLOR": "1"}).stdout
    assert (
        "\x1b[" not in cw("explain", "* 2 * * *", env={"FORCE_COLOR": "1", "NO_COLOR": "1"}).stdout
    )
    assert "\x1b[" in cw("explain", "* 2 * * *", "--color", "always", env={"NO_COLOR": "1"}).stdout


def test_explain_loads_neither_click_nor_rich() -> None:
    import subprocess

    probe = (
        "import sys; from cronwrap.views import explain as explaincmd; "
        "rc = explaincmd.main(['0 0 15 * 5']); "
        "print(sorted({'click', 'rich', 'yaml', 'requests'} & set(sys.modules)), "
        "file=sys.stderr)"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert out.stderr.strip() == "[]"


def test_cron_tz_prefix_sets_the_zone() -> None:
    result = cw(
        "explain", "CRON_TZ=Asia/Tokyo 0 9 * * *", "--json", "--after", "2025-12-31T23:00:00+00:00"
    )
    doc = json.loads(result.stdout)
    assert doc["tz"] == "Asia/Tokyo"
    assert doc["next_runs"][0]["at"] == "2026-01-01T09:00:00+09:00"
    explicit = json.loads(
        cw("explain", "CRON_TZ=Asia/Tokyo 0 9 * * *", "--json", "--tz", "UTC").stdout
    )
    assert explicit["tz"] == "UTC"


def _no_relative(text: str) -> str:
    import re

    return re.sub(r"  (in \S.*|\S.* ago)$", "", text, flags=re.M)


# ---------------------------------------------------------------- issue 17


@pytest.mark.parametrize(
    ("expr", "guess"),
    [
        ("0 0 12 * * ?", "0 12 * * *"),
        ("*/10 * * * * *", "* * * * *"),
        ("0 30 9 * * MON-FRI ?", "30 9 * * MON-FRI"),
        ("0 0 1 1 * 2030", "0 0 1 1 *"),
        ("0 0 12 * * 5", "0 12 * * 5"),
    ],
    ids=["quartz-question-mark", "seconds-star", "seven-fields", "year", "bare-number"],
)
def test_sixth_field_that_is_no_command_is_a_seconds_or_year_mistake(expr: str, guess: str) -> None:
    result = cw("explain", expr)
    assert result.returncode == ExitCode.ERROR, result.stdout
    assert "no seconds or year field" in result.stderr and repr(guess) in result.stderr
    assert "Traceback" not in result.stderr and result.stdout == ""
    assert run("explain", expr).exit_code == ExitCode.ERROR


def test_a_sixth_word_that_is_a_command_still_explains_the_line() -> None:
    result = run("explain", "0 2 * * * /usr/bin/backup --all", "--count", "1")
    assert result.exit_code == 0, result.output
    assert "Command: /usr/bin/backup --all" in result.stdout


@pytest.mark.parametrize("expr", ["¹ * * * *", "５ * * * *", "*/² * * * *", "0 ٣ * * *"])
def test_non_ascii_digits_are_rejected_cleanly(expr: str) -> None:
    result = cw("explain", expr)
    assert result.returncode == ExitCode.ERROR, result.stdout
    assert result.stderr.startswith("cronwrap: bad ") and "Traceback" not in result.stderr
    with pytest.raises(ScheduleError):
        parse(expr)


def test_run_lists_continue_past_400_years_and_say_where_the_calendar_ends() -> None:
    args = ["0 0 1 1 *", "--tz", "UTC", "--after", "2026-06-01T00:00", "--count", "1000"]
    doc = json.loads(cw("explain", *args, "--json").stdout)
    assert len(doc["next_runs"]) == 1000 and doc["runs_end"] is None
    assert doc["next_runs"][-1]["at"] == "3026-01-01T00:00:00+00:00"
    late = cw("explain", "0 0 1 1 *", "--tz", "UTC", "--after", "9990-06-01T00:00", "--count", "20")
    assert late.returncode == 0, late.stderr
    assert late.stdout.count("-01-01 00:00 UTC") == 9
    assert "the calendar ends with the year 9999" in late.stdout


@pytest.mark.parametrize(
    "args",
    [
        ["--after", "9999-12-31T00:00"],
        ["--after", "9999-12-31T23:59", "--tz", "America/New_York"],
        ["--after", "0001-01-01T00:00", "--tz", "Asia/Tokyo"],
    ],
)
def test_far_after_gives_a_clean_message(args: list[str]) -> None:
    result = cw("explain", "0 0 * * *", *args)
    assert result.returncode in (0, ExitCode.USAGE), result.stderr
    assert "Traceback" not in result.stderr
    assert "calendar ends" in result.stdout or "outside years 1-9999" in result.stderr


def test_a_24_hour_zone_jump_is_a_clock_correction_not_dst() -> None:
    """Samoa skipped 2011-12-30: Debian cron treats a change of 3 h or more as a clock
    correction, so nothing is caught up and no instant is listed twice."""
    apia = ZoneInfo("Pacific/Apia")
    after = datetime(2011, 12, 28, 12, 0, tzinfo=timezone.utc)
    for expr in ("0 0 * * *", "30 12 * * *", "0 * * * *"):
        runs = parse(expr).next_runs(after, apia, 80)
        utc = [r.astimezone(timezone.utc) for r in runs]
        assert len(set(utc)) == len(utc) and utc == sorted(utc), expr
        assert not any(r.date() == datetime(2011, 12, 30).date() for r in runs), expr
    daily = parse("0 0 * * *").next_runs(after, apia, 3)
    assert [r.isoformat() for r in daily] == [
        "2011-12-29T00:00:00-10:00",
        "2011-12-31T00:00:00+14:00",
        "2012-01-01T00:00:00+14:00",
    ]
    x = explain("0 0 * * *", tz=apia, after=after)
    [note] = x.dst_notes
    assert "clock correction, not DST" in note.message and "does not happen" in note.message


def test_after_without_offset_is_wall_time_and_keeps_the_second_pass_at_fall_back() -> None:
    """01:10 in New York on 2025-11-02 is the first (EDT) pass; a wildcard job still runs in
    the EST pass, and a fixed-time job once, in the EDT pass."""
    args = ["--tz", "America/New_York", "--after", "2025-11-02T01:10", "--count", "4", "--json"]
    wild = json.loads(cw("explain", "*/30 1 * * *", *args).stdout)
    assert [r["at"] for r in wild["next_runs"]] == [
        "2025-11-02T01:30:00-04:00",
        "2025-11-02T01:00:00-05:00",
        "2025-11-02T01:30:00-05:00",
        "2025-11-03T01:00:00-05:00",
    ]
    fixed = json.loads(cw("explain", "30 1 * * *", *args).stdout)
    assert [r["at"] for r in fixed["next_runs"]][:2] == [
        "2025-11-02T01:30:00-04:00",
        "2025-11-03T01:30:00-05:00",
    ]


def test_in_counts_from_now_not_from_after() -> None:
    result = cw("explain", "0 0 1 1 *", "--tz", "UTC", "--after", "2000-01-01T00:00")
    assert result.returncode == 0, result.stderr
    first = next(ln for ln in result.stdout.splitlines() if "2001-01-01" in ln)
    assert first.endswith("years ago"), first


def test_utc_times_are_printed_once_in_utc() -> None:
    result = cw("explain", "0 3 * * *", "--tz", "UTC", "--count", "2")
    lines = [ln for ln in result.stdout.splitlines() if " 03:00 UTC" in ln]
    assert len(lines) == 2 and all(ln.count("UTC") == 1 for ln in lines), lines
    berlin = cw("explain", "0 3 * * *", "--tz", "Europe/Berlin", "--count", "1").stdout
    assert "UTC)" in berlin


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cronwrap", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_escape_sequences_in_what_is_explained_never_reach_the_terminal(tmp_path: Path) -> None:
    """A crontab line's command, or an expression, with ESC [2J (clear the screen) or an OSC
    title sequence: explain, its error and its caret, and lint's findings printed them raw."""
    tab = tmp_path / "tab"
    tab.write_text('0 0 * * * cronwrap run --name "x\x1b]0;T\x07y" -- true\n')
    outputs = []
    for args in (
        ["explain", "0 0 * * * echo \x1b[2J"],
        ["explain", "0 0 * * \x1b[2J"],
        ["lint", str(tab)],
    ):
        r = _cli(*args)
        assert "Traceback" not in r.stderr
        outputs.append(r.stdout + r.stderr)
    for text in outputs:
        assert "\x1b" not in text and "\x07" not in text, text
    assert "Command: echo" in outputs[0] and "bad day-of-week" in outputs[1]
    assert "--name xy" in outputs[2]


def test_a_number_of_5000_digits_is_out_of_range_not_a_traceback(tmp_path: Path) -> None:
    """int() refuses more than 4300 digits: explain and lint ended in a ValueError."""
    n = "9" * 5000
    tab = tmp_path / "tab"
    tab.write_text(f"{n} * * * * true\n0 */{n} * * * true\n")
    for args in (["explain", f"{n} * * * *"], ["explain", f"*/{n} * * * *"], ["lint", str(tab)]):
        r = _cli(*args)
        assert "Traceback" not in r.stderr, (args, r.stderr[-300:])
    bad = _cli("explain", f"{n} * * * *")
    assert bad.returncode != 0 and 'minute "99999999…" is out of range 0-59' in bad.stderr

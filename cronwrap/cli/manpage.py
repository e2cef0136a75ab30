"""Man pages made from the click definitions, so every command and option is documented the
moment it exists, plus the sections a cron tool needs that click does not know (EXIT STATUS,
ENVIRONMENT, FILES, EXAMPLES). `python -m cronwrap.cli.manpage man/` writes them; a test fails when
the committed pages differ from what this produces. CLI layer: imports click."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from cronwrap import __version__

DATE = "2026-11-28"

EXIT_STATUS = [
    (
        "0",
        "success; also a run skipped because the previous one holds the lock "
        "(see --overlap-exit-code)",
    ),
    ("1", "an error; an invalid expression (explain); findings (lint); an unhealthy job (status)"),
    ("2", "a usage error (bad flag or argument), except in run"),
    ("78", "an invalid config file (config)"),
    ("child's code", "run: the command's own exit status, passed through"),
    ("124", "run: the command was killed by --timeout"),
    ("125", "run: cronwrap itself failed before the job could start (bad flag, bad config)"),
    ("126", "run: the command was found but could not be executed"),
    ("127", "run: the command was not found"),
    ("128+N", "run: the command died from signal N, or cronwrap was cancelled by signal N"),
]

ENVIRONMENT = [
    ("CRONWRAP_HOME", "put config, state, logs and locks under this directory"),
    ("CRONWRAP_CONFIG", "the config file to read"),
    ("CRONWRAP_DEBUG", "show tracebacks for errors"),
    (
        "CRONWRAP_<OPTION>",
        "any run option, e.g. CRONWRAP_TIMEOUT=10m; a flag beats it, it beats the config file",
    ),
    ("NO_COLOR, FORCE_COLOR", "turn colour off or on (--color beats both)"),
    ("CRONWRAP_JOB, CRONWRAP_RUN_ID", "set by run in the command's environment"),
]

FILES = [
    (
        "/etc/cronwrap/config.yaml",
        "config (root); ~/.config/cronwrap/config.yaml for other users; see cronwrap.yaml(5)",
    ),
    ("/var/lib/cronwrap/runs.db", "run history (SQLite); ~/.local/state/cronwrap for other users"),
    ("/var/lib/cronwrap/cronwrap.log", "structured event log, one JSON object per line"),
    ("/var/lib/cronwrap/output/NAME/RUN_ID.log", "captured output of each run"),
    ("/var/lib/cronwrap/outbox/", "pings waiting to be delivered"),
    ("/run/lock/cronwrap/NAME.lock", "overlap locks (flock)"),
]

EXAMPLES = {
    "cronwrap": [
        (
            "Wrap a crontab line",
            "*/15 * * * *  cronwrap run --name sync --timeout 10m -- /usr/local/bin/sync.sh",
        ),
        ("What failed?", "cronwrap status --failed"),
        ("What does a schedule mean?", 'cronwrap explain "0 0 15 * 5" --tz Europe/Berlin'),
    ],
}


def _esc(text: str) -> str:
    out = text.replace("\\", "\\e").replace("-", "\\-")
    lines = []
    for line in out.split("\n"):
        if line.startswith((".", "'")):
            line = "\\&" + line
        lines.append(line)
    return "\n".join(lines)


def _help_text(cmd: click.Command) -> str:
    text = (cmd.help or "").replace("\b\n", "").replace("\b", "")
    return "\n".join(line.strip() for line in text.splitlines())


def _paragraphs(text: str) -> list[str]:
    return [p.strip() for p in text.split("\n\n") if p.strip()]


def _context(cli: click.Group, cmd: click.Command) -> click.Context:
    """A context as a real invocation makes it: the group's settings (-h for help) inherited.
    click caches the help option per command, so a bare Context would make pages depend on
    what ran first."""
    root = click.Context(cli, info_name="cronwrap", **cli.context_settings)
    if cmd is cli:
        return root
    for group in cli.commands.values():  # a subcommand of a group such as `metrics`
        if isinstance(group, click.Group) and cmd in group.commands.values():
            mid = click.Context(group, info_name=group.name, parent=root)
            return click.Context(cmd, info_name=cmd.name, parent=mid, **cmd.context_settings)
    return click.Context(cmd, info_name=cmd.name, parent=root, **cmd.context_settings)


def _option_lines(group: click.Group, cmd: click.Command) -> list[str]:
    out: list[str] = []
    ctx = _context(group, cmd)
    for param in cmd.get_params(ctx):
        if not isinstance(param, click.Option) or param.hidden:
            continue
        names = ", ".join(param.opts + param.secondary_opts)
        metavar = "" if param.is_flag else " " + param.make_metavar(ctx)
        out.append(".TP")
        out.append(f"\\fB{_esc(names)}\\fR{_esc(metavar)}")
        out.append(_esc(param.help or ""))
    return out


def _section(title: str, rows: list[tuple[str, str]]) -> list[str]:
    out = [f".SH {title}"]
    for key, text in rows:
        out += [".TP", f"\\fB{_esc(key)}\\fR", _esc(text)]
    return out


def command_page(group: click.Group, name: str) -> str:
    cmd = group.commands[name]
    ctx = _context(group, cmd)
    usage = " ".join(cmd.collect_usage_pieces(ctx))
    help_text = _help_text(cmd)
    paras = _paragraphs(help_text)
    summary = paras[0].split("\n")[0].rstrip(".") if paras else name
    out = [
        f'.TH CRONWRAP\\-{name.upper()} 1 "{DATE}" "cronwrap {__version__}" "User Commands"',
        ".SH NAME",
        f"cronwrap\\-{_esc(name)} \\- {_esc(summary[0].lower() + summary[1:])}",
        ".SH SYNOPSIS",
        f"\\fBcronwrap {_esc(name)}\\fR {_esc(usage)}",
        ".SH DESCRIPTION",
    ]
    examples = []
    for para in paras:
        if para.startswith("Example"):
            examples = [ln for ln in para.split("\n")[1:] if ln.strip()]
            continue
        out += [_esc(para), ".PP"]
    if out[-1] == ".PP":
        out.pop()
    out += [".SH OPTIONS", *_option_lines(group, cmd)]
    if isinstance(cmd, click.Group):
        for sub_name in sorted(cmd.commands):
            sub = cmd.commands[sub_name]
            sub_paras = _paragraphs(_help_text(sub))
            out += [
                f".SH {_esc(name.upper())} {_esc(sub_name.upper())}",
                f"\\fBcronwrap {_esc(name)} {_esc(sub_name)}\\fR "
                f"{_esc(' '.join(sub.collect_usage_pieces(_context(group, sub))))}",
                ".PP",
            ]
            out += [_esc(p) for p in sub_paras if not p.startswith("Example")]
            out += [".PP", "Options:", *_option_lines(group, sub)]
    if name == "run":
        out += _section("EXIT STATUS", [r for r in EXIT_STATUS if r[0] not in ("1", "2", "78")])
        out += _section("ENVIRONMENT", ENVIRONMENT)
    if examples:
        out.append(".SH EXAMPLES")
        for line in examples:
            out += [".PP", ".nf", f"    {_esc(line.strip())}", ".fi"]
    out += [".SH SEE ALSO", "\\fBcronwrap\\fR(1), \\fBcronwrap.yaml\\fR(5), \\fBcrontab\\fR(5)"]
    return "\n".join(out) + "\n"


def main_page(group: click.Group) -> str:
    out = [
        f'.TH CRONWRAP 1 "{DATE}" "cronwrap {__version__}" "User Commands"',
        ".SH NAME",
        "cronwrap \\- supervise cron jobs: locks, timeouts, retries, logs, history, pings",
        ".SH SYNOPSIS",
        "\\fBcronwrap\\fR [\\fB\\-\\-debug\\fR] [\\fB\\-\\-config\\fR \\fIFILE\\fR] "
        "\\fICOMMAND\\fR [\\fIARGS\\fR]...",
        ".SH DESCRIPTION",
        _esc(
            "cronwrap makes every crontab line observable and safe. Put cronwrap run in front "
            "of the command and the job gets an overlap lock, a hard timeout that kills the "
            "whole process tree, retries for retryable failures, a JSON-lines event log, a run "
            "history in SQLite and optional Healthchecks.io heartbeats. A failure of "
            "cronwrap's own monitoring never stops the job or changes its exit code."
        ),
        ".SH OPTIONS",
        *_option_lines(group, group),
        ".SH COMMANDS",
    ]
    for name in sorted(group.commands):
        cmd = group.commands[name]
        summary = _paragraphs(_help_text(cmd))[0].split("\n")[0]
        out += [
            ".TP",
            f"\\fBcronwrap {_esc(name)}\\fR",
            _esc(summary) + f" See \\fBcronwrap\\-{_esc(name)}\\fR(1).",
        ]
    out += _section("EXIT STATUS", EXIT_STATUS)
    out += _section("ENVIRONMENT", ENVIRONMENT)
    out += _section("FILES", FILES)
    out.append(".SH EXAMPLES")
    for title, line in EXAMPLES["cronwrap"]:
        out += [".PP", _esc(title) + ":", ".nf", f"    {_esc(line)}", ".fi"]
    see = ", ".join(f"\\fBcronwrap\\-{_esc(n)}\\fR(1)" for n in sorted(group.commands))
    out += [
        ".SH SEE ALSO",
        see + ", \\fBcronwrap.yaml\\fR(5), \\fBcrontab\\fR(5), \\fBcron\\fR(8), \\fBflock\\fR(1)",
    ]
    return "\n".join(out) + "\n"


def config_page() -> str:
    from cronwrap.cli.common import default_text
    from cronwrap.options import RUN_OPTIONS

    out = [
        f'.TH CRONWRAP.YAML 5 "{DATE}" "cronwrap {__version__}" "File Formats"',
        ".SH NAME",
        "cronwrap.yaml \\- configuration file of cronwrap",
        ".SH SYNOPSIS",
        "/etc/cronwrap/config.yaml, ~/.config/cronwrap/config.yaml, $CRONWRAP_HOME/config.yaml",
        ".SH DESCRIPTION",
        _esc(
            "A YAML mapping with two keys. defaults: holds options for every job; jobs: maps "
            "job names (as given to cronwrap run --name) to their options. Keys are the run "
            "options without the leading dashes, with _ or -. Precedence: command-line flag > "
            "CRONWRAP_* environment variable > the job's section > defaults > built-in. "
            "Durations are 90, 30s, 5m, 1h30m, 2d; sizes 10M, 512k; exit-code lists "
            "75,100-110. Secrets (ping, ping_uuid, ping_key) may be file:PATH. A syntax error "
            "is reported as file:line:col; an unknown key or a wrong type names the key; "
            "nothing runs on an invalid config."
        ),
        ".SH KEYS",
    ]
    for opt in RUN_OPTIONS:
        if not opt.config:
            continue
        text = default_text(opt)
        default = "" if text is None else f" (default: {text})"
        out += [".TP", f"\\fB{_esc(opt.name)}\\fR", _esc(opt.help + default)]
    out += [
        ".SH EXAMPLE",
        ".nf",
        _esc("defaults:\n  timeout: 1h\njobs:\n  backup:\n    timeout: 2h\n    retries: 2"),
        ".fi",
        ".SH SEE ALSO",
        "\\fBcronwrap\\fR(1), \\fBcronwrap\\-run\\fR(1)",
    ]
    return "\n".join(out) + "\n"


def pages(group: click.Group) -> dict[str, str]:
    out = {"cronwrap.1": main_page(group), "cronwrap.yaml.5": config_page()}
    for name in group.commands:
        out[f"cronwrap-{name}.1"] = command_page(group, name)
    return out


def write(directory: Path, group: click.Group) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for filename, text in pages(group).items():
        path = directory / filename
        path.write_text(text)
        written.append(path)
    return written


if __name__ == "__main__":
    from cronwrap.cli.app import cli

    for p in write(Path(sys.argv[1] if len(sys.argv) > 1 else "man"), cli):
        print(p)

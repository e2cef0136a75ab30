"""Keeping secrets out of everything cronwrap writes or sends: ping and alert URLs are shown
with their secret parts cut, and output, commands and reasons are masked before they go into
pings, alerts, the event log or the history. Standard library only."""

from __future__ import annotations

import re
from bisect import bisect_right
from collections.abc import Callable, Iterable, Mapping

MASK = "[REDACTED]"
# output read beyond each cut (the stored tail, the ping body), so that a secret across the cut
# is matched and masked whole before the cut is made
REDACT_MARGIN = 4096

# the names of headers (and of keys in JSON) whose value is a credential, each of a fixed
# width, since they are read behind a `:` (X-Api-Key ends with api-key, X-Auth-Token with …)
_HEADER_NAMES = (
    *("api[-_]key", "apikey", "auth[-_]key", "client[-_]secret", "password"),
    *(f"{kind}[-_]token" for kind in ("auth", "access", "refresh", "api", "private", "job")),
    *(f"{kind}[-_]token" for kind in ("vault", "consul", "nomad")),
)


def _names_before(*names: str) -> str:
    """Look-behinds for `NAME:`, `"NAME":` and `'NAME':`, read at the `:`."""
    return "|".join(f"(?<={name}:)|(?<={name}[\"']:)" for name in names)


# shapes of well-known credentials, masked wherever they appear
TOKEN_SHAPES = (
    r"\bgh[pousr]_[A-Za-z0-9]{30,}\b",  # GitHub
    r"\bglpat-[A-Za-z0-9_-]{20,}\b",  # GitLab
    r"\bxox[abposr]-[A-Za-z0-9-]{10,}\b",  # Slack
    r"\bAKIA[0-9A-Z]{16}\b",  # AWS access key id
    r"\bsk-[A-Za-z0-9_-]{20,}\b",  # OpenAI-style secret keys
    r"\beyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\b",  # JWT
    r"\b(?i:bearer)\s+[A-Za-z0-9._~+/-]{16,}=*",  # Authorization: Bearer …
    r"(?<=://)[^/\s:@]*:[^/\s@]+(?=@)",  # user:password@ in URLs (redis://:password@ too)
    r"https?://hooks\.slack\.com/services/[A-Za-z0-9/]+",
    r"https?://discord(?:app)?\.com/api/webhooks/[A-Za-z0-9/_-]+",
    r"\b[sr]k_(?:live|test)_[A-Za-z0-9]{16,}\b",  # Stripe
    r"\bAIza[0-9A-Za-z_-]{35}\b",  # Google API key
    # an HTTP header that carries a key or token, as curl -H sends it and curl -v shows it, or
    # such a key in a dump of headers or JSON (`'X-Api-Key': '…'`, `"access_token": "…"`):
    # its name stays, and Authorization's scheme (`Authorization: Basic [REDACTED]`). Read from
    # the `:`, the name behind it, so that only a `:` costs more than a glance
    r"(?P<name>:(?i:(?:"
    + _names_before("authorization")  # Proxy-Authorization too
    + r")[ \t]*[\"']?(?:basic|bearer|token|bot|apikey|ssws)[ \t]+|(?:"
    + _names_before(*_HEADER_NAMES)
    + r")[ \t]*))"
    # the value: quoted, or one word (a value masked already is passed over whole: `[REDACTED]}`)
    r"""(?:\[REDACTED\]|'[^'\n]*'|"(?:[^"\\\n]|\\.)*"|[^\s&"',;]+)""",
    # a PEM private key, whole, or up to the end of what was kept of the output
    r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----[\s\S]*?(?:-----END [A-Z0-9 ]*PRIVATE KEY-----|\Z)",
    # the value of password=…, secret=…, token=…, api_key=… (the name stays, to tell what it was)
    r"(?i:(?<=password=)|(?<=passwd=)|(?<=secret=)|(?<=token=)|(?<=api_key=)|(?<=apikey=)"
    r"|(?<=api-key=)|(?<=passphrase=)|(?<=mysql_pwd=)|(?<=password: )|(?<=passwd: )"
    # and the variables programs read a password from (sshpass -e, redis-cli, the AWS CLI)
    r"|(?<=sshpass=)|(?<=rediscli_auth=)|(?<=secret_access_key=))"
    # the value: quoted as the shell quotes it (PGPASSWORD='…' pg_dump), or one bare word
    r"""(?:'[^'\n]*'|"(?:[^"\\\n]|\\.)*"|[^\s&"',;]+)""",
)

# Credentials given as options on a command line (in the stored command, in `set -x` traces
# in the output): the option stays, its value (one shell word, quotes and all) is masked.
# `-u`, `-p` and `-a` mean other things to other programs (`sort -u`, `mkdir -p`, `date -u
# +%H:%M`), so those are read only after the program they belong to, within its command (up
# to `|`, `;`, `&` or a new line outside quotes); `--password VALUE`, `--password=VALUE` and
# the like (`--http-password`, `--passwd`, `--passphrase`, not `--password-file` or
# `--no-password`) are a password whatever the program. A quoted string is read as a command
# line of its own (`sh -c '…; …'`), and options are found outside quotes only.
_WORD = r"""(?:'[^']*'?|"(?:[^"\\]|\\.)*"?|\\.|[^\s'"\\|;&])+"""
_QUOTED = r"""'[^']*'|"(?:[^"\\]|\\.)*\""""
_CURL_FLAGS = "[0-9#:aBfgGhiIjJklLMnNOpqRsSvVZ]*"  # curl's short options that take no value
_LDAP_FLAGS = "[ACLMNSWZcnrtuvx]*"  # the ldap tools' (OpenLDAP) likewise
_MYSQL = r"\b(?:mysql\w*|mariadb(?:-\w+)?)\b"
# (words one of which the command must hold, the program, its option, how many to mask)
_PROGRAM_OPTIONS = (
    # curl: -u/--user USER:PASSWORD (a token is often the user: `-u sk_live_…:`), also run
    # together with other short options (`-su`, `-fsSLu`), and the proxy's -U/--proxy-user
    (("curl",), r"\bcurl\b", rf"-{_CURL_FLAGS}[uU]\s*|--(?:proxy-)?user(?:=|\s+)", 0),
    # lftp -u USER,PASSWORD; smbclient -U USER%PASSWORD
    (("lftp", "smbclient"), r"\b(?:lftp|smbclient)\b", r"-[uU]\s*|--user(?:=|\s+)", 0),
    # mysql and its tools: -pPASSWORD, attached (`-p` alone prompts; the next word is then
    # the database, and so after `--password` without `=`: see _mask_segment)
    (("mysql", "mariadb"), _MYSQL, r"-p(?=\S)", 0),
    (("sshpass",), r"\bsshpass\b", r"-p\s*", 1),  # the first -p: ssh's -p PORT may follow
    (("redis-cli",), r"\bredis-cli\b", r"-a\s*|--pass(?:=|\s+)", 0),
    # ldapsearch, ldapmodify, …: -w PASSWORD (-W prompts, -y FILE reads a file); ldappasswd
    # also -a OLD and -s NEW
    (
        ("ldap",),
        r"\bldap(?:search|modify|add|delete|modrdn|compare|whoami|exop)\b",
        rf"-{_LDAP_FLAGS}w\s*",
        0,
    ),
    (("ldappasswd",), r"\bldappasswd\b", rf"-{_LDAP_FLAGS}[asw]\s*", 0),
    # mongosh, mongo, mongodump, …: -p PASSWORD (a lone -p, before another option, prompts)
    (
        ("mongo",),
        r"\bmongo(?:sh|dump|restore|export|import|stat|top|files)?\b",
        r"-p(?:\s+(?!-)|(?=\w))",
        0,
    ),
    (("zip",), r"\b(?:un)?zip\b", r"-[0-9A-OQ-Za-z]*P\s*", 0),  # zip -P PASSWORD (-rP too)
    (("7z",), r"\b7z[ar]?\b", r"-p(?=\S)", 0),  # 7z -pPASSWORD (a lone -p prompts)
    # openssl's pass:PASSWORD (not env:VAR or file:PATH), and enc -k PASSWORD
    (("openssl",), r"\bopenssl\b", r"-pass(?:in|out)?\s+(?=pass:)|-k\s+", 0),
    # docker login -p PASSWORD, not docker run -p PORTS
    (("login",), r"\b(?:docker|podman|nerdctl)\s+login\b", r"-p\s*", 0),
    (
        ("ipmitool", "sqlcmd", "mosquitto_"),
        r"\b(?:ipmitool|sqlcmd|mosquitto_(?:pub|sub|rr))\b",
        r"-P\s*",
        0,
    ),
)
_ANY_PASSWORD = r"--(?!no-)(?:[a-z0-9]+-)*(?:passw(?:or)?d|passphrase)(?:=|\s+)"  # noqa: S105
_PASSWORD_TRIGGERS = ("passw", "passphrase")
# a token, secret or API key, whatever the program (Go's -token too): an option whose name ends
# so, its value after `=` or a space; not `--token-file PATH` (the name goes on: a path),
# `--max-tokens 5`, or the flags that take no value (`gh auth login --with-token < FILE`,
# `--no-secret`), nor a next word that is an option or a redirection (`--token --verbose`)
_ANY_SECRET = (
    r"--?(?!(?:no|with|show|print)-)(?:[a-z0-9]+-)*[a-z0-9]*"  # noqa: S105 (a pattern)
    r"(?:token|secret|api-?key|secret-(?:access-)?key)(?:=|\s+(?![-<>]))"
)
_SECRET_TRIGGERS = ("token", "secret", "api-key", "apikey")
_PROGRAM_TRIGGERS = (
    *(word for words, *_ in _PROGRAM_OPTIONS for word in words),
    *("htpasswd", *_PASSWORD_TRIGGERS, *_SECRET_TRIGGERS),
)
# a backslash escapes the character after it: a new line (a script's command goes on on the
# next line: `curl \` and then `-u USER:PASS`), or a `;` (find's `-exec … \;`)
_SEGMENT = r"""(?:'[^']*'|"(?:[^"\\]|\\.)*"|\\[\s\S]|[^|;&\n])+"""
# a quoted string read as a command line: a single-quoted one goes on across the two ways to
# write a ' inside one, '\'' (bash's `set -x`) and '"'"' (the stored command, shlex.quote), so
# `sh -c 'sshpass -p '\''PASS'\'' ssh h'` is read as the shell reads it
_SCRIPT = r"""'(?:[^']|'\\''|'"'"')*'|"(?:[^"\\]|\\.)*\""""
_ESCAPED_QUOTE = r"""'\\''|'"'"'"""
# the patterns compiled so far: each is compiled when a command first needs it, since every
# one costs start-up time on every run whose command or output holds its program's name
_options: dict[str, re.Pattern[str]] = {}


def _compiled(pattern: str) -> re.Pattern[str]:
    found = _options.get(pattern)
    if found is None:
        found = _options[pattern] = re.compile(pattern)
    return found


def _value_after(option: str, count: int = 0) -> re.Pattern[str]:
    # a value masked already is passed over (masking twice changes nothing), unless only the
    # first `count` options count: then it is one of them
    fresh = r"(?!\[REDACTED\])" if not count else ""
    return _compiled(rf"((?<!\S)(?:{option})){fresh}{_WORD}")


def _quoted_spans(text: str) -> list[tuple[int, int]]:
    if "'" not in text and '"' not in text:
        return []
    return [m.span() for m in _compiled(_QUOTED).finditer(text)]


def _outside(at: int, spans: list[tuple[int, int]]) -> bool:
    # spans are in order and apart: a binary search, since a long line of output can hold
    # thousands of quoted strings and of program names (a JSON dump), each one tested here
    i = bisect_right(spans, at, key=_start) - 1
    return i < 0 or spans[i][1] <= at


def _start(span: tuple[int, int]) -> int:
    return span[0]


def _first_outside(
    pattern: re.Pattern[str], text: str, spans: list[tuple[int, int]]
) -> re.Match[str] | None:
    return next((m for m in pattern.finditer(text) if _outside(m.start(), spans)), None)


def _mask_values(
    option: re.Pattern[str],
    text: str,
    spans: list[tuple[int, int]],
    start: int,
    stop: int,
    count: int = 0,
) -> str:
    """Mask the values of `option` that begin outside quotes in text[start:stop] (the first
    `count` of them, or all)."""
    out, last, done = [], 0, 0
    for m in option.finditer(text, start):
        if m.start() >= stop or (count and done == count):
            break
        if _outside(m.start(), spans):
            out += [text[last : m.start()], m.group(1), MASK]
            last, done = m.end(), done + 1
    return "".join(out) + text[last:]


def _mask_options(text: str) -> str:
    """The values of credential options on command lines (see _PROGRAM_OPTIONS)."""
    return _compiled(_SEGMENT).sub(lambda m: _mask_segment(m.group(0)), text)


def _mask_segment(part: str) -> str:
    """One command (up to `|`, `;`, `&` or a new line outside quotes, not after a backslash)."""
    if not _has_option_trigger(part):  # most lines of output: no pattern is tried on them
        return part
    if "'" in part or '"' in part:
        part = _compiled(_SCRIPT).sub(_mask_quoted, part)
    spans = _quoted_spans(part)
    for words, program, option, count in _PROGRAM_OPTIONS:
        if not any(word in part for word in words):
            continue
        found = _first_outside(_compiled(program), part, spans)
        if found is not None:
            masked = _value_after(option, count)
            part = _mask_values(masked, part, spans, found.end(), len(part), count)
            spans = _quoted_spans(part)
    if any(word in part for word in _PASSWORD_TRIGGERS):
        # `--password` without `=` takes no value after mysql (it prompts): the next word stays
        found = _first_outside(_compiled(_MYSQL), part, spans)
        split = found.end() if found is not None else len(part)
        part = _mask_values(_value_after(_ANY_PASSWORD), part, spans, 0, split)
        with_equals = _value_after(_ANY_PASSWORD.replace(r"(?:=|\s+)", "="))
        part = _mask_values(with_equals, part, _quoted_spans(part), split, len(part))
    if any(word in part for word in _SECRET_TRIGGERS):
        part = _mask_values(_value_after(_ANY_SECRET), part, _quoted_spans(part), 0, len(part))
    if "htpasswd" in part:
        found = _first_outside(_compiled(r"\bhtpasswd\b"), part, _quoted_spans(part))
        part = part if found is None else _mask_htpasswd(part, found.end())
    return part


def _mask_quoted(match: re.Match[str]) -> str:
    """A quoted string, read as a command line of its own; one whose ' are written '\\'' or
    '"'"' is read with them as ', masked (options and token shapes), and written back so."""
    q = match.group(0)
    body = q[1:-1]
    escaped = _compiled(_ESCAPED_QUOTE).search(body) if q[0] == "'" else None
    script = body if escaped is None else _compiled(_ESCAPED_QUOTE).sub("'", body)
    masked = _mask_options(script) if _has_option_trigger(script) else script
    if escaped is not None and any(t in masked for t in _TRIGGERS):
        masked = _token_shapes().sub(_mask_shape, masked)
    if masked == script:
        return q
    return q[0] + (masked if escaped is None else masked.replace("'", escaped.group(0))) + q[-1]


def _has_escaped_quote(text: str) -> bool:
    return "'\\''" in text or "'\"'\"'" in text


def _mask_htpasswd(part: str, at: int) -> str:
    """`htpasswd -b[c] FILE USER PASSWORD`, `htpasswd -nb USER PASSWORD`: the password is a
    positional argument, masked when -b says it is on the line."""
    flags, words = "", list[tuple[int, int]]()
    takes_value = False
    for m in re.finditer(_WORD, part[at:]):
        word = m.group(0)
        if takes_value:
            takes_value = False
        elif word.startswith("-") and not words:
            flags += word[1:]
            takes_value = word in ("-C", "-r")  # bcrypt cost, rounds
        else:
            words.append((at + m.start(), at + m.end()))
    wanted = 2 if "n" in flags else 3
    if "b" not in flags or len(words) < wanted:
        return part
    start, end = words[wanted - 1]
    return part[:start] + MASK + part[end:]


def _has_option_trigger(text: str) -> bool:
    # a ' written inside single quotes: what is quoted may set a password (sh -c 'PGPASSWORD=…')
    return any(t in text for t in _PROGRAM_TRIGGERS) or _has_escaped_quote(text)


def redact_url(url: str) -> str:
    """`https://hc-ping.com/<uuid>` -> `https://hc-ping.com/…a1b2`; credentials and query
    strings go too. Keeps just enough (scheme, host, last 4 characters) to tell URLs apart."""
    from urllib.parse import urlsplit  # only when a URL is shown: it costs start-up time

    try:
        parts = urlsplit(url)
    except ValueError:
        return "…"
    if not parts.scheme or not parts.netloc:
        # an id (a check's UUID) keeps its last 4 characters, as a URL's path does; anything
        # else (`host=db password=…`, a libpq keyword string) would show a secret's tail
        shaped = len(url) > 8 and re.fullmatch(r"[A-Za-z0-9_-]+", url)
        return "…" + url[-4:] if shaped else "…"
    try:
        host = parts.hostname or ""
        if parts.port:
            host += f":{parts.port}"
    except ValueError:
        host = "?"
    path = parts.path.rstrip("/")
    last = re.sub(r"[^A-Za-z0-9]", "", path)[-4:]
    return f"{parts.scheme}://{host}/…{last}" if path else f"{parts.scheme}://{host}/"


# a token shape can only match text holding one of these; without them the regex (whose
# compilation costs start-up time on every run) is never built
_TRIGGERS = (
    *("gh", "glpat-", "xox", "AKIA", "sk-", "eyJ", "earer", "://", "k_live_", "k_test_", "AIza"),
    *("PRIVATE KEY", "uthorization", "UTHORIZATION", "assw", "ASSW", "ecret=", "ECRET="),
    *("oken=", "OKEN=", "pi_key=", "PI_KEY=", "pikey=", "PIKEY=", "_pwd=", "_PWD="),
    *("pi-key=", "PI-KEY=", "ASSPHRASE=", "assphrase="),
    *("SSHPASS=", "sshpass=", "CLI_AUTH=", "cli_auth=", "ACCESS_KEY=", "access_key="),
    # header names, in the cases they are written in (X-Api-Key, x-api-key, X-API-KEY)
    *("pi-key", "pi-Key", "PI-KEY", "pi_key", "PI_KEY", "pikey", "PIKEY", "piKey", "uth-key"),
    *("uth-Key", "UTH-KEY", "-token", "-Token", "-TOKEN", "_token", "_TOKEN", "_secret"),
    *("-secret", "-Secret", "_SECRET", "-SECRET"),
)
_shapes: list[re.Pattern[str]] = []


def _token_shapes() -> re.Pattern[str]:
    if not _shapes:
        _shapes.append(re.compile("|".join(TOKEN_SHAPES)))
    return _shapes[0]


def _mask_shape(match: re.Match[str]) -> str:
    # what a header's name matched stays (None for the other shapes)
    return (match.group("name") or "") + MASK


def _split_globs(globs: Iterable[str]) -> tuple[list[str], list[str]]:
    """The WORDs of the common `*WORD*` globs (a substring test, without fnmatch's regexes;
    every run tests each environment variable against each glob), and the other globs."""
    words, others = [], []
    for glob in globs:
        inner = glob[1:-1]
        if glob.startswith("*") and glob.endswith("*") and not any(c in inner for c in "*?["):
            words.append(inner)
        else:
            others.append(glob)
    return words, others


def _glob_match(name: str, glob: str) -> bool:
    import fnmatch

    return fnmatch.fnmatchcase(name, glob)


USER_BUDGET_S = 1.0  # most the --redact patterns may take on one text
USER_AFTER_S = 0.05  # on each text after one outran it: a field value takes microseconds


class _TooSlow(Exception):
    pass


class Redactor:
    """Masks secrets: values of secret-looking environment variables, explicit secrets (ping
    URLs, keys), known token shapes and user regexes."""

    def __init__(
        self,
        *,
        env: Mapping[str, str] | None = None,
        env_globs: Iterable[str] = (),
        patterns: Iterable[str] = (),
        secrets: Iterable[str] = (),
        on_slow: Callable[[], object] | None = None,
    ) -> None:
        literals = {s for s in secrets if s and len(s) >= 4}
        words, globs = _split_globs(g.upper() for g in env_globs)
        for name, value in (env or {}).items():
            if len(value) < 4:
                continue
            upper = name.upper()
            if any(w in upper for w in words) or any(_glob_match(upper, g) for g in globs):
                literals.add(value)
        self._literals = sorted(literals, key=len, reverse=True)  # longest first
        user = list(patterns)
        self._user = re.compile("|".join(f"(?:{p})" for p in user)) if user else None
        self._on_slow = on_slow
        self._slow = False  # a user pattern outran USER_BUDGET_S once

    def __call__(self, text: str | None) -> str | None:
        if not text:
            return text
        for literal in self._literals:
            if literal in text:
                text = text.replace(literal, MASK)
        if _has_option_trigger(text):
            text = _mask_options(text)
        if any(t in text for t in _TRIGGERS):
            text = _token_shapes().sub(_mask_shape, text)
        if self._user is not None:
            text = self._user_sub(self._user, text)
        return text

    def _user_sub(self, user: re.Pattern[str], text: str) -> str:
        """The user's patterns, bounded in time: a pattern that backtracks without end
        ('(a+)+$') held the run for good, deaf to SIGTERM, and lost the job's exit code. A
        text it outruns USER_BUDGET_S on is masked whole (what the pattern was to hide must
        not leak) and `on_slow` is told, once; after that each text gets USER_AFTER_S, so the
        run's short values (a status, a level) are still matched, not masked, and the long
        ones the pattern chokes on cost little each. The matcher checks for signals, so an
        alarm ends it; only the main thread can take one (others are not bounded)."""
        import signal

        armed = [True]  # an alarm that lands after the matcher returned raises nothing

        def alarm(_signum: int, _frame: object) -> None:
            if armed[0]:
                raise _TooSlow

        try:
            previous = signal.signal(signal.SIGALRM, alarm)
        except ValueError:  # not the main thread
            return user.sub(MASK, text)
        try:
            signal.setitimer(signal.ITIMER_REAL, USER_AFTER_S if self._slow else USER_BUDGET_S)
            try:
                out = user.sub(MASK, text)
                armed[0] = False  # (an alarm before this line is caught below: masked)
            except _TooSlow:
                armed[0] = False
                out = MASK
                if not self._slow and self._on_slow is not None:
                    self._on_slow()
                self._slow = True
        finally:
            armed[0] = False
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, signal.SIG_DFL if previous is None else previous)
        return out

    def text(self, text: str) -> str:
        out = self(text)
        assert out is not None
        return out

    def bytes(self, data: bytes) -> bytes:
        """Mask secrets in output bytes, keeping bytes that are not UTF-8 as they were."""
        text = data.decode("utf-8", "surrogateescape")
        return self.text(text).encode("utf-8", "surrogateescape")


def compile_patterns(patterns: Iterable[str]) -> list[str]:
    """Check user regexes up front so a bad one is a config error, not a crash mid-run."""
    out = []
    for p in patterns:
        try:
            re.compile(p)
        except re.error as err:
            raise ValueError(f"bad --redact regex {p!r}: {err}") from None
        out.append(p)
    return out

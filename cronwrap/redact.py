"""Keeping secrets out of everything cronwrap writes or sends: ping and alert URLs are shown
with their secret parts cut, and output, commands and reasons are masked before they go into
pings, alerts, the event log or the history. Standard library only."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

MASK = "[REDACTED]"

# shapes of well-known credentials, masked wherever they appear
TOKEN_SHAPES = (
    r"\bgh[pousr]_[A-Za-z0-9]{30,}\b",  # GitHub
    r"\bglpat-[A-Za-z0-9_-]{20,}\b",  # GitLab
    r"\bxox[abposr]-[A-Za-z0-9-]{10,}\b",  # Slack
    r"\bAKIA[0-9A-Z]{16}\b",  # AWS access key id
    r"\bsk-[A-Za-z0-9_-]{20,}\b",  # OpenAI-style secret keys
    r"\beyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\b",  # JWT
    r"\b(?i:bearer)\s+[A-Za-z0-9._~+/-]{16,}=*",  # Authorization: Bearer …
    r"(?<=://)[^/\s:@]+:[^/\s@]+(?=@)",  # user:password@ in URLs
    r"https?://hooks\.slack\.com/services/[A-Za-z0-9/]+",
    r"https?://discord(?:app)?\.com/api/webhooks/[A-Za-z0-9/_-]+",
    r"\b[sr]k_(?:live|test)_[A-Za-z0-9]{16,}\b",  # Stripe
    r"\bAIza[0-9A-Za-z_-]{35}\b",  # Google API key
    r"(?i:authorization:\s*basic\s+)[A-Za-z0-9+/]{8,}=*",  # Authorization: Basic …
    # a PEM private key, whole, or up to the end of what was kept of the output
    r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----[\s\S]*?(?:-----END [A-Z0-9 ]*PRIVATE KEY-----|\Z)",
    # the value of password=…, secret=…, token=…, api_key=… (the name stays, to tell what it was)
    r"(?i:(?<=password=)|(?<=passwd=)|(?<=secret=)|(?<=token=)|(?<=api_key=)|(?<=apikey=)"
    r"|(?<=mysql_pwd=)|(?<=password: )|(?<=passwd: ))[^\s&\"',;]+",
)

# Credentials given as options on a command line (in the stored command, in `set -x` traces
# in the output): the option stays, its value (one shell word, quotes and all) is masked.
# `-u`, `-p` and `-a` mean other things to other programs (`sort -u`, `mkdir -p`, `date -u
# +%H:%M`), so those are read only after the program they belong to, within its command (up
# to `|`, `;`, `&` or a new line outside quotes); `--password VALUE`, `--password=VALUE` and
# the like (`--http-password`, `--passwd`, not `--password-file` or `--no-password`) are a
# password whatever the program.
_WORD = r"""(?:'[^']*'?|"(?:[^"\\]|\\.)*"?|\\.|[^\s'"\\|;&])+"""
_PROGRAM_OPTIONS = (
    # curl: -u/--user USER:PASSWORD (a token is often the user: `-u sk_live_…:`), and the
    # proxy's -U/--proxy-user; lftp -u USER,PASSWORD; smbclient -U USER%PASSWORD
    (r"\b(?:curl|lftp|smbclient)\b", r"-[uU]\s*|--(?:proxy-)?user(?:=|\s+)", 0),
    # mysql and its tools: -pPASSWORD, attached (`-p` alone prompts; the next word is then
    # the database)
    (r"\b(?:mysql\w*|mariadb(?:-\w+)?)\b", r"-p(?=\S)", 0),
    (r"\bsshpass\b", r"-p\s*", 1),  # the first -p only: ssh's own -p PORT may follow
    (r"\bredis-cli\b", r"-a\s*|--pass(?:=|\s+)", 0),
)
_ANY_PASSWORD = r"--(?!no-)(?:[a-z0-9]+-)*passw(?:or)?d(?:=|\s+)"  # noqa: S105 (a pattern)
_PROGRAM_TRIGGERS = ("curl", "lftp", "smbclient", "mysql", "mariadb", "sshpass", "redis-cli")
_SEGMENT = r"""(?:'[^']*'|"(?:[^"\\]|\\.)*"|[^|;&\n])+"""
_options: list[tuple[re.Pattern[str], list[tuple[re.Pattern[str], re.Pattern[str], int]]]] = []


def _option_shapes() -> tuple[re.Pattern[str], list[tuple[re.Pattern[str], re.Pattern[str], int]]]:
    if not _options:

        def value_after(option: str, count: int) -> re.Pattern[str]:
            # a value masked already is passed over (masking twice changes nothing), unless
            # only the first `count` options count: then it is one of them
            fresh = r"(?!\[REDACTED\])" if not count else ""
            return re.compile(rf"((?<!\S)(?:{option})){fresh}{_WORD}")

        programs = [
            (re.compile(program), value_after(option, count), count)
            for program, option, count in _PROGRAM_OPTIONS
        ]
        programs.append((re.compile(""), value_after(_ANY_PASSWORD, 0), 0))
        _options.append((re.compile(_SEGMENT), programs))
    return _options[0]


def _mask_options(text: str) -> str:
    """The values of credential options on command lines (see _PROGRAM_OPTIONS)."""
    segment, programs = _option_shapes()

    def mask_segment(match: re.Match[str]) -> str:
        part = match.group(0)
        for program, option, count in programs:
            found = program.search(part)
            if found is not None:
                at = found.end()
                part = part[:at] + option.sub(rf"\1{MASK}", part[at:], count=count)
        return part

    return segment.sub(mask_segment, text)


def redact_url(url: str) -> str:
    """`https://hc-ping.com/<uuid>` -> `https://hc-ping.com/…a1b2`; credentials and query
    strings go too. Keeps just enough (scheme, host, last 4 characters) to tell URLs apart."""
    from urllib.parse import urlsplit  # only when a URL is shown: it costs start-up time

    try:
        parts = urlsplit(url)
    except ValueError:
        return "…"
    if not parts.scheme or not parts.netloc:
        return "…" + url[-4:] if len(url) > 8 else "…"
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
)
_shapes: list[re.Pattern[str]] = []


def _token_shapes() -> re.Pattern[str]:
    if not _shapes:
        _shapes.append(re.compile("|".join(TOKEN_SHAPES)))
    return _shapes[0]


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

    def __call__(self, text: str | None) -> str | None:
        if not text:
            return text
        for literal in self._literals:
            if literal in text:
                text = text.replace(literal, MASK)
        if "passw" in text or any(t in text for t in _PROGRAM_TRIGGERS):
            text = _mask_options(text)
        if any(t in text for t in _TRIGGERS):
            text = _token_shapes().sub(MASK, text)
        if self._user is not None:
            text = self._user.sub(MASK, text)
        return text

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

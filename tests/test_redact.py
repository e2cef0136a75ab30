"""Credentials on a job's command line (cronwrap/redact.py): `curl -u USER:PASSWORD` and its
kin are masked in everything cronwrap writes or sends, and innocuous options stay as they
are. The rules are in the README (Healthchecks: what cronwrap sends, bodies)."""

from __future__ import annotations

import json
import shlex
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from cronwrap.redact import MASK, Redactor
from tests.conftest import cronwrap
from tests.hcserver import HCServer

SECRET = "S3cr3tPw"


@pytest.fixture
def hc() -> Iterator[HCServer]:
    server = HCServer().start()
    try:
        yield server
    finally:
        server.stop()


# (command line, what it must read as once masked)
MASKED = [
    (f"curl -u alice:{SECRET} https://x", "curl -u [REDACTED] https://x"),
    (f"curl -ualice:{SECRET} https://x", "curl -u[REDACTED] https://x"),
    (f"curl --user alice:{SECRET} https://x", "curl --user [REDACTED] https://x"),
    (f"curl --user=alice:{SECRET} https://x", "curl --user=[REDACTED] https://x"),
    (f"curl -u sk_{SECRET}: https://api", "curl -u [REDACTED] https://api"),
    (f"/usr/bin/curl -sS -U proxy:{SECRET} -X POST x", "/usr/bin/curl -sS -U [REDACTED] -X POST x"),
    (f"curl --proxy-user=p:{SECRET} x", "curl --proxy-user=[REDACTED] x"),
    (f"curl -u 'alice:{SECRET} x;y' x | jq .", "curl -u [REDACTED] x | jq ."),
    (f'curl -u "alice:{SECRET}" x', "curl -u [REDACTED] x"),
    (f"curl -u 'alice:{SECRET}", "curl -u [REDACTED]"),  # cut off mid-quote: all of it goes
    (
        f"curl -u a:{SECRET} x && curl --user b:{SECRET} y",
        "curl -u [REDACTED] x && curl --user [REDACTED] y",
    ),
    (f"mysql -uroot -p{SECRET} db", "mysql -uroot -p[REDACTED] db"),
    (f"mysqldump -p'{SECRET}' db", "mysqldump -p[REDACTED] db"),
    (f"mariadb-dump --password={SECRET} db", "mariadb-dump --password=[REDACTED] db"),
    (f"wget --password {SECRET} https://x", "wget --password [REDACTED] https://x"),
    (f"wget --http-password={SECRET} https://x", "wget --http-password=[REDACTED] https://x"),
    (f"tool --passwd {SECRET}", "tool --passwd [REDACTED]"),
    (f"sshpass -p {SECRET} ssh -p 2222 host", "sshpass -p [REDACTED] ssh -p 2222 host"),
    (f"redis-cli -a {SECRET} ping", "redis-cli -a [REDACTED] ping"),
    (f"redis-cli --pass {SECRET} ping", "redis-cli --pass [REDACTED] ping"),
    (f"lftp -u backup,{SECRET} ftp://x", "lftp -u [REDACTED] ftp://x"),
    (f"smbclient -U backup%{SECRET} //nas/b", "smbclient -U [REDACTED] //nas/b"),
    (f"MYSQL_PWD={SECRET} mysql db", "MYSQL_PWD=[REDACTED] mysql db"),
    (f"+ curl -fsS -u ci:{SECRET} https://x", "+ curl -fsS -u [REDACTED] https://x"),
    # curl's short options run together, the user last (-su), its value apart or glued
    (f"curl -su alice:{SECRET} https://x", "curl -su [REDACTED] https://x"),
    (f"curl -sSu alice:{SECRET} https://x", "curl -sSu [REDACTED] https://x"),
    (f"curl -fsSLu alice:{SECRET} https://x", "curl -fsSLu [REDACTED] https://x"),
    (f"curl -sSualice:{SECRET} https://x", "curl -sSu[REDACTED] https://x"),
    (f"curl -uuser:{SECRET} https://x", "curl -u[REDACTED] https://x"),
    # OpenLDAP's tools: -w PASSWORD, -wPASSWORD, after other flags (-xw)
    (f"ldapsearch -x -D cn=a -w {SECRET} -b dc=x", "ldapsearch -x -D cn=a -w [REDACTED] -b dc=x"),
    (f"ldapsearch -x -D cn=a -w{SECRET} -b dc=x", "ldapsearch -x -D cn=a -w[REDACTED] -b dc=x"),
    (f"ldapmodify -xw '{SECRET}' -f a.ldif", "ldapmodify -xw [REDACTED] -f a.ldif"),
    (f"ldapadd -x -w {SECRET} -f a.ldif", "ldapadd -x -w [REDACTED] -f a.ldif"),
    (f"ldapdelete -w {SECRET} cn=x", "ldapdelete -w [REDACTED] cn=x"),
    (f"ldappasswd -w {SECRET} -s n{SECRET} uid=x", "ldappasswd -w [REDACTED] -s [REDACTED] uid=x"),
    (f"mysql --password={SECRET} db", "mysql --password=[REDACTED] db"),
    (f"mysqldump -u root -p{SECRET} --all", "mysqldump -u root -p[REDACTED] --all"),
    (f"mongosh -u admin -p {SECRET} --quiet", "mongosh -u admin -p [REDACTED] --quiet"),
    (f"mongodump --password {SECRET} --out /b", "mongodump --password [REDACTED] --out /b"),
    (f"mongo -p{SECRET} db", "mongo -p[REDACTED] db"),
    (f"PGPASSWORD={SECRET} pg_dump db", "PGPASSWORD=[REDACTED] pg_dump db"),
    (f"psql 'host=db password={SECRET}'", "psql 'host=db password=[REDACTED]'"),
    (f"wget --ftp-password {SECRET} x", "wget --ftp-password [REDACTED] x"),
    (
        f"RSYNC_PASSWORD={SECRET} rsync -a s rsync://b@h/m",
        "RSYNC_PASSWORD=[REDACTED] rsync -a s rsync://b@h/m",
    ),
    (f"SSHPASS={SECRET} sshpass -e ssh h", "SSHPASS=[REDACTED] sshpass -e ssh h"),
    (f"REDISCLI_AUTH={SECRET} redis-cli ping", "REDISCLI_AUTH=[REDACTED] redis-cli ping"),
    (f"AWS_SECRET_ACCESS_KEY={SECRET} aws s3 ls", "AWS_SECRET_ACCESS_KEY=[REDACTED] aws s3 ls"),
    (f"htpasswd -b /etc/h alice {SECRET}", "htpasswd -b /etc/h alice [REDACTED]"),
    (f"htpasswd -bc /etc/h alice {SECRET}", "htpasswd -bc /etc/h alice [REDACTED]"),
    (f"htpasswd -nb alice {SECRET}", "htpasswd -nb alice [REDACTED]"),
    (f"htpasswd -b -C 10 /etc/h al {SECRET}", "htpasswd -b -C 10 /etc/h al [REDACTED]"),
    (f"zip -rP {SECRET} out.zip dir", "zip -rP [REDACTED] out.zip dir"),
    (f"unzip -P {SECRET} a.zip", "unzip -P [REDACTED] a.zip"),
    (f"7z a -p{SECRET} out.7z dir", "7z a -p[REDACTED] out.7z dir"),
    (f"openssl enc -aes-256-cbc -pass pass:{SECRET}", "openssl enc -aes-256-cbc -pass [REDACTED]"),
    (f"openssl rsa -passin pass:{SECRET} -in k", "openssl rsa -passin [REDACTED] -in k"),
    (f"gpg --batch --passphrase {SECRET} -d f", "gpg --batch --passphrase [REDACTED] -d f"),
    (f"docker login -u me -p {SECRET} reg", "docker login -u me -p [REDACTED] reg"),
    (
        f"ipmitool -H h -U admin -P {SECRET} power on",
        "ipmitool -H h -U admin -P [REDACTED] power on",
    ),
    (f"sqlcmd -S h -U sa -P {SECRET} -Q x", "sqlcmd -S h -U sa -P [REDACTED] -Q x"),
    (f"mosquitto_pub -u u -P {SECRET} -t t", "mosquitto_pub -u u -P [REDACTED] -t t"),
    # a quoted string is a command line of its own: each of its commands is read apart
    (
        f"sh -c 'sshpass -p {SECRET} ssh -p 2 a; sshpass -p {SECRET}2 ssh b'",
        "sh -c 'sshpass -p [REDACTED] ssh -p 2 a; sshpass -p [REDACTED] ssh b'",
    ),
    (f"sh -c 'PGPASSWORD={SECRET} psql -c x'", "sh -c 'PGPASSWORD=[REDACTED] psql -c x'"),
    (f'bash -c "curl -su a:{SECRET} x && date -u"', 'bash -c "curl -su [REDACTED] x && date -u"'),
    (f"ssh h \"sh -c 'curl -u a:{SECRET} x'\"", "ssh h \"sh -c 'curl -u [REDACTED] x'\""),
    # a ' inside single quotes, as the stored command ('"'"') and bash's `set -x` ('\'') write it
    (
        f"sh -c 'sshpass -p '\"'\"'{SECRET}'\"'\"' ssh h'",
        "sh -c 'sshpass -p [REDACTED] ssh h'",
    ),
    (f"+ sh -c 'curl -u '\\''a:{SECRET}'\\'' x'", "+ sh -c 'curl -u [REDACTED] x'"),
    (
        shlex.join(["bash", "-c", shlex.join(["sh", "-c", f"mysql -p'{SECRET}' db"])]),
        "bash -c 'sh -c '\"'\"'mysql -p[REDACTED] db'\"'\"''",
    ),
    (
        f"sh -c 'PGPASSWORD='\"'\"'{SECRET}'\"'\"' pg_dump db'",
        "sh -c 'PGPASSWORD=[REDACTED] pg_dump db'",
    ),
    # a variable set on the line to a quoted value: the quotes and all
    (f"PGPASSWORD='{SECRET} x' pg_dump db", "PGPASSWORD=[REDACTED] pg_dump db"),
    (f'MYSQL_PWD="{SECRET}" mysqldump db', "MYSQL_PWD=[REDACTED] mysqldump db"),
    (f"BORG_PASSPHRASE='{SECRET}' borg create r::a", "BORG_PASSPHRASE=[REDACTED] borg create r::a"),
    (f"tool --api-key={SECRET}", "tool --api-key=[REDACTED]"),
    (f"redis-cli -u redis://:{SECRET}@cache:6379", "redis-cli -u redis://[REDACTED]@cache:6379"),
    # a token, secret or API key given as an option, whatever the program: `--NAME VALUE` as
    # `--NAME=VALUE` (Go's single dash too), the name ending in token, secret or api key
    (f"tool --token {SECRET} run", "tool --token [REDACTED] run"),
    (f"tool --secret '{SECRET} x' run", "tool --secret [REDACTED] run"),
    (f"tool --api-key {SECRET}", "tool --api-key [REDACTED]"),
    (f"tool --apikey {SECRET}", "tool --apikey [REDACTED]"),
    (f"tool --access-token {SECRET}", "tool --access-token [REDACTED]"),
    (f"tool --auth-token {SECRET}", "tool --auth-token [REDACTED]"),
    (f"tool --client-secret {SECRET}", "tool --client-secret [REDACTED]"),
    (f"tool --secret-key {SECRET}", "tool --secret-key [REDACTED]"),
    (f"tool --api-token {SECRET}", "tool --api-token [REDACTED]"),
    (f"tool --github-token {SECRET}", "tool --github-token [REDACTED]"),
    (f"consul kv get -token {SECRET} k", "consul kv get -token [REDACTED] k"),
    (f"tool --token={SECRET}", "tool --token=[REDACTED]"),
    (f"tool --secret-key={SECRET}", "tool --secret-key=[REDACTED]"),
    (f"rclone --s3-secret-access-key {SECRET} ls", "rclone --s3-secret-access-key [REDACTED] ls"),
    (f"ngrok http 80 --authtoken {SECRET}", "ngrok http 80 --authtoken [REDACTED]"),
    (
        f"kubeadm join h --token {SECRET} --discovery-token-ca-cert-hash sha256:ab",
        "kubeadm join h --token [REDACTED] --discovery-token-ca-cert-hash sha256:ab",
    ),
    (f"sh -c 'tool --api-key {SECRET}; date -u'", "sh -c 'tool --api-key [REDACTED]; date -u'"),
    # HTTP headers that carry a key or token, in a command (curl -H) or in output (curl -v,
    # a trace, a dump of headers): the name stays, the value goes, whatever the case
    (f"curl -H 'X-Api-Key: {SECRET}' https://x", "curl -H 'X-Api-Key: [REDACTED]' https://x"),
    (f"curl -H 'X-API-KEY:{SECRET}' https://x", "curl -H 'X-API-KEY:[REDACTED]' https://x"),
    (f"curl -H 'Api-Key: {SECRET}' x", "curl -H 'Api-Key: [REDACTED]' x"),
    (f"curl -H 'X-Auth-Token: {SECRET}' x", "curl -H 'X-Auth-Token: [REDACTED]' x"),
    (f'curl -H "PRIVATE-TOKEN: {SECRET}" x', 'curl -H "PRIVATE-TOKEN: [REDACTED]" x'),
    (f"> private-token: {SECRET}\r", "> private-token: [REDACTED]\r"),
    (f"+ curl -sS -H 'X-Vault-Token: {SECRET}' x", "+ curl -sS -H 'X-Vault-Token: [REDACTED]' x"),
    (f"wget --header='JOB-TOKEN: {SECRET}' x", "wget --header='JOB-TOKEN: [REDACTED]' x"),
    (f"{{'X-Api-Key': '{SECRET}', 'A': 'b'}}", "{'X-Api-Key': [REDACTED], 'A': 'b'}"),
    (f'{{"access_token": "{SECRET}", "n": 1}}', '{"access_token": [REDACTED], "n": 1}'),
    (f'{{"password": "{SECRET} x"}}', '{"password": [REDACTED]}'),
    # Authorization with a scheme other than a long bearer token or Basic: the scheme stays
    (f"curl -H 'Authorization: Token {SECRET}' x", "curl -H 'Authorization: Token [REDACTED]' x"),
    (f"curl -H 'authorization: bearer {SECRET}' x", "curl -H 'authorization: bearer [REDACTED]' x"),
    ("> Authorization: Basic YWxpY2U6aHVudGVyMg==", "> Authorization: Basic [REDACTED]"),
    (f"> Proxy-Authorization: Bot {SECRET}", "> Proxy-Authorization: Bot [REDACTED]"),
    # a command goes on after a backslash-newline (a script shown by bash -v or cat, sh -c '…')
    (
        f"curl -sS \\\n  -u alice:{SECRET} \\\n  https://x",
        "curl -sS \\\n  -u [REDACTED] \\\n  https://x",
    ),
    (f"sh -c 'curl \\\n -u a:{SECRET} x'", "sh -c 'curl \\\n -u [REDACTED] x'"),
    (f"sshpass \\\n -p {SECRET} ssh h", "sshpass \\\n -p [REDACTED] ssh h"),
]

LEFT_ALONE = [
    "date -u +%H:%M",
    "sort -u a:b.txt",
    "sudo -u postgres psql",
    "mkdir -p /srv/a:b",
    "ssh -p 2222 host",
    "docker run -p 8080:80 -u 1000:1000 img",
    "mysql -p db",
    "mysql -uroot db",
    "curl --user-agent x/1 https://x",
    "curl https://x; date -u +%H:%M",
    "rsync --password-file=/etc/rsync.pw src dst",
    "psql --no-password db",
    "echo curl; sort -u a:b",
    # mysql's --password without `=` prompts: the next word is the database
    "mysql --password db",
    "mysqldump --password --all-databases",
    "mariadb -u root --password db",
    # -y names a file that holds the password; -W prompts
    "ldapsearch -x -y /etc/ldap.secret -b dc=x",
    "ldapsearch -x -W -D cn=a -b dc=x",
    "mongosh -u admin -p --authenticationDatabase admin",  # -p before an option prompts
    "htpasswd -c /etc/h alice",  # no -b: it prompts
    "htpasswd -D /etc/h alice",
    "7z a -p out.7z dir",
    "openssl enc -aes-256-cbc -pass env:KEY -in a",
    "openssl enc -aes-256-cbc -pass file:/etc/k -in a",
    "gpg --batch --passphrase-file /etc/k -d f",
    "docker run -p 8080:80 img",
    "gzip -P x",
    "curl -sS -o out.html https://x",
    "curl -H 'Accept: text/html' -o u https://x",
    # inside quotes as outside: each command is read apart
    "sh -c 'echo curl; sort -u a:b'",
    "sh -c 'mysql --password db'",
    'bash -c "ls; date -u +%H:%M"',
    # a file holding the secret is a path, not a secret; numbers of tokens are not secrets
    "tool --token-file /etc/t",
    "tool --secret-file /etc/s --api-key-file /etc/k",
    "tool --token-budget 5 --max-tokens 100",
    "gh auth login --with-token < /etc/gh.token",
    "tool --no-token run",
    "tool --token --verbose",  # a flag that takes no value: the next option stays
    "curl -H 'Accept: application/json' -H 'X-Request-Id: 42' x",
    "SyntaxError: Unexpected token: <",
    "primary-key: id; sort-key: name",
    "Authorization: required for this resource",
    "curl https://x\nsort -u a:b",  # a new line without a backslash ends the command
    "curl https://x \\\\\nsort -u a:b",  # an escaped backslash, then a new line
]


@pytest.mark.parametrize(("line", "masked"), MASKED, ids=[m[0][:40] for m in MASKED])
def test_credential_options_are_masked(line: str, masked: str) -> None:
    out = Redactor().text(line)
    assert out == masked
    assert SECRET not in out
    assert Redactor().text(out) == out  # masked once, masked for good (pages mask again)


@pytest.mark.parametrize("line", LEFT_ALONE)
def test_innocuous_options_are_left_alone(line: str) -> None:
    assert Redactor().text(line) == line


def test_a_cut_never_leaves_part_of_a_masked_value() -> None:
    """Redact before you cut: the value is masked whole, so no cut of the result shows a part
    of it (the first and the last three characters included)."""
    line = f"curl -sS -u alice:{SECRET} https://x"
    out = Redactor().text(line)
    for cut in range(len(out) + 1):
        for part in (out[:cut], out[cut:]):
            assert SECRET[:3] not in part and SECRET[-3:] not in part


FORMS = [
    ["--shell", "--", f": curl -u alice:{SECRET} https://x.invalid"],
    ["--shell", "--", f": curl -fsSLu alice:{SECRET} https://x.invalid"],
    ["--shell", "--", f": ldapsearch -x -w {SECRET} -b dc=x"],
    ["--", "sh", "-c", f": curl -su alice:{SECRET} https://x.invalid; : sshpass -p {SECRET} ssh h"],
    ["--", "sh", "-c", f"PGPASSWORD={SECRET} : psql -h db; : mysql --password db"],
    ["--shell", "--", f": curl --user=alice:{SECRET} https://x.invalid"],
    ["--shell", "--", f": curl -ualice:{SECRET} https://x.invalid"],
    ["--", "sh", "-c", "exit 0", "curl", "--user", f"alice:{SECRET}", "https://x.invalid"],
    ["--", "sh", "-c", "exit 0", "curl", "-u", f"al ice:{SECRET};x", "https://x.invalid"],
    ["--", "sh", "-c", "exit 0", "mysql", f"-p{SECRET}", "db"],
    ["--", "sh", "-c", "exit 0", "wget", "--password", SECRET, "https://x.invalid"],
    ["--", "sh", "-c", "exit 0", "sshpass", "-p", SECRET, "ssh", "host"],
    ["--", "sh", "-c", "exit 0", "tool", "--api-key", SECRET, "--token", SECRET],
    ["--shell", "--", f": curl -H 'X-Api-Key: {SECRET}' https://x.invalid"],
    ["--", "sh", "-c", f": curl -sS \\\n  -u alice:{SECRET} \\\n  https://x.invalid"],
    ["--", "sh", "-c", "exit 0", "curl", "-H", f"Private-Token: {SECRET}", "https://x.invalid"],
    # the stored command quotes the script: its ' are written '"'"'
    ["--", "sh", "-c", f": sshpass -p '{SECRET}' ssh h; PGPASSWORD='{SECRET}' :"],
]


@pytest.mark.parametrize("form", FORMS, ids=[" ".join(f[-4:])[:40] for f in FORMS])
def test_a_real_run_keeps_the_password_out_of_history_log_status_and_ping(
    home: Path, hc: HCServer, form: list[str]
) -> None:
    """Through a real run: the stored command (and the rerun spec beside it), the event log,
    `status --json`, `history --json`, the status page and the ping body (a `set -x` trace
    of the command in the job's output) never hold the password."""
    check = hc.new_check()
    args = ["run", "--name", "cred", "--ping", hc.url(check), *form]
    result = cronwrap(home, *args)
    assert result.returncode == 0, result.stderr
    assert SECRET not in result.stderr
    with sqlite3.connect(home / "runs.db") as db:
        [(command,)] = db.execute("SELECT command FROM runs WHERE job='cred'").fetchall()
    assert MASK in command and SECRET not in command, command
    assert SECRET.encode() not in (home / "runs.db").read_bytes()
    log = (home / "cronwrap.log").read_text()
    [start] = [r for r in map(json.loads, log.splitlines()) if r["event"] == "run.start"]
    assert start["command"] == command
    assert SECRET not in log
    for view in (["status", "--json"], ["history", "cred", "--json"]):
        shown = (
            cronwrap(home, *view, "--crontab", "/dev/null")
            if view[0] == "status"
            else (cronwrap(home, *view))
        )
        assert shown.returncode in (0, 1), shown.stderr
        assert SECRET not in shown.stdout
    page = home / "status.html"
    assert cronwrap(home, "status", "--crontab", "/dev/null", "--html", str(page)).returncode in (
        0,
        1,
    )
    assert SECRET not in page.read_text()
    assert all(SECRET.encode() not in p.body for p in hc.pings)


def test_the_trace_of_a_command_in_the_output_is_masked_in_the_ping(
    home: Path, hc: HCServer
) -> None:
    """`set -x` prints the command with its password: the ping body and the stored tail
    mask it, while the job's own stderr passes through unchanged (as cron would mail it)."""
    check = hc.new_check()
    script = f"set -x; : curl -fsS -u ci:{SECRET} https://x.invalid"
    result = cronwrap(
        home, "run", "--name", "trace", "--ping", hc.url(check), "--", "sh", "-c", script
    )
    assert result.returncode == 0
    assert SECRET in result.stderr  # the job's own output, passed through
    body = hc.pings[-1].body
    assert SECRET.encode() not in body and b"-u [REDACTED]" in body
    with sqlite3.connect(home / "runs.db") as db:
        [(tail,)] = db.execute("SELECT output_tail FROM runs WHERE job='trace'").fetchall()
    assert SECRET not in tail and "-u [REDACTED]" in tail


def test_masking_commands_costs_no_regex_without_a_trigger() -> None:
    """Start-up: a plain command compiles none of the option patterns."""
    code = (
        "from cronwrap import redact\n"
        "redact.Redactor().text('backup --verbose /srv/data')\n"
        "print(len(redact._options))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "0"


def test_the_stored_tail_is_masked_before_it_is_cut(home: Path) -> None:
    """The stored output tail (the last 4 KiB, what status, alerts and the fleet store show)
    begins inside a traced command's password: masked with the line it is on, never cut first
    and left as a part nothing recognises any more."""
    secret = f"{SECRET}-and-more-of-it"
    after = "y" * (4096 - len(secret[5:]) - 1)  # the tail begins 5 characters into it
    code = f"import sys; sys.stdout.write('+ curl -u ci:{secret}\\n' + {after!r})"
    result = cronwrap(home, "run", "--name", "cut", "--", sys.executable, "-c", code)
    assert result.returncode == 0, result.stderr
    with sqlite3.connect(home / "runs.db") as db:
        [(tail,)] = db.execute("SELECT output_tail FROM runs WHERE job='cut'").fetchall()
    assert secret[5:] not in tail and "more-of-it" not in tail, tail[:80]
    assert tail.endswith("y" * 100)


def test_an_unmonitored_crontab_line_is_masked_before_it_is_cut_in_status(home: Path) -> None:
    """`status --all` names an unwrapped crontab line by its command, cut to 60 columns: the
    password in it is masked first (the table, --json and the page's anchors showed it)."""
    long = SECRET + "x" * 60
    tab = home.parent / "crontab"
    tab.write_text(f"*/5 * * * * curl -fsSu alice:{long} https://x.invalid/ping\n")
    page = home.parent / "page.html"
    for args in ([], ["--json"], ["--html", str(page)]):
        shown = cronwrap(home, "status", "--crontab", str(tab), "--all", *args)
        assert shown.returncode == 0, shown.stderr
        assert SECRET[:5] not in shown.stdout and "curl -fsSu [REDACTED]" in (
            page.read_text() if args[:1] == ["--html"] else shown.stdout
        )
    assert SECRET[:5] not in page.read_text()


def test_explain_masks_the_command_of_a_crontab_line(home: Path) -> None:
    line = f"*/5 * * * * curl -su alice:{SECRET} https://x.invalid"
    for args in ([], ["--json"]):
        shown = cronwrap(home, "explain", line, *args)
        assert shown.returncode == 0, shown.stderr
        assert SECRET not in shown.stdout and "-su [REDACTED]" in shown.stdout


def test_a_failed_alert_commands_stderr_is_masked_before_it_is_cut(home: Path) -> None:
    """The warning that an alert command failed quotes the end of its stderr: a password in
    it is masked (on cronwrap's stderr, in the event log, in the run's stored warnings), and
    before the quote is cut to its last 200 characters."""
    tail = "z" * (200 - len(SECRET[3:]) - len(" https://x.invalid") - 1)
    alert = f"echo 'curl -su alice:{SECRET} https://x.invalid' {tail} >&2; exit 1"
    args = ["run", "--name", "al", "--alert-cmd", alert, "--", "sh", "-c", "exit 7"]
    result = cronwrap(home, *args)
    assert result.returncode == 7
    assert "alert not delivered" in result.stderr, result.stderr
    for part in (SECRET[:3], SECRET[-3:]):  # the raw quote would begin 4 characters from its end
        assert part not in result.stderr, result.stderr
        assert part not in (home / "cronwrap.log").read_text()
        assert part.encode() not in (home / "runs.db").read_bytes()


def test_a_traced_sh_c_with_a_quoted_password_is_masked_in_the_stored_tail(home: Path) -> None:
    """bash's `set -x` writes a ' inside single quotes as '\\'': the sshpass -p of the traced
    `sh -c '…'` is masked in the stored tail (status, alerts, the fleet store) all the same."""
    script = f"set -x; : sh -c \"sshpass -p '{SECRET}' ssh h\""
    result = cronwrap(home, "run", "--name", "xtrace", "--", "bash", "-c", script)
    assert result.returncode == 0, result.stderr
    assert f"'\\''{SECRET}'\\''" in result.stderr  # the trace, passed through as it was
    with sqlite3.connect(home / "runs.db") as db:
        [(tail,)] = db.execute("SELECT output_tail FROM runs WHERE job='xtrace'").fetchall()
    assert SECRET not in tail and "sshpass -p [REDACTED] ssh h" in tail, tail


def test_masking_a_long_line_of_quoted_strings_takes_time_in_proportion_to_it() -> None:
    """A ping body's head and tail are read up to 2 × (Ping-Body-Limit + 4 KiB) each, and one
    line of output (a JSON dump) can hold thousands of quoted strings and program names:
    masking must stay linear, or a job's end waits seconds on it (it was quadratic)."""

    def cost(n: int) -> float:
        line = json.dumps([{"cmd": f"mysql --password=x{i}", "ua": "curl/8"} for i in range(n)])
        best = float("inf")
        for _ in range(3):
            started = time.perf_counter()
            Redactor().text(line)
            best = min(best, time.perf_counter() - started)
        return best

    small, large = cost(500), cost(4000)
    assert large < 20 * small, (small, large)  # linear: about 8 times; it was over 50


def test_a_long_traced_line_is_masked_whole_in_the_stored_tail_and_the_ping(
    home: Path, hc: HCServer
) -> None:
    """A traced curl whose -d argument is longer than the margin read before the stored
    tail (and the ping body's tail) begins: the part read began after `curl`, so nothing said
    that `-u` was curl's and its password went into status, alerts and the fleet store."""
    check = hc.new_check()
    script = f'set -x; : curl -sS -d "$(head -c 40000 /dev/zero | tr "\\0" x)" -u ci:{SECRET} x'
    result = cronwrap(
        home, "run", "--name", "long", "--ping", hc.url(check), "--", "bash", "-c", script
    )
    assert result.returncode == 0, result.stderr
    assert f"-u ci:{SECRET}" in result.stderr  # the job's own output, passed through
    with sqlite3.connect(home / "runs.db") as db:
        [(tail,)] = db.execute("SELECT output_tail FROM runs WHERE job='long'").fetchall()
    assert SECRET not in tail and tail.endswith("xxx -u [REDACTED] x\n"), tail[-80:]
    body = hc.pings[-1].body
    assert SECRET.encode() not in body and b"-u [REDACTED] x" in body, body[-80:]

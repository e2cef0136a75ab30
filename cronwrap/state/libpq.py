"""libpq itself, through ctypes, for the fleet store's readers (state/fleetread.py): libpq
parses the URL, authenticates, does TLS and reads service files exactly as under psycopg;
this module only connects, runs a query and hands back each row's first column. It loads the
libpq psycopg-binary bundles (the one the shipper uses), else the system's libpq.so.5, and
imports nothing beyond the standard library (importing psycopg costs about 15× `python -c
pass`)."""

from __future__ import annotations

import ctypes
import os
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from typing import Any, TypeVar

    T = TypeVar("T")

_OK = 0  # CONNECTION_OK
_TUPLES_OK = 2  # PGRES_TUPLES_OK
_MESSAGE_PRIMARY = ord("M")  # PG_DIAG_MESSAGE_PRIMARY
_P = ctypes.c_void_p
_S = ctypes.c_char_p
_I = ctypes.c_int
_SS = ctypes.POINTER(ctypes.c_char_p)
# name: (result type, argument types), as in libpq-fe.h
_PROTOTYPES: dict[str, tuple[Any, list[Any]]] = {
    "PQconninfoParse": (_P, [_S, ctypes.POINTER(_P)]),
    "PQconninfoFree": (None, [_P]),
    "PQfreemem": (None, [_P]),
    "PQconnectdbParams": (_P, [_SS, _SS, _I]),
    "PQstatus": (_I, [_P]),
    "PQerrorMessage": (_S, [_P]),
    "PQfinish": (None, [_P]),
    "PQexecParams": (_P, [_P, _S, _I, _P, _SS, _P, _P, _I]),
    "PQresultStatus": (_I, [_P]),
    "PQresultErrorField": (_S, [_P, _I]),
    "PQntuples": (_I, [_P]),
    "PQgetvalue": (_S, [_P, _I, _I]),
    "PQclear": (None, [_P]),
}


class LibpqError(Exception):
    """libpq refused the URL (bad_url) or the connection or a query failed; the message is
    libpq's or the server's."""

    def __init__(self, message: str, *, bad_url: bool = False) -> None:
        super().__init__(message)
        self.bad_url = bad_url


def _bundled() -> list[str]:
    """The libpq psycopg-binary ships beside its package (psycopg_binary.libs/libpq-*.so*),
    found without importing it."""
    found = []
    for entry in sys.path:
        libs = os.path.join(entry or ".", "psycopg_binary.libs")
        try:
            names = os.listdir(libs)
        except OSError:
            continue
        found += [os.path.join(libs, n) for n in sorted(names) if n.startswith("libpq-")]
    return found


def load() -> ctypes.CDLL | None:
    """libpq with its prototypes declared, or None when none loads. By soname or path, never
    through ctypes.util.find_library, which runs ldconfig and gcc."""
    for path in (*_bundled(), "libpq.so.5"):
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        try:
            for name, (restype, argtypes) in _PROTOTYPES.items():
                function = getattr(lib, name)
                function.restype, function.argtypes = restype, argtypes
        except AttributeError:  # too old to have one of them (PQconnectdbParams is 9.0's)
            continue
        return lib
    return None


def _interruptible(function: Callable[..., T], *args: Any, wait_s: float | None = None) -> T:
    """function(*args) in a helper thread, the caller waiting for it (at most `wait_s`, then
    LibpqError): libpq retries its poll() when a signal interrupts it, so in this thread ^C
    would wait out a black-holed server's connect_timeout (or a statement_timeout) before
    Python saw it. A call given up on is left to its thread, which holds up no exit."""
    import threading

    done: list[T] = []
    worker = threading.Thread(target=lambda: done.append(function(*args)), daemon=True)
    worker.start()
    worker.join(wait_s)
    if not done:
        raise LibpqError(f"no answer in {wait_s:.0f} s")
    return done[0]


def _strings(values: Sequence[str | None]) -> Any:
    array = (ctypes.c_char_p * len(values))()
    array[:] = [v.encode() if v is not None else None for v in values]
    return array


class Connection:
    """One libpq connection; open with Connection.open(lib, url, settings)."""

    def __init__(self, lib: ctypes.CDLL, handle: int, answer_s: float | None) -> None:
        self.lib = lib
        self.handle: int | None = handle
        self.busy = False
        self.answer_s = answer_s

    @classmethod
    def open(
        cls, lib: ctypes.CDLL, url: str, settings: dict[str, str], *, answer_s: float | None = None
    ) -> Connection:
        """Connect to `url` (a postgresql:// URL or a conninfo string), `settings` overriding
        what it says (as psycopg's keyword arguments do). A query waits at most `answer_s`
        for its answer: a server whose process hangs (its kernel still acknowledging, so
        neither its statement_timeout nor tcp_user_timeout ends the wait) is given up on."""
        error = _P()
        options = lib.PQconninfoParse(url.encode(), ctypes.byref(error))
        if not options:
            message = ctypes.string_at(error.value).decode() if error.value else "out of memory"
            lib.PQfreemem(error)
            raise LibpqError(message.strip(), bad_url=True)
        lib.PQconninfoFree(options)
        # expand_dbname: the URL in `dbname` is expanded first; the keywords after it win
        words = _strings(["dbname", *settings, None])
        values = _strings([url, *settings.values(), None])
        handle = _interruptible(lib.PQconnectdbParams, words, values, 1)
        if not handle:
            raise LibpqError("out of memory")
        conn = cls(lib, handle, answer_s)
        if lib.PQstatus(handle) != _OK:
            message = conn.error_message()
            conn.close()
            raise LibpqError(message)
        return conn

    def error_message(self) -> str:
        text: bytes = self.lib.PQerrorMessage(self.handle) or b""
        return text.decode("utf-8", "replace").strip() or "no error details available"

    def first_column(self, sql: str, params: Sequence[str | None]) -> list[bytes]:
        """Each row's first column (never NULL in cronwrap's queries) as sent, in text."""
        lib = self.lib
        if self.busy:  # libpq serves a connection one thread at a time
            raise LibpqError("an earlier query is still waiting for its answer")
        self.busy = True  # a query ^C left waiting in its thread: close() must not free it
        result = _interruptible(
            lib.PQexecParams,
            self.handle,
            sql.encode(),
            len(params),
            None,
            _strings(params),
            None,
            None,
            0,
            wait_s=self.answer_s,
        )
        self.busy = False
        if not result:
            raise LibpqError(self.error_message())
        try:
            if lib.PQresultStatus(result) != _TUPLES_OK:
                primary: bytes | None = lib.PQresultErrorField(result, _MESSAGE_PRIMARY)
                message = primary.decode("utf-8", "replace") if primary else self.error_message()
                raise LibpqError(message)
            get = lib.PQgetvalue
            return [get(result, row, 0) for row in range(lib.PQntuples(result))]
        finally:
            lib.PQclear(result)

    def close(self) -> None:
        if self.handle is not None and not self.busy:
            self.lib.PQfinish(self.handle)
        self.handle = None

"""Secrets in a user's own files stop the build: a private key block, or an AWS secret access key.

Two precise patterns, so that false alarms stay rare: a private key is a whole PEM or PGP block (its ``BEGIN``
line, a body, its ``END`` line), never a certificate (a CA bundle such as RDS's ``global-bundle.pem`` or
certifi's ``cacert.pem`` holds certificates only); an AWS secret access key is 40 characters of its alphabet
assigned to a name that says it is one (``aws_secret_access_key = ...``, ``"SecretAccessKey": "..."``), not
AWS's documented placeholder (``...EXAMPLEKEY``). Only the folder's own files are scanned: installed
distributions ship test keys of their own, and they are not the user's secrets. Binary files are skipped.

The scanner reads a file in chunks as the fingerprint does (one read of each file, whatever its size).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_BLOCK_TYPE = rb"(?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?"
_PRIVATE_KEY = re.compile(
    rb"-----BEGIN " + _BLOCK_TYPE + rb"-----[ \t]*\r?\n"
    rb"(?:[A-Za-z0-9-]+:[^\r\n]*\r?\n)*\s*"  # PEM or PGP headers (Proc-Type, Version...), then the body
    rb"[A-Za-z0-9+/=\s]{64,}?"
    rb"-----END " + _BLOCK_TYPE + rb"-----"
)
_AWS_SECRET = re.compile(
    rb"(?i)secret[_-]?access[_-]?key[\"']?\s*[:=]\s*[\"']?(?<![A-Za-z0-9/+])([A-Za-z0-9/+]{40})(?![A-Za-z0-9/+=])"
)
#: The longest text a finding can span: chunks overlap by this much, so that none is cut in two.
_OVERLAP = 64 * 1024
#: A NUL byte in a file's first bytes marks it as binary (as git and grep decide it).
_BINARY_PROBE = 8000


@dataclass(frozen=True)
class Secret:
    """What was found, and on which line of the file."""

    kind: str  # "a private key" or "an AWS secret access key"
    line: int


class Scanner:
    """Feed a file's bytes in order (:meth:`feed`); :attr:`found` is its first secret, if any."""

    def __init__(self) -> None:
        self.found: Secret | None = None
        self._tail = b""  # the end of the previous chunks, kept for a finding that straddles two
        self._lines_before_tail = 0
        self._binary: bool | None = None

    def feed(self, chunk: bytes) -> None:
        if self.found is not None or self._binary:
            return
        if self._binary is None:
            self._binary = b"\0" in chunk[:_BINARY_PROBE]
            if self._binary:
                return
        window = self._tail + chunk
        for pattern, kind in ((_PRIVATE_KEY, "a private key"), (_AWS_SECRET, "an AWS secret access key")):
            for match in pattern.finditer(window):
                if pattern is _AWS_SECRET and b"EXAMPLE" in match.group(1):
                    continue  # AWS's documented placeholder (wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY)
                self.found = Secret(kind, self._lines_before_tail + window.count(b"\n", 0, match.start()) + 1)
                return
        keep = window[-_OVERLAP:]
        self._lines_before_tail += window.count(b"\n", 0, len(window) - len(keep))
        self._tail = keep


#: A URL's user information (``https://user:token@host``): a credential, unless it is only ``${VAR}`` references
#: (which the installer expands from the environment).
_URL_CREDENTIALS = re.compile(rb"(?P<scheme>https?://)(?P<userinfo>[^/@\s'\"]+)@", re.IGNORECASE)
_ENV_REFERENCE = re.compile(rb"\$\{[A-Za-z0-9_]+\}")


def _literal(userinfo: bytes) -> bool:
    return bool(_ENV_REFERENCE.sub(b"", userinfo).replace(b":", b"").strip())


def literal_credentials(data: bytes) -> list[tuple[int, str]]:
    """``(line number, the URL's start with its credential hidden)`` for each URL in ``data`` (a dependency
    declaration) that carries a credential written out rather than referenced as ``${VAR}``."""
    found = []
    for match in _URL_CREDENTIALS.finditer(data):
        if _literal(match.group("userinfo")):
            line = data.count(b"\n", 0, match.start()) + 1
            host = re.match(rb"[^\s'\"]{0,60}", data[match.end():])
            shown = f"{match.group('scheme').decode()}***@{host.group(0).decode('utf-8', 'replace') if host else ''}"
            found.append((line, shown))
    return found


def without_credentials(data: bytes) -> bytes:
    """``data`` with every credential written out in a URL replaced by ``***`` (``${VAR}`` references kept): what a
    declaration's fingerprint reads, so that a rotated token is not a new asset."""
    return _URL_CREDENTIALS.sub(lambda m: m.group("scheme") + b"***@" if _literal(m.group("userinfo"))
                                else m.group(0), data)


def scan(data: bytes) -> Secret | None:
    """The first secret in ``data`` (a whole file), or None."""
    scanner = Scanner()
    scanner.feed(data)
    return scanner.found

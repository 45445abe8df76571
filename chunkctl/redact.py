"""Secrets out of everything chunkctl writes: the store (``runs.command``, ``runs.stats``,
``rejects``), the LLM cache, stdout and stderr.

What counts as a secret: the API key in the environment (``CHUNKCTL_LLM_API_KEY``,
``OPENAI_API_KEY``) wherever it appears (a server may echo it in an error body), the password of a
URL (``http://user:KEY@host``), the value of a key-like query parameter (``?api-key=...``), and a
``Bearer`` token. Each becomes ``***``.
"""
from __future__ import annotations

import os
import re
import shlex
from typing import Iterable, Sequence
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

MASK = "***"
KEY_ENV = ("CHUNKCTL_LLM_API_KEY", "OPENAI_API_KEY")
_KEY_PARAMS = re.compile(r"(?i)^(?:api[-_]?key|key|token|access[-_]?token|auth|secret|password|pass|sig|signature"
                         r"|x-api-key|code)$")
_URL = re.compile(r"\b[a-zA-Z][a-zA-Z0-9+.-]*://[^\s'\"<>]+")
_BEARER = re.compile(r"(?i)\b(bearer\s+)[A-Za-z0-9._~+/=-]{4,}")


def env_secrets() -> list[str]:
    return [v for v in (os.environ.get(k) for k in KEY_ENV) if v and len(v) >= 4]


def redact_url(url: str) -> str:
    """The URL without a password in its user part or a value in a key-like query parameter."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return url
    netloc = parts.netloc
    if "@" in netloc:
        user, _, host = netloc.rpartition("@")
        netloc = f"{user.split(':', 1)[0]}:{MASK}@{host}" if ":" in user else f"{MASK}@{host}"
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        if any(_KEY_PARAMS.match(k) for k, _ in pairs):
            query = urlencode([(k, MASK if _KEY_PARAMS.match(k) else v) for k, v in pairs], safe="*")
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` with every known secret, URL credential and bearer token masked."""
    if not text:
        return text
    for s in [*secrets, *env_secrets()]:
        if s and len(s) >= 4 and s in text:
            text = text.replace(s, MASK)
    if "://" in text:
        text = _URL.sub(lambda m: redact_url(m.group(0)), text)
    return _BEARER.sub(lambda m: m.group(1) + MASK, text)


def command_line(argv: Sequence[str]) -> str:
    """A command line as it may be stored: the arguments after the program, quoted, redacted."""
    return redact(shlex.join(str(a) for a in argv))

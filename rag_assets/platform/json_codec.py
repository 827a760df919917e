"""JSON encoding and decoding with orjson where it gives exactly what the standard library gives.

CDC catch-up decodes and encodes JSON by the million (Kafka messages, `source_records` rows,
profiles), and orjson is several times faster than `json`. Where the two would differ, the
standard library decides, so results never depend on which one ran:

* decoding: orjson reads an integer beyond 64 bits as a float (losing digits), so a document
  with a run of 19 or more digits goes to `json` (an over-cautious test: the digits may sit in a
  string); so does anything orjson rejects (a lone surrogate, a number overflowing a double),
  letting `json` accept it or raise its own error;
* encoding: an integer beyond 64 bits or a key that is not a string goes to `json`.
  orjson writes non-ASCII characters as UTF-8 where `json` escapes them, which encodes the same
  value; callers that compare the text with text `json` wrote keep using `json`.
  `dumps_for_digest`: orjson's canonical text, for digests compared only with its own.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import orjson

# Every ASCII digit becomes "0" and every other byte a space: a run of 19 digits is then a plain
# substring search, ~7x faster than the regular expression \d{19} on a typical document.
_DIGITS_AS_ZEROS = bytes(0x30 if 0x30 <= b <= 0x39 else 0x20 for b in range(256))
_LONG_DIGIT_RUN = b"0" * 19


def loads(data: bytes | str, fallback: Callable[[bytes | str], Any] = json.loads) -> Any:
    """The decoded document; `fallback` (the standard library's `json.loads` unless a caller
    needs its own options or error handling) decodes what orjson might read differently."""
    raw = data.encode() if isinstance(data, str) else data
    if _LONG_DIGIT_RUN not in raw.translate(_DIGITS_AS_ZEROS):
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError:
            pass
    return fallback(data)


def dumps(value: Any) -> bytes:
    try:
        return orjson.dumps(value)
    except TypeError:  # orjson.JSONEncodeError is a TypeError
        return json.dumps(value).encode()


def dumps_for_digest(value: Any) -> bytes:
    """Keys sorted, for hashing a value: the same value always gives the same bytes, and the text
    is JSON, so different values give different bytes. Not the standard library's text (no
    spaces, UTF-8): a digest of it differs from one of `json.dumps`."""
    try:
        return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)
    except TypeError:
        return json.dumps(value, sort_keys=True, default=str).encode()

"""Text PostgreSQL cannot store, made storable: U+0000 (refused in text and jsonb) and lone
surrogates (JSON's \\ud800 escapes can produce them; UTF-8 cannot encode them) become U+FFFD.

For text that reaches the database from outside without a person to refuse it to: a provider's
model name, a user's message quoted in an audit record. Standard library only (bench/floor.py
uses the audit chain without Django).
"""

from __future__ import annotations

import re

_SURROGATE = re.compile("[\ud800-\udfff]")
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
# The same in JSON written by json.dumps(ensure_ascii=False): U+0000 escaped, a surrogate as it is.
_UNSTORABLE_IN_JSON = re.compile("\\\\u0000|[\ud800-\udfff]")


def lone_surrogate(text: str) -> str | None:
    """The first surrogate code point in `text`, or None. In a str a surrogate is always alone
    (JSON's escaped pairs decode to one character), and no encoding can carry it."""
    found = _SURROGATE.search(text)
    return found.group() if found else None


def surrogate_message(what: str, surrogate: str) -> str:
    return (f"{what} contains U+{ord(surrogate):04X}, half of a UTF-16 surrogate pair, which is not a "
            "character (a JSON \\u escape cut in two?); send the whole character.")


def unstorable_reason(what: str, text: str) -> str | None:
    """Why `text` (`what`, as "The title") can be neither saved nor sent, said to whoever sent it;
    None when it can."""
    if "\x00" in text:
        return f"{what} contains a null character (\\u0000); remove it."
    if surrogate := lone_surrogate(text):
        return surrogate_message(what, surrogate)
    return None


def unstorable(text: str) -> bool:
    """Whether `text` holds what no provider can be sent nor PostgreSQL store (U+0000, a lone
    surrogate): what a client sends is refused for it rather than changed."""
    return _UNSTORABLE.search(text) is not None


def storable_text(text: str) -> str:
    return _UNSTORABLE.sub("\ufffd", text)


def unstorable_in_json(text: str) -> bool:
    """Whether JSON text (ensure_ascii=False) holds what `storable` replaces. A backslash written
    before "u0000" also matches: `storable` then changes nothing."""
    return _UNSTORABLE_IN_JSON.search(text) is not None


def storable(value):
    """`value` (str, dict, list or tuple, nested; anything else as it is) with its text made storable."""
    if isinstance(value, str):
        return storable_text(value)
    if isinstance(value, dict):
        return {storable(key): storable(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [storable(item) for item in value]
    return value

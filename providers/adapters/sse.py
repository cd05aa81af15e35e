"""Incremental Server-Sent Events decoding.

Providers frame events with LF (OpenAI, OpenRouter, Perplexity) or CRLF (Gemini), send comment
lines (`: OPENROUTER PROCESSING`), and network reads split lines anywhere (even between the CR
and LF of one line break). This decoder takes text as it arrives and hands back each complete
event's data, without waiting for the stream to end.
"""

from __future__ import annotations


class SSEDecoder:
    """Feed decoded text with `feed()`; it returns the `data` of each event completed so far."""

    def __init__(self) -> None:
        self._buffer = ""
        self._data: list[str] = []

    def feed(self, text: str) -> list[str]:
        self._buffer += text
        events: list[str] = []
        while True:
            line, found = self._next_line()
            if not found:
                break
            self._take_line(line, events)
        return events

    def flush(self) -> list[str]:
        """At end of stream: the last event even if its closing blank line never came."""
        events: list[str] = []
        if self._buffer:
            line, self._buffer = self._buffer.rstrip("\r"), ""
            self._take_line(line, events)
        if self._data:
            events.append("\n".join(self._data))
            self._data = []
        return events

    def _next_line(self) -> tuple[str, bool]:
        buf = self._buffer
        lf, cr = buf.find("\n"), buf.find("\r")
        if lf == -1 and cr == -1:
            return "", False
        if cr == -1 or (lf != -1 and lf < cr):
            self._buffer = buf[lf + 1:]
            return buf[:lf], True
        if cr + 1 == len(buf):
            return "", False  # a CR at the very end may be half of a CRLF: wait for more
        self._buffer = buf[cr + 2:] if buf[cr + 1] == "\n" else buf[cr + 1:]
        return buf[:cr], True

    def _take_line(self, line: str, events: list[str]) -> None:
        if not line:
            if self._data:
                events.append("\n".join(self._data))
                self._data = []
            return
        if line.startswith(":"):
            return  # a comment / keep-alive
        name, _, value = line.partition(":")
        if name == "data":
            self._data.append(value.removeprefix(" "))
        # `event:`, `id:` and `retry:` carry nothing these providers use.

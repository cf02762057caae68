"""Message framing on bytes: NDJSON (one message per line) and LSP ``Content-Length``.

Decoders are fed raw bytes from the server's stdout and return complete frame bodies
(still bytes); decoding to text happens only per complete frame, so a multi-byte UTF-8
character split across two reads is never damaged.
"""

from __future__ import annotations

from typing import Literal

from .errors import ProtocolError

__all__ = ["Framing", "FrameDecoder", "NdjsonDecoder", "LspDecoder", "make_decoder", "encode_frame"]

Framing = Literal["ndjson", "lsp"]

_MAX_HEADER_BLOCK = 8192


class FrameDecoder:
    """Base class: :meth:`feed` bytes, get back the complete frame bodies."""

    def feed(self, data: bytes) -> list[bytes]:
        """Add ``data`` and return every frame body now complete, in order."""
        raise NotImplementedError

    def finish(self) -> list[bytes]:
        """Called at end of input; return a last frame if one is pending and complete."""
        return []


class NdjsonDecoder(FrameDecoder):
    """One JSON message per LF-terminated line; CR before LF and blank lines are ignored."""

    def __init__(self) -> None:
        self._buf = bytearray()

    def feed(self, data: bytes) -> list[bytes]:
        """Split on ``b"\\n"``; keep the unterminated rest for the next call."""
        self._buf += data
        frames: list[bytes] = []
        start = 0
        while True:
            nl = self._buf.find(b"\n", start)
            if nl < 0:
                break
            line = bytes(self._buf[start:nl]).strip(b" \t\r")
            start = nl + 1
            if line:
                frames.append(line)
        if start:
            del self._buf[:start]
        return frames

    def finish(self) -> list[bytes]:
        """A last line without a newline is still a message."""
        rest = bytes(self._buf).strip()
        self._buf.clear()
        return [rest] if rest else []


class LspDecoder(FrameDecoder):
    """``Content-Length: N`` header block, blank line, then N bytes of body."""

    def __init__(self) -> None:
        self._buf = bytearray()
        self._need: int | None = None

    def feed(self, data: bytes) -> list[bytes]:
        """Parse as many whole frames as the buffer holds."""
        self._buf += data
        frames: list[bytes] = []
        while True:
            if self._need is None:
                # Skip whitespace between frames.
                i = 0
                while i < len(self._buf) and self._buf[i] in b" \t\r\n":
                    i += 1
                if i:
                    del self._buf[:i]
                end, sep_len = self._header_end()
                if end < 0:
                    if len(self._buf) > _MAX_HEADER_BLOCK:
                        raise ProtocolError("LSP header block longer than 8192 bytes")
                    break
                header = bytes(self._buf[:end]).decode("ascii", "replace")
                del self._buf[: end + sep_len]
                self._need = self._content_length(header)
            if len(self._buf) < self._need:
                break
            frames.append(bytes(self._buf[: self._need]))
            del self._buf[: self._need]
            self._need = None
        return frames

    def _header_end(self) -> tuple[int, int]:
        """Index of the blank line ending the header block and its length, or (-1, 0)."""
        crlf = self._buf.find(b"\r\n\r\n")
        lf = self._buf.find(b"\n\n")
        candidates = [(i, n) for i, n in ((crlf, 4), (lf, 2)) if i >= 0]
        if not candidates:
            return -1, 0
        return min(candidates)

    @staticmethod
    def _content_length(header: str) -> int:
        length: int | None = None
        for line in header.replace("\r\n", "\n").split("\n"):
            if not line.strip():
                continue
            name, sep, value = line.partition(":")
            if not sep:
                raise ProtocolError(f"bad LSP header line: {line!r}")
            if name.strip().lower() == "content-length":
                try:
                    length = int(value.strip())
                except ValueError as exc:
                    raise ProtocolError(f"bad Content-Length: {value.strip()!r}") from exc
        if length is None or length < 0:
            raise ProtocolError(f"LSP header block without Content-Length: {header!r}")
        return length


def make_decoder(framing: Framing) -> FrameDecoder:
    """Return a fresh decoder for ``framing``."""
    if framing == "ndjson":
        return NdjsonDecoder()
    if framing == "lsp":
        return LspDecoder()
    raise ValueError(f"unknown framing {framing!r}; use 'ndjson' or 'lsp'")


def encode_frame(body: bytes, framing: Framing) -> bytes:
    """Wrap a UTF-8 JSON body for the wire."""
    if framing == "ndjson":
        if b"\n" in body:
            raise ValueError("an NDJSON message must not contain a raw line break")
        return body + b"\n"
    return b"Content-Length: %d\r\n\r\n" % len(body) + body

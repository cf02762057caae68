"""The byte-level frame decoders, fed in awkward pieces."""

from __future__ import annotations

import json

import pytest

from stagerunner import ProtocolError
from stagerunner.framing import LspDecoder, NdjsonDecoder, encode_frame, make_decoder

MESSAGES = [{"jsonrpc": "2.0", "id": 1, "result": {"echo": "héllo 𝄞"}}, {"jsonrpc": "2.0", "method": "x"}]


def bodies() -> list[bytes]:
    return [json.dumps(m, ensure_ascii=False).encode() for m in MESSAGES]


@pytest.mark.parametrize("framing", ["ndjson", "lsp"])
@pytest.mark.parametrize("step", [1, 2, 3, 7, 1000])
def test_round_trip_in_pieces(framing: str, step: int) -> None:
    wire = b"".join(encode_frame(b, framing) for b in bodies())  # type: ignore[arg-type]
    decoder = make_decoder(framing)  # type: ignore[arg-type]
    out: list[bytes] = []
    for i in range(0, len(wire), step):
        out += decoder.feed(wire[i : i + step])  # multi-byte characters get split here
    out += decoder.finish()
    assert out == bodies()
    assert [json.loads(b.decode()) for b in out] == MESSAGES


def test_ndjson_details() -> None:
    d = NdjsonDecoder()
    assert d.feed(b'\n  \r\n{"a":1}\r\n{"b"') == [b'{"a":1}']
    assert d.feed(b":2}") == []
    assert d.finish() == [b'{"b":2}']
    with pytest.raises(ValueError):
        encode_frame(b"{\n}", "ndjson")


def test_lsp_details() -> None:
    d = LspDecoder()
    body = '{"x":"é"}'.encode()
    frame = b"content-length: %d\nContent-Type: application/vscode-jsonrpc; charset=utf-8\n\n" % len(body) + body
    assert d.feed(b"\r\n" + frame + frame) == [body, body]
    assert encode_frame(body, "lsp") == b"Content-Length: 10\r\n\r\n" + body  # 9 characters, 10 bytes
    with pytest.raises(ProtocolError):
        LspDecoder().feed(b"Bogus\r\n\r\n")
    with pytest.raises(ProtocolError):
        LspDecoder().feed(b"Content-Length: x\r\n\r\n")
    with pytest.raises(ValueError):
        make_decoder("xml")  # type: ignore[arg-type]

import { test } from "node:test";
import assert from "node:assert/strict";

import { NdjsonFramer, LspFramer, encodeMessage } from "../src/framing.js";

function collect(Framer, options = {}) {
  const messages = [];
  const errors = [];
  const framer = new Framer({ onMessage: (t) => messages.push(t), onError: (e) => errors.push(e), ...options });
  return { framer, messages, errors };
}

function feedByteByByte(framer, bytes) {
  for (let i = 0; i < bytes.length; i++) framer.push(bytes.subarray(i, i + 1));
}

// Characters of 2, 3 and 4 UTF-8 bytes, plus a combining sequence and U+2028.
const TEXTS = ["héllo", "日本語のテキスト", "emoji 😀🎉 and 𝄞", "e\u0301 \u2028 ü", ""];
const MESSAGES = TEXTS.map((t, i) => ({ jsonrpc: "2.0", id: i + 1, result: { echo: t } }));

for (const [name, Framer] of [["ndjson", NdjsonFramer], ["lsp", LspFramer]]) {
  test(`${name} framer: byte-by-byte input keeps multibyte characters`, () => {
    const bytes = Buffer.concat(MESSAGES.map((m) => encodeMessage(m, name)));
    const { framer, messages, errors } = collect(Framer);
    feedByteByByte(framer, bytes);
    framer.end();
    assert.deepEqual(errors, []);
    assert.deepEqual(messages.map((t) => JSON.parse(t)), MESSAGES);
  });

  test(`${name} framer: every split point of a multibyte frame`, () => {
    const bytes = encodeMessage({ jsonrpc: "2.0", id: 1, result: { echo: "😀é日" } }, name);
    for (let cut = 1; cut < bytes.length; cut++) {
      const { framer, messages, errors } = collect(Framer);
      framer.push(bytes.subarray(0, cut));
      framer.push(bytes.subarray(cut));
      assert.deepEqual(errors, []);
      assert.equal(messages.length, 1, `cut at ${cut}`);
      assert.equal(JSON.parse(messages[0]).result.echo, "😀é日");
    }
  });

  test(`${name} framer: many frames in one chunk`, () => {
    const bytes = Buffer.concat(MESSAGES.map((m) => encodeMessage(m, name)));
    const { framer, messages } = collect(Framer);
    framer.push(bytes);
    assert.deepEqual(messages.map((t) => JSON.parse(t)), MESSAGES);
  });

  test(`${name} framer: invalid UTF-8 is reported and the next frame still arrives`, () => {
    const good = encodeMessage({ jsonrpc: "2.0", id: 2, result: {} }, name);
    const badBody = Buffer.from([0x7b, 0xff, 0xfe, 0x7d]); // "{", invalid bytes, "}"
    const bad = name === "ndjson"
      ? Buffer.concat([badBody, Buffer.from("\n")])
      : Buffer.concat([Buffer.from(`Content-Length: ${badBody.length}\r\n\r\n`), badBody]);
    const { framer, messages, errors } = collect(Framer);
    framer.push(Buffer.concat([bad, good]));
    assert.equal(errors.length, 1);
    assert.deepEqual(messages.map((t) => JSON.parse(t)), [{ jsonrpc: "2.0", id: 2, result: {} }]);
  });
}

test("ndjson framer: CRLF, blank lines, whitespace lines and a last line without LF", () => {
  const { framer, messages } = collect(NdjsonFramer);
  framer.push(Buffer.from('\n  \r\n{"a":1}\r\n\n{"b":"ü"}\n{"c":3}'));
  assert.equal(messages.length, 2);
  framer.end();
  assert.deepEqual(messages.map((t) => JSON.parse(t)), [{ a: 1 }, { b: "ü" }, { c: 3 }]);
});

test("ndjson framer: an over-size line is skipped, the next one delivered", () => {
  const { framer, messages, errors } = collect(NdjsonFramer, { maxMessageSize: 16 });
  framer.push(Buffer.from('{"x":"' + "a".repeat(10)));
  framer.push(Buffer.from("a".repeat(20) + '"}\n{"ok":1}\n'));
  assert.equal(errors.length, 1);
  assert.deepEqual(messages.map((t) => JSON.parse(t)), [{ ok: 1 }]);
});

test("lsp framer: case-insensitive header, extra headers, bare LF, whitespace between frames", () => {
  const body = Buffer.from('{"x":"日本"}');
  const input = Buffer.concat([
    Buffer.from(`content-length: ${body.length}\nContent-Type: application/vscode-jsonrpc; charset=utf-8\n\n`),
    body,
    Buffer.from(`\r\n  Content-Length: ${body.length}\r\n\r\n`),
    body,
  ]);
  const { framer, messages, errors } = collect(LspFramer);
  feedByteByByte(framer, input);
  assert.deepEqual(errors, []);
  assert.deepEqual(messages, ['{"x":"日本"}', '{"x":"日本"}']);
});

test("lsp framer: a header block without Content-Length is reported, reading continues", () => {
  const good = encodeMessage({ ok: true }, "lsp");
  const { framer, messages, errors } = collect(LspFramer);
  framer.push(Buffer.concat([Buffer.from("X-Foo: 1\r\n\r\n"), good]));
  assert.equal(errors.length, 1);
  assert.deepEqual(messages, ['{"ok":true}']);
});

test("encodeMessage: Content-Length counts bytes, not characters", () => {
  const frame = encodeMessage({ jsonrpc: "2.0", id: 1, result: { echo: "héllo" } }, "lsp").toString("utf8");
  assert.ok(frame.startsWith("Content-Length: 51\r\n\r\n"), frame);
  const line = encodeMessage({ s: "a\nb" }, "ndjson").toString("utf8");
  assert.equal(line, '{"s":"a\\nb"}\n');
});

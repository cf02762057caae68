// The client must not write to stdin while the previous write() asked it to wait for 'drain'.
import { test } from "node:test";
import assert from "node:assert/strict";
import { EventEmitter } from "node:events";
import { PassThrough, Writable } from "node:stream";

import { Client } from "../index.js";

function fakeChild() {
  const written = [];
  const violations = [];
  const stdin = new Writable({
    highWaterMark: 64,
    write(chunk, _enc, cb) {
      written.push(Buffer.from(chunk));
      setTimeout(cb, 2); // a slow reader
    },
  });
  const realWrite = stdin.write.bind(stdin);
  stdin.write = (chunk, ...rest) => {
    if (stdin.writableNeedDrain) violations.push(written.length);
    return realWrite(chunk, ...rest);
  };
  const child = new EventEmitter();
  Object.assign(child, { pid: undefined, stdin, stdout: new PassThrough(), stderr: new PassThrough() });
  return { child, written, violations };
}

test("writes wait for 'drain' and keep their order", async () => {
  const { child, written, violations } = fakeChild();
  const client = new Client(child, { framing: "ndjson" });
  const sends = [];
  for (let i = 0; i < 40; i++) sends.push(client.notify("note", { i, pad: "é".repeat(50) }));
  await Promise.all(sends);
  await new Promise((r) => child.stdin.once("drain", r));
  assert.deepEqual(violations, []);
  const lines = Buffer.concat(written).toString("utf8").trim().split("\n").map((l) => JSON.parse(l));
  assert.deepEqual(lines.map((m) => m.params.i), Array.from({ length: 40 }, (_, i) => i));
});

test("responses are matched by id; frames split anywhere are reassembled", async () => {
  const { child, written } = fakeChild();
  const client = new Client(child, { framing: "ndjson" });
  const a = client.request("a");
  const b = client.request("b", { x: 1 });
  await new Promise((r) => setTimeout(r, 20));
  const ids = Buffer.concat(written).toString().trim().split("\n").map((l) => JSON.parse(l).id);
  const out = Buffer.from(
    JSON.stringify({ jsonrpc: "2.0", id: ids[1], result: { b: "日本" } }) + "\n" +
    JSON.stringify({ jsonrpc: "2.0", id: ids[0], error: { code: -32011, message: "t", data: { kind: "template", hint: "h", file: "f", line: 2 } } }) + "\n");
  for (let i = 0; i < out.length; i++) child.stdout.write(out.subarray(i, i + 1));
  assert.deepEqual(await b, { b: "日本" });
  await assert.rejects(a, (e) => e.name === "TemplateError" && e.data.line === 2 && e.method === "a");
});

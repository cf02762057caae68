#!/usr/bin/env node
// A stand-in server for what protocol 1.0 servers do not send yet: notifications
// (statusChanged, $/progress) and server-to-client requests (executeStage, unknown ones).
// NDJSON only. Started by the client as `fake-server.mjs serve --framing ndjson`.
// `node --test test/` also runs every file under test/, this one included: without the
// `serve` argument it does nothing and exits.
import readline from "node:readline";

if (process.argv[2] !== "serve") process.exit(0);

const send = (m) => process.stdout.write(JSON.stringify(m) + "\n");
const waiting = new Map();
const rl = readline.createInterface({ input: process.stdin });
rl.on("line", (line) => {
  if (!line.trim()) return;
  const msg = JSON.parse(line);
  if (msg.method === undefined) {
    // A response to one of our requests.
    const w = waiting.get(msg.id);
    waiting.delete(msg.id);
    w?.(msg);
    return;
  }
  if (msg.id === undefined) {
    if (msg.method === "exit") process.exit(0);
    return;
  }
  switch (msg.method) {
    case "initialize":
      send({ jsonrpc: "2.0", id: msg.id, result: { protocolVersion: "1.0", serverInfo: { name: "fake", version: "0" },
        capabilities: { methods: ["initialize", "shutdown", "go"], notifications: ["exit"], batches: true, cancellation: true, framing: "ndjson", maxMessageSize: 1024 },
        workspace: { root: "/" } } });
      break;
    case "go": {
      // Notifications, then two server requests; answer `go` with what the client replied.
      process.stderr.write("fake: go\n");
      send({ jsonrpc: "2.0", method: "statusChanged", params: { stage: "draft", state: "running" } });
      send({ jsonrpc: "2.0", method: "$/progress", params: { token: 1, value: { percent: 50 } } });
      send({ jsonrpc: "2.0", method: "statusChanged", params: { stage: "draft", state: "done" } });
      const replies = {};
      let left = 3;
      const done = () => { if (--left === 0) send({ jsonrpc: "2.0", id: msg.id, result: replies }); };
      for (const [id, method] of [["s1", "executeStage"], ["s2", "no/such"], ["s3", "failing"]]) {
        waiting.set(id, (r) => { replies[method] = r; done(); });
        send({ jsonrpc: "2.0", id, method, params: { stage: "draft", genId: "g" } });
      }
      break;
    }
    case "shutdown":
      send({ jsonrpc: "2.0", id: msg.id, result: null });
      break;
    default:
      send({ jsonrpc: "2.0", id: msg.id, error: { code: -32601, message: "nope", data: { method: msg.method, available: [] } } });
  }
});
rl.on("close", () => process.exit(0));

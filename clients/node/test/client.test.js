// End-to-end tests against the real server binary, on temporary copies of examples/daydream.
import { test, describe, after } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";

import {
  Client, RpcError, MethodNotFound, InvalidParams, InvalidRequest, TemplateError, WorkspaceError,
  ModelError, TruncatedError, ServerExitedError, AbortError, TimeoutError, ErrorCodes,
} from "../index.js";
import { BIN, SKIP_NO_BIN, HERE, assertSchema, traffic, workspaceCopy, cleanupWorkspaces } from "./helpers.js";

after(cleanupWorkspaces);

const FRAMINGS = ["ndjson", "lsp"];

async function withClient(options, fn) {
  const client = await Client.spawn({ executable: BIN, ...options });
  try {
    return await fn(client);
  } finally {
    await client.close();
  }
}

/** Assert that `promise` rejects with `cls`, check it against error.json, and return the error. */
async function rejectsWith(promise, cls) {
  let error;
  await assert.rejects(promise, (e) => { error = e; return true; });
  assert.ok(error instanceof cls, `expected ${cls.name}, got ${error?.name}: ${error?.message}`);
  if (error instanceof RpcError) {
    assert.equal(error.code, cls.code);
    assertSchema(error.toJSON(), "error");
  }
  return error;
}

describe("every method", { skip: SKIP_NO_BIN }, () => {
  for (const framing of FRAMINGS) {
    test(`${framing}: initialize, ping, listTemplates, validateWorkspace, renderPrompt, runStage, shutdown`, async () => {
      const ws = workspaceCopy();
      const client = await Client.spawn({ executable: BIN, workspace: ws, framing });
      try {
        assertSchema(client.initializeResult, "initialize.result");
        assert.equal(client.capabilities.framing, framing);
        assert.equal(client.serverInfo.name, "stagerunner");
        assert.equal(client.initializeResult.workspace.root, fs.realpathSync(ws));
        assert.deepEqual([traffic(client).sent.initialize, traffic(client).sent.initialized], [1, 1]);

        const echo = { s: "héllo 日本 😀", n: [1, 2.5, null, true], nested: { k: "ü" } };
        const pong = await client.ping({ echo });
        assertSchema(pong, "ping.result");
        assert.deepEqual(pong, { echo });
        assert.deepEqual(await client.ping(), {});
        assert.deepEqual(await client.ping({ echo: null }), { echo: null });

        const all = await client.listTemplates();
        assertSchema(all, "listTemplates.result");
        assert.ok(all.templates.length >= 6);
        const evals = await client.listTemplates({ stage: "evaluation" });
        assertSchema(evals, "listTemplates.result");
        assert.ok(evals.templates.every((t) => t.stage === "evaluation"));
        const active = await client.listTemplates({ includeInactive: false });
        assert.ok(active.templates.every((t) => t.active));

        const vw = await client.validateWorkspace();
        assertSchema(vw, "validateWorkspace.result");
        assert.equal(vw.valid, true);
        assert.equal(vw.root, fs.realpathSync(ws));

        const rp = await client.renderPrompt({ stage: "draft", genId: "d-creative" });
        assertSchema(rp, "renderPrompt.result");
        assert.equal(rp.templateId, "creative-synthesis");
        assert.match(rp.prompt, /Concepts:/);

        const draft = await client.runStage({ stage: "draft", genId: "d-creative" });
        assertSchema(draft, "runStage.result");
        assert.equal(draft.reused, false);
        assert.equal(draft.metadata.gen_id, "d-creative");
        const onDisk = JSON.parse(fs.readFileSync(path.join(ws, "data/gens/draft/d-creative/metadata.json"), "utf8"));
        assert.deepEqual(draft.metadata, onDisk);
        assertSchema(onDisk, "metadata");

        const again = await client.runStage({ stage: "draft", genId: "d-creative" });
        assertSchema(again, "runStage.result");
        assert.equal(again.reused, true);

        const copy = await client.runStage({ stage: "essay", genId: "e-creative-copy" });
        assertSchema(copy, "runStage.result");
        assert.equal(copy.metadata.mode, "copy");
        assert.equal(copy.raw, null);

        // An evaluation whose essay has not been generated: the server generates it first.
        const evaluation = await client.runStage({ stage: "evaluation", genId: "v-creative-llm-novelty" });
        assertSchema(evaluation, "runStage.result");
        assert.equal(evaluation.metadata.parent_gen_id, "e-creative-llm");

        // Generic request() and notify() reach the same methods.
        assert.deepEqual(await client.request("ping", { echo: 7 }), { echo: 7 });
        await client.notify("initialized", {});

        assert.equal(await client.shutdown(), null);
        assert.equal(traffic(client).sent.shutdown, 1);
        await rejectsWith(client.ping(), InvalidRequest); // every request after shutdown is -32600
      } finally {
        const info = await client.close();
        assert.equal(info.exitCode, 0);
      }
    });
  }

  test("STAGERUNNER_BIN is the default executable; close() reports exit status 0", async () => {
    const saved = process.env.STAGERUNNER_BIN;
    process.env.STAGERUNNER_BIN = BIN;
    try {
      const client = await Client.spawn({ workspace: workspaceCopy() });
      assert.deepEqual(await client.ping({ echo: "x" }), { echo: "x" });
      const info = await client.close();
      assert.deepEqual([info.exitCode, info.signal], [0, null]);
      assert.deepEqual([traffic(client).sent.shutdown, traffic(client).sent.exit], [1, 1]); // the ladder's first steps
      await rejectsWith(client.ping(), ServerExitedError);
    } finally {
      if (saved === undefined) delete process.env.STAGERUNNER_BIN;
      else process.env.STAGERUNNER_BIN = saved;
    }
  });

  test("spawn() failures: bad --workspace (exit 64, stderr kept) and bad workspaceRoot (-32602)", async () => {
    const missing = path.join(HERE, "no-such-workspace");
    const exited = await rejectsWith(Client.spawn({ executable: BIN, workspace: missing }), ServerExitedError);
    assert.equal(exited.exitCode, 64);
    assert.match(exited.stderrTail, /no-such-workspace/);
    const bad = await rejectsWith(
      Client.spawn({ executable: BIN, initializeParams: { workspaceRoot: missing } }), InvalidParams);
    assert.equal(bad.data.field, "params.workspaceRoot");
  });

  test("a missing executable rejects spawn()", async () => {
    await assert.rejects(Client.spawn({ executable: path.join(HERE, "no-such-binary") }), /ENOENT/);
  });
});

describe("error classes", { skip: SKIP_NO_BIN }, () => {
  for (const framing of FRAMINGS) {
    test(`${framing}: -32601, -32602, -32011, -32012, -32014 with data`, async () => {
      await withClient({ workspace: workspaceCopy(), framing }, async (client) => {
        const nf = await rejectsWith(client.request("no/such/method", {}), MethodNotFound);
        assert.equal(nf.data.method, "no/such/method");
        assert.ok(nf.data.available.includes("runStage"));
        assert.equal(nf.method, "no/such/method");

        const ip = await rejectsWith(client.runStage({ stage: "poem", genId: "d-creative" }), InvalidParams);
        assert.equal(ip.data.field, "params.stage");
        assert.equal(typeof ip.data.problem, "string");
        const ip2 = await rejectsWith(client.request("ping", [1]), InvalidParams);
        assert.equal(ip2.data.field, "params");

        const te = await rejectsWith(
          client.runStage({ stage: "draft", templateId: "creative-synthesis", model: "m" }), TemplateError);
        assert.equal(te.data.kind, "template");
        assert.equal(te.data.file, "data/1_raw/templates/draft/creative-synthesis.txt");
        assert.ok(Number.isInteger(te.data.line) && te.data.line >= 1);

        const me = await rejectsWith(client.runStage({
          stage: "draft", templateId: "systematic-analytical", model: "acme:gpt-5", values: { concepts: [] },
        }), ModelError);
        assert.equal(me.data.field, "params.model");
        assert.deepEqual([me.data.kind, me.provider, me.retries, me.httpStatus], ["unavailable", "acme", 0, undefined]);

        const tr = await rejectsWith(client.runStage({
          stage: "draft", genId: "t-1", templateId: "systematic-analytical", model: "sonnet-4",
          promptText: "Write at length about idle minds.", maxTokens: 2, failOnTruncation: true,
        }), TruncatedError);
        assert.equal(tr.data.kind, "truncated");
        assert.equal(tr.code, ErrorCodes.TruncatedError);
      });
    });
  }

  test("-32010 workspace error from renderPrompt in a fresh copy", async () => {
    await withClient({ workspace: workspaceCopy() }, async (client) => {
      const we = await rejectsWith(
        client.renderPrompt({ stage: "evaluation", genId: "v-creative-llm-novelty" }), WorkspaceError);
      assert.equal(we.data.kind, "workspace");
      assert.equal(we.data.field, "params.passThroughFrom");
      assert.equal(typeof we.data.hint, "string");
    });
  });
});

describe("cancellation", { skip: SKIP_NO_BIN }, () => {
  for (const framing of FRAMINGS) {
    test(`${framing}: AbortSignal and timeout cancel test/sleep; ping still works`, async () => {
      const client = await Client.spawn({ executable: BIN, framing, args: ["--enable-test-methods"] });
      const lateErrors = [];
      client.on("protocolError", (e) => lateErrors.push(e));
      try {
        const ac = new AbortController();
        const t0 = Date.now();
        const sleeping = client.request("test/sleep", { ms: 5000 }, { signal: ac.signal });
        setTimeout(() => ac.abort(), 100);
        await rejectsWith(sleeping, AbortError);
        assert.ok(Date.now() - t0 < 2000, `abort took ${Date.now() - t0} ms`);
        assert.deepEqual(await client.ping({ echo: "after abort" }), { echo: "after abort" });

        const t1 = Date.now();
        await rejectsWith(client.request("test/sleep", { ms: 5000 }, { timeout: 150 }), TimeoutError);
        assert.ok(Date.now() - t1 < 2000, `timeout took ${Date.now() - t1} ms`);
        assert.deepEqual(await client.ping(), {});

        // Already aborted: nothing is sent.
        await rejectsWith(client.request("test/sleep", { ms: 5000 }, { signal: AbortSignal.abort() }), AbortError);

        // A call that finishes in time is unaffected by its timeout.
        const quick = await client.request("test/sleep", { ms: 10 }, { timeout: 5000 });
        assertSchema(quick, "test-sleep.result");
        assert.deepEqual(quick, { slept: 10 });
        assert.equal(traffic(client).sent["$/cancelRequest"], 2); // the abort and the timeout
      } finally {
        // shutdown waits for requests in progress: a quick close proves the cancels took effect.
        const t2 = Date.now();
        const info = await client.close();
        assert.equal(info.exitCode, 0);
        assert.ok(Date.now() - t2 < 3000, `close took ${Date.now() - t2} ms; were the sleeps cancelled?`);
      }
      assert.deepEqual(lateErrors, []); // late -32800 answers were dropped quietly
    });
  }
});

describe("process death", { skip: SKIP_NO_BIN }, () => {
  test("SIGKILL rejects pending calls with ServerExitedError carrying the stderr tail", async () => {
    const client = await Client.spawn({ executable: BIN, args: ["--enable-test-methods", "--log-level", "debug"] });
    const exitEvent = new Promise((resolve) => client.once("exit", resolve));
    const notes = client.notifications();
    const pending = [
      client.request("test/sleep", { ms: 30000 }),
      client.request("test/sleep", { ms: 30000 }),
    ];
    await client.ping(); // the sleeps have been read
    process.kill(client.pid, "SIGKILL");
    for (const p of pending) {
      const err = await rejectsWith(p, ServerExitedError);
      assert.equal(err.signal, "SIGKILL");
      assert.equal(err.exitCode, null);
      assert.match(err.stderrTail, /serving on stdio[\s\S]*initialized/);
    }
    const info = await exitEvent;
    assert.equal(info.signal, "SIGKILL");
    assert.deepEqual(await notes.next(), { value: undefined, done: true }); // iterators end
    await rejectsWith(client.ping(), ServerExitedError);
    await assert.rejects(client.notify("x"), ServerExitedError);
    assert.equal((await client.close()).signal, "SIGKILL"); // close() after death is harmless
  });

  test("close() escalates to SIGTERM when the server ignores shutdown/exit", async () => {
    // `sleep` ignores stdin; close must fall back to signals on the process group.
    const fake = path.join(fs.mkdtempSync(path.join(os.tmpdir(), "stagerunner-node-")), "fake-sleeper.sh");
    fs.writeFileSync(fake, "#!/bin/sh\nexec sleep 60\n", { mode: 0o755 });
    try {
      const client = await Client.spawn({ executable: fake, initialize: false });
      const t0 = Date.now();
      const info = await client.close({ grace: 300 });
      assert.equal(info.signal, "SIGTERM");
      assert.ok(Date.now() - t0 < 3000);
    } finally {
      fs.rmSync(path.dirname(fake), { recursive: true, force: true });
    }
  });

  test("close() escalates to SIGKILL when SIGTERM is ignored", async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "stagerunner-node-"));
    const fake = path.join(dir, "fake-stubborn.sh");
    fs.writeFileSync(fake, "#!/bin/sh\ntrap '' TERM\nwhile :; do sleep 0.05; done\n", { mode: 0o755 });
    try {
      const client = await Client.spawn({ executable: fake, initialize: false });
      const t0 = Date.now();
      const info = await client.close({ grace: 300 });
      assert.equal(info.signal, "SIGKILL");
      assert.ok(Date.now() - t0 < 3000);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("load", { skip: SKIP_NO_BIN }, () => {
  for (const framing of FRAMINGS) {
    test(`${framing}: a chatty server (--log-level trace) answers 300 pings without stalling`, async () => {
      const client = await Client.spawn({
        executable: BIN, framing, args: ["--log-level", "trace", "--enable-test-methods"], stderrLimit: 4096,
      });
      try {
        let stderrBytes = 0;
        client.on("stderr", (c) => { stderrBytes += c.length; });
        const big = "x".repeat(2000);
        // test/print writes to fd 1, which the server redirects to stderr: lots of stderr.
        const results = await Promise.all(Array.from({ length: 300 }, (_, i) =>
          i % 3 === 0 ? client.request("test/print", { text: big + i + "\n" }) : client.ping({ echo: i })));
        results.forEach((r, i) => { if (i % 3 !== 0) assert.deepEqual(r, { echo: i }); });
        for (let i = 0; i < 300; i++) assert.deepEqual(await client.ping({ echo: i }), { echo: i });
        assert.ok(stderrBytes > 64 * 1024, `only ${stderrBytes} bytes of stderr`);
        assert.ok(client.stderrTail().length <= 4096);
      } finally {
        await client.close();
      }
    });

    test(`${framing}: 50 concurrent runStage calls`, async () => {
      const ws = workspaceCopy();
      await withClient({ workspace: ws, framing }, async (client) => {
        const results = await Promise.all(Array.from({ length: 50 }, (_, i) => client.runStage({
          stage: "draft", genId: `c-${i}`, templateId: "systematic-analytical", model: "sonnet-4",
          promptText: `Idea number ${i}: ünïcode ✓`,
        })));
        results.forEach((r, i) => {
          assertSchema(r, "runStage.result");
          assert.equal(r.genId, `c-${i}`);
          assert.equal(r.metadata.gen_id, `c-${i}`);
        });
        assert.equal(fs.readdirSync(path.join(ws, "data/gens/draft")).length, 50);
      });
    });

    test(`${framing}: a 3 MiB multibyte echo goes through (write back-pressure, large frames)`, async () => {
      await withClient({ framing }, async (client) => {
        const echo = "é日😀".repeat(300000); // 9 bytes × 300000 ≈ 2.7 MB
        const [a, b] = await Promise.all([client.ping({ echo }), client.ping({ echo: echo + "!" })]);
        assert.equal(a.echo, echo);
        assert.equal(b.echo, echo + "!");
      });
    });
  }
});

describe("notifications and server-to-client requests (fake server)", () => {
  test("EventEmitter, async iterator, handle() and -32601 for unknown requests", async () => {
    const client = await Client.spawn({ executable: path.join(HERE, "fake-server.mjs") });
    try {
      const seen = [];
      const status = [];
      client.on("notification", (n) => seen.push(n.method));
      client.on("statusChanged", (p) => status.push(p.state));
      const iter = client.notifications("statusChanged");
      const allIter = client.notifications();
      client.handle("executeStage", async (params) => ({ ok: true, got: params.genId }));
      client.handle("failing", async () => { throw new Error("boom"); });

      const replies = await client.request("go");
      assert.deepEqual(replies.executeStage.result, { ok: true, got: "g" });
      assert.equal(replies["no/such"].error.code, -32601);
      assert.equal(replies["no/such"].error.data.method, "no/such");
      assert.deepEqual(replies["no/such"].error.data.available, ["executeStage", "failing"]);
      assert.equal(replies.failing.error.code, -32603);
      assert.match(replies.failing.error.message, /boom/);

      assert.deepEqual(seen, ["statusChanged", "$/progress", "statusChanged"]);
      assert.deepEqual(status, ["running", "done"]);
      assert.deepEqual((await iter.next()).value, { stage: "draft", state: "running" });
      assert.deepEqual((await iter.next()).value, { stage: "draft", state: "done" });
      assert.equal((await allIter.next()).value.method, "statusChanged");
      assert.deepEqual((await allIter.next()).value, { method: "$/progress", params: { token: 1, value: { percent: 50 } } });
      await allIter.return();
      assert.match(client.stderrTail(), /fake: go/);
    } finally {
      const info = await client.close();
      assert.equal(info.exitCode, 0);
    }
  });
});

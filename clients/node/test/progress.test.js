// runStage's progress callbacks ($/progress), its budgetScope and cache params, and BudgetError
// (-32017), against the real server on temporary copies of examples/daydream.
import { test, describe, after } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";

import { Client, BudgetError, ErrorCodes, RpcError, TemplateError, rpcErrorFromObject } from "../index.js";
import {
  BIN, SCHEMA_DIR, SKIP_NO_BIN, assertSchema, traffic, validator, workspaceCopy, cleanupWorkspaces,
} from "./helpers.js";

after(cleanupWorkspaces);

/** A client whose $/progress notifications are all checked against progress.params.json. */
async function withClient(ws, fn) {
  const client = await Client.spawn({ executable: BIN, workspace: ws });
  const problems = [];
  let progressNotes = 0;
  client.on("$/progress", (params) => {
    progressNotes++;
    problems.push(...validator.validateFile(params, path.join(SCHEMA_DIR, "progress.params.json")));
  });
  try {
    return await fn(client, () => progressNotes);
  } finally {
    await client.close();
    assert.deepEqual(problems, [], "every $/progress matches progress.params.json");
  }
}

/** The result without what changes from one run of the same generation to the next. */
function comparable(result) {
  const { reused, ...same } = result;
  const { created_at, duration_ms, run_id, ...metadata } = result.metadata;
  return { ...same, metadata };
}

function addBudgets(ws, yaml) {
  fs.appendFileSync(path.join(ws, "stagerunner.yaml"), `\nbudgets:\n${yaml}`);
}

describe("$/progress", { skip: SKIP_NO_BIN }, () => {
  test("onProgress gets begin, one report with the whole text, end; the result is the same as without", async () => {
    await withClient(workspaceCopy(), async (client, progressNotes) => {
      const plain = await client.runStage({ stage: "draft", genId: "d-creative" });
      const values = [];
      const streamed = await client.runStage({ stage: "draft", genId: "d-creative", force: true },
        { onProgress: (value) => values.push(value) });
      assertSchema(streamed, "runStage.result");
      // The embedded provider answers whole.
      assert.deepEqual(values, [
        { kind: "begin", title: "runStage" },
        { kind: "report", text: plain.raw },
        { kind: "end", message: "success" },
      ]);
      assert.equal(streamed.reused, false);
      assert.deepEqual(comparable(streamed), comparable(plain));
      assert.equal(progressNotes(), 3);
      assert.equal(traffic(client).received["$/progress"], 3);
      assert.equal(client._progress.size, 0); // the token's route is gone
    });
  });

  test("an async onProgress is awaited in order; an explicit token; a token alone; a reused generation", async () => {
    await withClient(workspaceCopy(), async (client) => {
      const seen = [];
      const tokens = [];
      client.on("$/progress", ({ token }) => tokens.push(token));
      const result = await client.runStage({ stage: "draft", genId: "d-creative", progressToken: 42 }, {
        onProgress: async (value) => {
          await new Promise((resolve) => setTimeout(resolve, 10));
          seen.push(value.kind);
        },
      });
      assert.deepEqual(seen, ["begin", "report", "end"]); // all delivered before runStage resolved
      assert.deepEqual(tokens, [42, 42, 42]);
      assert.equal(result.status, "success");

      const notes = client.notifications("$/progress");
      const reused = await client.runStage({ stage: "draft", genId: "d-creative", progressToken: "mine" });
      assert.equal(reused.reused, true);
      const got = [(await notes.next()).value, (await notes.next()).value];
      await notes.return();
      assert.deepEqual(got, [
        { token: "mine", value: { kind: "begin", title: "runStage" } },
        { token: "mine", value: { kind: "end", message: "reused" } },
      ]);
    });
  });

  test("concurrent runs each get their own values", async () => {
    await withClient(workspaceCopy(), async (client) => {
      const a = [];
      const b = [];
      const [ra, rb] = await Promise.all([
        client.runStage({ stage: "draft", genId: "d-creative" }, { onProgress: (v) => a.push(v) }),
        client.runStage({
          stage: "draft", templateId: "systematic-analytical", model: "sonnet-4",
          values: { concepts: [{ name: "Sleep", description: "replay" }] },
        }, { onProgress: (v) => b.push(v) }),
      ]);
      assert.deepEqual(a.filter((v) => v.kind === "report").map((v) => v.text), [ra.raw]);
      assert.deepEqual(b.filter((v) => v.kind === "report").map((v) => v.text), [rb.raw]);
      assert.notEqual(ra.raw, rb.raw);
    });
  });

  test("an error ends the progress with its message; a throwing onProgress rejects once the server answered", async () => {
    const ws = workspaceCopy();
    await withClient(ws, async (client) => {
      const values = [];
      const error = await client.runStage({ stage: "draft", templateId: "creative-synthesis", model: "m" },
        { onProgress: (v) => values.push(v) }).then(() => null, (e) => e);
      assert.ok(error instanceof TemplateError);
      assert.deepEqual(values.map((v) => v.kind), ["begin", "end"]);
      assert.ok(error.message.includes(values[1].message));

      await assert.rejects(
        client.runStage({ stage: "draft", genId: "d-creative" }, {
          onProgress: (v) => { if (v.kind === "report") throw new Error("the UI went away"); },
        }),
        /the UI went away/,
      );
      assert.ok(fs.existsSync(path.join(ws, "data/gens/draft/d-creative/metadata.json"))); // the run completed
      assert.deepEqual(await client.ping({ echo: "still fine" }), { echo: "still fine" });
      await assert.rejects(client.runStage({ stage: "draft" }, { onProgress: "no" }), TypeError);
    });
  });
});

describe("budgets and the cache", { skip: SKIP_NO_BIN }, () => {
  test("a request budget refusal rejects with BudgetError and its data", async () => {
    const ws = workspaceCopy();
    addBudgets(ws, "  request: {tokens: 5}\n");
    await withClient(ws, async (client) => {
      const values = [];
      const error = await client.runStage({ stage: "draft", genId: "d-creative" },
        { onProgress: (v) => values.push(v) }).then(() => null, (e) => e);
      assert.ok(error instanceof BudgetError, `got ${error}`);
      assert.ok(error instanceof RpcError);
      assert.equal(error.code, -32017);
      assert.equal(error.code, ErrorCodes.BudgetError);
      assertSchema(error.toJSON(), "error");
      assert.equal(error.data.kind, "budget");
      assert.deepEqual([error.scope, error.unit, error.cap, error.spent, error.reserved], ["request", "tokens", 5, 0, 0]);
      assert.ok(error.needed > 5);
      assert.equal(error.budgetScope, undefined);
      assert.equal(typeof error.data.hint, "string");
      assert.deepEqual(values.map((v) => v.kind), ["begin", "end"]);
      assert.equal(fs.existsSync(path.join(ws, "data/gens/draft/d-creative")), false); // nothing committed
    });
  });

  test("a job budget names its budgetScope; calls without one are not capped by it", async () => {
    const ws = workspaceCopy();
    addBudgets(ws, "  job: {tokens: 50}\n");
    await withClient(ws, async (client) => {
      const params = { stage: "draft", templateId: "systematic-analytical", model: "m", maxTokens: 100 };
      const error = await client.runStage({ ...params, promptText: "Write at length about idle minds.", budgetScope: "batch-1" })
        .then(() => null, (e) => e);
      assert.ok(error instanceof BudgetError, `got ${error}`);
      assert.deepEqual([error.scope, error.budgetScope, error.cap], ["job", "batch-1", 50]);
      assert.ok(error.needed > 50);
      const ok = await client.runStage({ ...params, promptText: "Short." });
      assert.ok(["success", "truncated"].includes(ok.status));
    });
  });

  test("cache: use, refresh and off are accepted (the embedded provider is never cached)", async () => {
    await withClient(workspaceCopy(), async (client) => {
      for (const cache of ["use", "refresh", "off"]) {
        const result = await client.runStage({
          stage: "draft", genId: `c-${cache}`, templateId: "systematic-analytical", model: "m",
          promptText: "Cache me.", cache,
        });
        assert.equal(result.metadata.provider, "embedded");
        assert.equal(result.metadata.cached, undefined);
      }
    });
  });
});

test("BudgetError reads its data", () => {
  const error = rpcErrorFromObject({
    code: -32017,
    message: "Budget: the process budget is spent",
    data: { kind: "budget", scope: "process", unit: "cost_usd", cap: 0.5, spent: 0.25, reserved: 0.1, needed: 0.3 },
  }, "runStage");
  assert.ok(error instanceof BudgetError);
  assert.equal(error.name, "BudgetError");
  assert.equal(error.method, "runStage");
  assert.deepEqual([error.scope, error.unit, error.cap, error.spent, error.reserved, error.needed],
    ["process", "cost_usd", 0.5, 0.25, 0.1, 0.3]);
});

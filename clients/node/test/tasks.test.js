// runTask and client-run stages (executeStage) against the real server, in copies of
// examples/research-task.
import { test, describe, after } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";

import { Client, RequestFailed, TaskError } from "../index.js";
import { BIN, REPO, SKIP_NO_BIN, assertSchema, traffic } from "./helpers.js";

const dirs = [];
after(() => { for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true }); });

/** A fresh temporary copy of examples/research-task. */
function researchCopy() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "stagerunner-node-task-"));
  dirs.push(dir);
  const ws = path.join(dir, "research-task");
  fs.cpSync(path.join(REPO, "examples", "research-task"), ws, { recursive: true });
  return ws;
}

const GRADED = {
  name: "graded",
  stages: {
    ingestion: { template: { text: "A draft about {{ input.topic }}." } },
    validateQuality: { client: "quality" },
    integration: { write: "graded.txt" },
  },
};

/** The stages of examples/research-task/tasks/summary.task.yaml, with their handlers as logs name them. */
const SUMMARY_STAGES = [
  ["ingestion", "command python3 stages/ingest.py"],
  ["promptTemplating", "template tasks/prompts/draft.j2"],
  ["inference", "llm"],
  ["parsing", "parse json"],
  ["validateStructure", "schema tasks/schemas/summary.schema.json"],
  ["critique", "prompt tasks/prompts/critique.j2"],
  ["refine", "prompt tasks/prompts/refine.j2"],
  ["integration", "write summary.json"],
];
/** A task file with three stages a dry run finds problems in, and one it finds none in. */
const BROKEN_TASK = `name: broken
stages:
  ingestion:
    command: [no-such-program-for-stagerunner-tests]
  inference:
    llm: openai:gpt-4o-mini
  validateQuality:
    client: quality
  integration:
    write: out.txt
`;

/** Every file and folder under `root`, relative to it, but the server's own .stagerunner/. */
function tree(root) {
  return fs.readdirSync(root, { recursive: true }).map(String).filter((p) => p.split(path.sep)[0] !== ".stagerunner").sort();
}

async function withClient(options, fn) {
  const client = await Client.spawn({ executable: BIN, ...options });
  try {
    return await fn(client);
  } finally {
    await client.close();
  }
}

describe("tasks", { skip: SKIP_NO_BIN }, () => {
  test("the research example runs through runTask", async () => {
    const ws = researchCopy();
    await withClient({ workspace: ws }, async (client) => {
      assert.ok(client.capabilities.methods.includes("runTask"));
      const result = await client.runTask({
        task: "tasks/summary.task.yaml", input: { topic: "Tide pools of the Atlantic" }, runId: "node",
      });
      assertSchema(result, "runTask.result");
      assert.equal(result.ok, true);
      assert.equal(result.refinementAttempts, 1);
      assert.equal(result.context.meta.workDir, "data/tasks/research-summary/node");
      assert.deepEqual(result.context.data.ingestion.keywords, ["tide", "pools", "atlantic"]);
      const reasons = result.logs.map((e) => e.reason);
      assert.ok(reasons.includes("validation-failed-flag") && reasons.includes("already-pre-refined"));
      const summary = JSON.parse(fs.readFileSync(path.join(ws, "data/tasks/research-summary/node/summary.json"), "utf8"));
      assert.equal(summary.confidence, 0.72);
    });
  });

  test("a dry run checks the research task and runs nothing", async () => {
    const ws = researchCopy();
    await withClient({ workspace: ws }, async (client) => {
      const before = tree(ws);
      const dry = await client.runTask({ task: "tasks/summary.task.yaml", input: { topic: "Tide pools" }, runId: "dry", dryRun: true });
      assert.deepEqual(tree(ws), before, "a dry run writes nothing");
      assertSchema(dry, "runTask.result");
      assertSchema(dry, "dryRun.result");
      assert.deepEqual([dry.dryRun, dry.ok, dry.task], [true, true, "research-summary"]);
      assert.deepEqual(dry.stages.map((s) => [s.stage, s.handler]), SUMMARY_STAGES);
      assert.deepEqual(dry.stages.map((s) => s.problems), SUMMARY_STAGES.map(() => []));
      assert.ok(!("logs" in dry) && !("context" in dry), "nothing ran");
      assert.equal(traffic(client).sent.runTask, 1);
    });
    assert.equal(fs.existsSync(path.join(ws, "data", "tasks")), false);
  });

  test("a dry run finds what would stop each stage; without dryRun the task runs", async () => {
    const ws = researchCopy();
    fs.writeFileSync(path.join(ws, "tasks", "broken.task.yaml"), BROKEN_TASK);
    await withClient({ workspace: ws, env: { OPENAI_API_KEY: undefined } }, async (client) => {
      const dry = await client.runTask({ task: "tasks/broken.task.yaml", dryRun: true });
      assertSchema(dry, "runTask.result");
      assert.deepEqual([dry.dryRun, dry.ok, dry.task], [true, false, "broken"]);
      const stages = Object.fromEntries(dry.stages.map((s) => [s.stage, s]));
      assert.deepEqual(Object.keys(stages), ["ingestion", "inference", "validateQuality", "integration"]);
      assert.ok(stages.ingestion.problems.some((p) => p.includes("no-such-program-for-stagerunner-tests")), stages.ingestion.problems);
      assert.ok(stages.inference.problems.some((p) => p.includes("OPENAI_API_KEY")), stages.inference.problems);
      assert.ok(stages.validateQuality.problems.some((p) => p.includes("quality")), stages.validateQuality.problems);
      assert.deepEqual(stages.integration, { stage: "integration", handler: "write out.txt", problems: [] });
      assert.equal(fs.existsSync(path.join(ws, "data", "tasks")), false);
      const ran = await client.runTask({ task: "tasks/broken.task.yaml", runId: "real", dryRun: false });
      assert.deepEqual([ran.ok, ran.failedStage], [false, "ingestion"]);
    });
    assert.ok(fs.existsSync(path.join(ws, "data", "tasks", "broken", "real")));
  });

  test("a client stage is served by a handler given to spawn", async () => {
    const ws = researchCopy();
    const seen = [];
    const stageHandlers = {
      quality: async (stage, context) => {
        seen.push({ stage, context });
        const answer = { output: { grade: "A", words: context.output.split(" ").length }, flags: { validationFailed: false } };
        assertSchema(answer, "executeStage.result");
        return answer;
      },
    };
    await withClient({ workspace: ws, stageHandlers }, async (client) => {
      assert.deepEqual(client.stageHandlers, ["quality"]);
      const requests = [];
      client.on("request", (r) => requests.push(r));
      const result = await client.runTask({ task: GRADED, input: { topic: "kelp" }, runId: "g1" });
      assertSchema(result, "runTask.result");
      assert.equal(result.ok, true, JSON.stringify(result.error));
      assert.deepEqual(result.context.data.validateQuality, { grade: "A", words: 4 });
      assert.equal(requests.length, 1);
      assert.equal(requests[0].method, "executeStage");
      assert.equal(traffic(client).received.executeStage, 1);
      assertSchema(requests[0].params, "executeStage.params");
    });
    assert.equal(seen.length, 1);
    assert.equal(seen[0].stage, "validateQuality");
    assert.equal(seen[0].context.output, "A draft about kelp.");
    assert.equal(seen[0].context.meta.taskName, "graded");
    assert.equal(fs.readFileSync(path.join(ws, "data/tasks/graded/g1/graded.txt"), "utf8"), "A draft about kelp.");
  });

  test("handleStage before initialize declares the handler; a failing validation drives refinement", async () => {
    const ws = researchCopy();
    const client = await Client.spawn({ executable: BIN, workspace: ws, initialize: false });
    try {
      const grades = ["C", "A"];
      client.handleStage("quality", (stage, context) => {
        const grade = grades.shift();
        return { output: grade, flags: { validationFailed: grade !== "A" } };
      });
      client.handleStage("critique", async (stage, context) => ({ output: `critique ${context.refinementCount}`, flags: {} }));
      await client.initialize();
      assert.throws(() => client.handleStage("late", () => ({ output: null, flags: {} })), /registered after initialize/);
      const result = await client.runTask({
        task: { stages: {
          promptTemplating: { template: { text: "draft" } },
          validateQuality: { client: "quality" },
          critique: { client: "critique" },
        } },
      });
      assert.equal(result.ok, true);
      assert.equal(result.refinementAttempts, 1);
      assert.equal(result.context.data.critique, "critique 1");
      assert.deepEqual(result.logs.filter((e) => e.preRefinement).map((e) => e.stage), ["critique"]);
    } finally {
      await client.close();
    }
  });

  test("a handler that throws fails the task with ClientStageError", async () => {
    const ws = researchCopy();
    const stageHandlers = { quality: () => { throw new TypeError("the grader is down"); } };
    await withClient({ workspace: ws, stageHandlers }, async (client) => {
      const result = await client.runTask({ task: GRADED, input: { topic: "kelp" } });
      assertSchema(result, "runTask.result");
      assert.equal(result.ok, false);
      assert.equal(result.failedStage, "validateQuality");
      assert.equal(result.error.name, "ClientStageError");
      assert.equal(
        result.error.message,
        "the client's handler 'quality' answered executeStage with error -32803: TypeError: the grader is down",
      );
      assert.deepEqual(result.error.data, { exception: "TypeError", handler: "quality", stage: "validateQuality" });
    });
  });

  test("an RpcError thrown by a handler is sent as it is", async () => {
    const ws = researchCopy();
    const stageHandlers = {
      quality: async () => { throw new RequestFailed("quota exceeded", { retryAfter: 30 }); },
    };
    await withClient({ workspace: ws, stageHandlers }, async (client) => {
      const result = await client.runTask({ task: GRADED, input: { topic: "kelp" } });
      assert.match(result.error.message, /error -32803: quota exceeded$/);
      assert.deepEqual(result.error.data, { retryAfter: 30 });
    });
  });

  test("a handler the client did not declare fails the stage without a request", async () => {
    const ws = researchCopy();
    await withClient({ workspace: ws, stageHandlers: { other: () => ({ output: null, flags: {} }) } }, async (client) => {
      const result = await client.runTask({ task: GRADED, input: { topic: "kelp" } });
      assert.equal(result.error.name, "ClientStageError");
      assert.match(result.error.message, /did not declare.*\(it declared other\)/);
    });
  });

  test("a task that cannot be loaded rejects with TaskError", async () => {
    const ws = researchCopy();
    await withClient({ workspace: ws }, async (client) => {
      const missing = await client.runTask({ task: "tasks/missing.yaml" }).catch((e) => e);
      assert.ok(missing instanceof TaskError, String(missing));
      assert.equal(missing.code, -32015);
      assert.deepEqual(missing.data, { kind: "task", file: "tasks/missing.yaml" });
      assertSchema(missing.toJSON(), "error");
      const bad = await client.runTask({ task: { stages: { parsing: { parse: "yaml" } } } }).catch((e) => e);
      assert.ok(bad instanceof TaskError);
      assert.equal(bad.data.path, "stages.parsing.parse");
    });
  });

  test("a slow handler is aborted when its stage times out", async () => {
    const ws = researchCopy();
    let aborted;
    const wasAborted = new Promise((resolve) => { aborted = resolve; });
    const stageHandlers = {
      quality: (stage, context, { signal }) => new Promise((resolve, reject) => {
        const timer = setTimeout(() => resolve({ output: null, flags: {} }), 30000);
        signal.addEventListener("abort", () => { clearTimeout(timer); aborted(signal.reason); reject(signal.reason); });
      }),
    };
    await withClient({ workspace: ws, stageHandlers }, async (client) => {
      const result = await client.runTask({
        task: { stages: { validateQuality: { client: "quality", timeout: 0.3 } } }, maxRefinements: 0,
      });
      assert.equal(result.ok, false);
      assert.equal(result.error.name, "StageTimeoutError");
      const reason = await wasAborted;
      assert.equal(reason.code, -32800);
      assert.equal(traffic(client).received["$/cancelRequest"], 1); // the server gave up on executeStage
    });
  });
});

// Jobs against the real server, in copies of examples/research-task: runPipeline, getStatus,
// cancel, retry, resume, artifacts and status subscriptions (the same cases as the Python client's).
import { test, describe, after } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";

import {
  Client, InvalidParams, JobError, StatusSubscription, TaskError, applyPatch, computeTaskStage,
} from "../index.js";
import { BIN, REPO, SCHEMA_DIR, SKIP_NO_BIN, assertSchema, traffic, validator } from "./helpers.js";

const dirs = [];
after(() => { for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true }); });

const FLAKY_TASK = `name: flaky
stages:
  ingestion:
    command: [python3, -c, "import json, os, sys; sys.stdin.read(); os.path.exists('ok.flag') or sys.exit('no ok.flag yet'); print(json.dumps({'output': 'fixed', 'flags': {}}))"]
`;
const SLOW_TASK = `name: slow
stages:
  ingestion:
    command: [python3, -c, "import json, os, sys, time; sys.stdin.read(); os.path.exists('fast.flag') or time.sleep(30); print(json.dumps({'output': 'slept', 'flags': {}}))"]
`;
const FLAKY = {
  name: "flaky",
  tasks: [{ task: "tasks/flaky.task.yaml" }, { name: "review", task: "tasks/review.task.yaml", input: "seed" }],
};
const SLOW = { name: "slow", tasks: [{ task: "tasks/slow.task.yaml" }] };
const REVIEW_INPUT = { title: "Kelp", findings: ["a", "b"], confidence: 0.5 };
const RESEARCH = "pipelines/research.pipeline.yaml";

/** A fresh copy of examples/research-task with the flaky and slow tasks added. */
function researchCopy() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "stagerunner-node-jobs-"));
  dirs.push(dir);
  const ws = path.join(dir, "research-task");
  fs.cpSync(path.join(REPO, "examples", "research-task"), ws, { recursive: true });
  fs.writeFileSync(path.join(ws, "tasks", "flaky.task.yaml"), FLAKY_TASK);
  fs.writeFileSync(path.join(ws, "tasks", "slow.task.yaml"), SLOW_TASK);
  return ws;
}

/** A client whose statusChanged notifications are all checked against the schema. */
async function withClient(ws, fn) {
  const client = await Client.spawn({ executable: BIN, workspace: ws });
  const problems = [];
  client.on("notification", ({ method, params }) => {
    if (method !== "statusChanged") return;
    problems.push(...validator.validateFile(params, path.join(SCHEMA_DIR, "statusChanged.params.json")));
  });
  try {
    return await fn(client);
  } finally {
    await client.close();
    assert.deepEqual(problems, [], "every statusChanged matches statusChanged.params.json");
  }
}

/** The changes of `jobId` until it has finished. */
async function untilFinished(subscription, jobId) {
  const changes = [];
  for await (const change of subscription) {
    if (change.jobId !== jobId) continue;
    changes.push(change);
    if (["done", "failed", "cancelled", "interrupted"].includes(change.status.state)) return changes;
  }
  throw new Error("the subscription ended before the job finished");
}

/** The job and task events of the changes, in order. */
function transitions(changes) {
  return changes.flatMap((c) => c.events)
    .filter((e) => e.type === "job" || e.type === "task")
    .map((e) => (e.type === "job" ? `job ${e.state}` : `${e.task} ${e.state}`));
}

describe("jobs", { skip: SKIP_NO_BIN }, () => {
  test("the research pipeline end to end", async () => {
    const ws = researchCopy();
    await withClient(ws, async (client) => {
      assert.ok(client.capabilities.methods.includes("subscribeStatus"));
      const every = client.subscribeStatus({ delivery: "patch" });
      const baseline = await every.start();
      assertSchema(baseline, "subscribeStatus.result");
      assert.deepEqual(baseline.snapshot, { jobs: {} });
      const started = await client.runPipeline({ pipeline: RESEARCH, input: { topic: "Tide pools of the Atlantic" } });
      assertSchema(started, "runPipeline.result");
      const changes = await untilFinished(every, started.jobId);
      await every.close();
      assert.equal(traffic(client).sent.unsubscribeStatus, 1);
      assert.ok(traffic(client).received.statusChanged >= changes.length);
      assert.deepEqual(transitions(changes), [
        "job pending", "job running", "summary running", "summary refining", "summary done",
        "review running", "review done", "job done",
      ]);
      const status = await client.getStatus({ jobId: started.jobId });
      assertSchema(status, "getStatus.result");
      assert.deepEqual(changes.at(-1).status, status.status, "the patched document is getStatus's");
      assert.deepEqual(status.taskStages, { summary: null, review: null });
      assert.equal(status.status.progress.percent, 100);

      const review = await client.getArtifact({ jobId: started.jobId, path: "tasks/review/review.md" });
      assertSchema(review, "getArtifact.result");
      const onDisk = fs.readFileSync(path.join(ws, "jobs", started.jobId, "tasks", "review", "review.md"));
      assert.equal(review.text, onDisk.toString("utf8"));
      assert.equal(review.size, onDisk.length);
      const listed = await client.listJobs({ state: "done" });
      assertSchema(listed, "listJobs.result");
      assert.deepEqual(listed.jobs.map((j) => j.id), [started.jobId]);
      assert.deepEqual((await client.listJobs({ state: "failed" })).jobs, []);
    });
  });

  test("patch mode reproduces getStatus", async () => {
    await withClient(researchCopy(), async (client) => {
      const byPatch = client.subscribeStatus({ delivery: "patch" });
      const bySnapshot = client.subscribeStatus({});
      await Promise.all([byPatch.start(), bySnapshot.start()]);
      const { jobId } = await client.runPipeline({ pipeline: RESEARCH, input: { topic: "Kelp forests" } });
      const [patched, snapshots] = await Promise.all([untilFinished(byPatch, jobId), untilFinished(bySnapshot, jobId)]);
      await Promise.all([byPatch.close(), bySnapshot.close()]);
      const { status } = await client.getStatus({ jobId });
      assert.deepEqual(patched.at(-1).status, status);
      assert.deepEqual(snapshots.at(-1).status, status);
      assert.ok(patched.some((c) => "patch" in c.params) && !patched.some((c) => c.resynced));
      assert.ok(snapshots.every((c) => "snapshot" in c.params));
    });
  });

  test("a subscription sees the job pending, running, done in order", async () => {
    await withClient(researchCopy(), async (client) => {
      const every = client.subscribeStatus();
      await every.start();
      const { jobId } = await client.runPipeline({
        pipeline: { name: "one", tasks: [{ task: "tasks/review.task.yaml" }] }, input: REVIEW_INPUT,
      });
      const states = [];
      for (const change of await untilFinished(every, jobId)) {
        if (states.at(-1) !== change.status.state) states.push(change.status.state);
      }
      await every.close();
      assert.deepEqual(states, ["pending", "running", "done"]);
    });
  });

  test("options.wait answers with the final status", async () => {
    await withClient(researchCopy(), async (client) => {
      const result = await client.runPipeline({ pipeline: FLAKY, input: REVIEW_INPUT, name: "flaky run", options: { wait: true } });
      assertSchema(result, "runPipeline.result");
      const { status } = result;
      assert.deepEqual([status.name, status.state, status.current, status.currentStage], ["flaky run", "failed", "flaky", "ingestion"]);
      assert.equal(computeTaskStage(status, "flaky"), "ingestion");
      assert.equal(computeTaskStage(status, "review"), null);
      assert.deepEqual((await client.getStatus({ jobId: result.jobId })).taskStages, { flaky: "ingestion", review: null });
    });
  });

  test("a pipeline dry run checks every task and starts no job", async () => {
    const ws = researchCopy();
    const gaps = { name: "gaps", tasks: [{ task: "tasks/flaky.task.yaml" }, { name: "gone", task: "tasks/missing.task.yaml" }] };
    await withClient(ws, async (client) => {
      const every = client.subscribeStatus();
      await every.start();
      const dry = await client.runPipeline({ pipeline: RESEARCH, input: { topic: "Kelp" }, dryRun: true });
      const partial = await client.runPipeline({ pipeline: gaps, dryRun: true });
      assert.deepEqual((await client.listJobs()).jobs, []);
      await every.close();
      for (const result of [dry, partial]) {
        assertSchema(result, "runPipeline.result");
        assertSchema(result, "dryRun.result");
        assert.ok(!("jobId" in result));
      }
      assert.deepEqual([dry.dryRun, dry.ok, dry.pipeline], [true, true, "research"]);
      assert.deepEqual(dry.tasks.map((t) => [t.name, t.file, t.ok]), [
        ["summary", "tasks/summary.task.yaml", true], ["review", "tasks/review.task.yaml", true],
      ]);
      assert.deepEqual(dry.tasks[1].stages.map((s) => s.stage), ["promptTemplating", "inference", "integration"]);
      assert.ok(dry.tasks.every((t) => t.stages.every((s) => s.problems.length === 0)));
      assert.deepEqual([partial.ok, partial.pipeline], [false, "gaps"]);
      const [flaky, gone] = partial.tasks;
      assert.deepEqual([flaky.name, flaky.ok, flaky.stages.map((s) => s.stage)], ["flaky", true, ["ingestion"]]);
      assert.deepEqual([gone.name, gone.file, gone.ok, "stages" in gone], ["gone", "tasks/missing.task.yaml", false, false]);
      assert.match(gone.error, /tasks\/missing\.task\.yaml/);
      assert.equal(traffic(client).received.statusChanged ?? 0, 0, "no job, no status change");
    });
    assert.equal(fs.existsSync(path.join(ws, "jobs")), false);
    assert.equal(fs.existsSync(path.join(ws, "data", "tasks")), false);
  });

  test("retry after a failure", async () => {
    const ws = researchCopy();
    await withClient(ws, async (client) => {
      const failed = await client.runPipeline({ pipeline: FLAKY, input: REVIEW_INPUT, options: { wait: true } });
      const { jobId } = failed;
      assert.equal(failed.status.tasks.flaky.error.name, "CommandError");
      await assert.rejects(client.resumeJob({ jobId }), (err) => err instanceof JobError && err.reason === "invalid_state" && err.jobId === jobId);
      fs.writeFileSync(path.join(ws, "tasks", "ok.flag"), "");
      const sub = client.subscribeStatus({ jobId, delivery: "patch" }, { untilFinished: true });
      await sub.start();
      assert.deepEqual(await client.retryTask({ jobId, task: "flaky" }), { jobId });
      const changes = [];
      for await (const change of sub) changes.push(change);
      assert.equal(transitions(changes).at(-1), "job done");
      const last = changes.at(-1).status;
      assert.deepEqual([last.tasks.flaky.attempts, last.tasks.review.state], [2, "done"]);
      assert.deepEqual(last, (await client.getStatus({ jobId })).status);
      await assert.rejects(client.retryTask({ jobId, task: "nope" }), (err) => err instanceof JobError && err.reason === "not_found");
    });
  });

  test("cancel mid-stage, then resume; an AbortSignal stops a subscription", async () => {
    const ws = researchCopy();
    await withClient(ws, async (client) => {
      const controller = new AbortController();
      const every = client.subscribeStatus({}, { signal: controller.signal });
      await every.start();
      const { jobId } = await client.runPipeline({ pipeline: SLOW });
      for await (const change of every) {
        if (change.jobId === jobId && change.event.type === "stage" && change.event.state === "started") break;
      }
      const started = Date.now();
      const cancelled = await client.cancelJob({ jobId });
      assert.ok(Date.now() - started < 5000, "the command is stopped at once");
      assertSchema(cancelled, "cancelJob.result");
      assert.deepEqual([cancelled.status.state, cancelled.status.tasks.slow.state], ["cancelled", "cancelled"]);
      assert.deepEqual([cancelled.status.cancelled.task, cancelled.status.cancelled.stage], ["slow", "ingestion"]);
      await assert.rejects(client.cancelJob({ jobId }), (err) => err instanceof JobError && err.reason === "invalid_state");

      fs.writeFileSync(path.join(ws, "tasks", "fast.flag"), "");
      const sub = client.subscribeStatus({ jobId, delivery: "patch" }, { untilFinished: true, signal: controller.signal });
      await sub.start();
      assert.deepEqual(await client.resumeJob({ jobId }), { jobId });
      let last;
      for await (const change of sub) last = change;
      assert.deepEqual([last.status.state, last.status.tasks.slow.attempts], ["done", 2]);

      controller.abort();
      assert.deepEqual(await every.next(), { value: undefined, done: true }, "aborting ends the iteration");
    });
  });

  test("errors of the job methods", async () => {
    await withClient(researchCopy(), async (client) => {
      await assert.rejects(client.getStatus({ jobId: "20990101T000000Z-0000" }),
        (err) => err instanceof JobError && err.code === -32016 && err.reason === "not_found" && err.data.kind === "job");
      const { jobId } = await client.runPipeline({ pipeline: RESEARCH, input: { topic: "x" }, options: { wait: true } });
      await assert.rejects(client.getArtifact({ jobId, path: "../../stagerunner.yaml" }),
        (err) => err instanceof JobError && err.reason === "invalid_path");
      await assert.rejects(client.runPipeline({ pipeline: { tasks: [{ task: "tasks/summary.task.yaml", input: { task: "later" } }] } }),
        (err) => err instanceof TaskError && err.data.kind === "pipeline" && err.data.path === "tasks[0].input.task");
      await assert.rejects(client.listJobs({ state: "finished" }),
        (err) => err instanceof InvalidParams && err.data.field === "params.state");
      await assert.rejects(client.unsubscribeStatus({ subscriptionId: "sub-99" }), InvalidParams);
      assert.throws(() => client.subscribeStatus({ jobId, delivery: "diff" }), TypeError);
    });
  });
});

// ---- the subscription's bookkeeping, without a server

test("patches apply only on the rev held, else getStatus", async () => {
  let calls = 0;
  const current = { id: "j", rev: 9, state: "done", tasks: {} };
  const fake = { request: async (method) => { assert.equal(method, "getStatus"); calls++; return { status: current, taskStages: {} }; }, exited: false };
  const sub = new StatusSubscription(fake, { jobId: "j", delivery: "patch" });
  sub.subscriptionId = "sub-1";
  sub.documents.set("j", { id: "j", rev: 3, state: "running", tasks: {} });
  const event = { type: "job", state: "running" };
  const note = (rev, baseRev, ops) => ({
    subscriptionId: "sub-1", jobId: "j", rev, baseRev, event, coalesced: 1,
    patch: [...ops, { op: "replace", path: "/rev", value: rev }],
  });
  let change = await sub._apply(note(4, 3, [{ op: "add", path: "/current", value: "a" }]));
  assert.deepEqual(change.status, { id: "j", rev: 4, state: "running", tasks: {}, current: "a" });
  assert.equal(change.resynced, false);
  assert.equal(await sub._apply(note(4, 3, [])), null, "a revision already held is skipped");
  assert.equal(await sub._apply({ ...note(5, 4, []), subscriptionId: "sub-2" }), null, "another subscription's");
  change = await sub._apply(note(7, 6, []));
  assert.ok(change.resynced && change.status.state === "done" && calls === 1, "a gap: getStatus");
  assert.equal(await sub._apply(note(8, 7, [])), null, "getStatus is already past it");
  change = await sub._apply(note(10, 9, [{ op: "remove", path: "/missing" }]));
  assert.ok(change.resynced && calls === 2, "a patch that does not apply: getStatus");
  const snapshot = { id: "j", rev: 12, state: "failed", tasks: {} };
  change = await sub._apply({ subscriptionId: "sub-1", jobId: "j", rev: 12, event, coalesced: 3, events: [event, event, event], snapshot });
  assert.deepEqual([change.status, change.coalesced, change.events.length], [snapshot, 3, 3]);
});

test("applyPatch follows RFC 6902 and leaves the original untouched", () => {
  const base = { a: { b: 1 }, list: [1], "we/ird~": 0 };
  const patched = applyPatch(base, [
    { op: "replace", path: "/a/b", value: 2 }, { op: "add", path: "/a/c", value: null },
    { op: "remove", path: "/we~1ird~0" }, { op: "add", path: "/list/-", value: 2 },
  ]);
  assert.deepEqual(patched, { a: { b: 2, c: null }, list: [1, 2] });
  assert.deepEqual(base, { a: { b: 1 }, list: [1], "we/ird~": 0 });
});

test("computeTaskStage agrees with getStatus's taskStages in the protocol examples", () => {
  const dir = path.join(REPO, "protocol", "examples", "getStatus.result");
  for (const file of fs.readdirSync(dir).filter((f) => f.endsWith(".json"))) {
    const result = JSON.parse(fs.readFileSync(path.join(dir, file), "utf8"));
    for (const [task, stage] of Object.entries(result.taskStages)) assert.equal(computeTaskStage(result.status, task), stage, `${file} ${task}`);
  }
});

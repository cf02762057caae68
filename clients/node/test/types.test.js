// index.d.ts must list exactly the properties of the schemas it was written from.
import { test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";

import { PACKAGE_DIR, SCHEMA_DIR } from "./helpers.js";

// interface name -> [schema file, JSON pointer inside it]
const MAP = {
  InitializeParams: ["initialize.params.json", ""],
  ClientInfo: ["initialize.params.json", "/properties/clientInfo/oneOf/0"],
  ClientCapabilities: ["initialize.params.json", "/properties/capabilities/then"],
  RunTaskParams: ["runTask.params.json", ""],
  ModelConfig: ["runTask.params.json", "/properties/modelConfig/oneOf/0"],
  TaskResult: ["runTask.result.json", ""],
  TaskContext: ["runTask.result.json", "/$defs/context"],
  TaskMeta: ["runTask.result.json", "/$defs/context/properties/meta"],
  TaskModelConfig: ["runTask.result.json", "/$defs/context/properties/meta/properties/modelConfig"],
  TaskLogEntry: ["runTask.result.json", "/$defs/logEntry"],
  TaskErrorInfo: ["runTask.result.json", "/$defs/error"],
  LLMMetric: ["runTask.result.json", "/$defs/llmMetric"],
  ExecuteStageParams: ["executeStage.params.json", ""],
  StageOutput: ["executeStage.result.json", ""],
  InitializeResult: ["initialize.result.json", ""],
  ServerInfo: ["initialize.result.json", "/properties/serverInfo"],
  ServerCapabilities: ["initialize.result.json", "/properties/capabilities"],
  WorkspaceInfo: ["initialize.result.json", "/properties/workspace"],
  PingParams: ["ping.params.json", ""],
  PingResult: ["ping.result.json", ""],
  StageRunParams: ["runStage.params.json", ""],
  ProgressParams: ["progress.params.json", ""],
  StageResult: ["runStage.result.json", ""],
  StageDebug: ["runStage.result.json", "/properties/debug"],
  GenerationMetadata: ["metadata.json", ""],
  Usage: ["metadata.json", "/properties/usage"],
  RenderPromptResult: ["renderPrompt.result.json", ""],
  ListTemplatesParams: ["listTemplates.params.json", ""],
  ListTemplatesResult: ["listTemplates.result.json", ""],
  Template: ["listTemplates.result.json", "/$defs/template"],
  ValidateWorkspaceResult: ["validateWorkspace.result.json", ""],
  Diagnostic: ["validateWorkspace.result.json", "/$defs/diagnostic"],
  CancelParams: ["cancelRequest.params.json", ""],
  TestSleepParams: ["test-sleep.params.json", ""],
  TestSleepResult: ["test-sleep.result.json", ""],
  TestHeapResult: ["test-heap.result.json", ""],
  TestPrintParams: ["test-print.params.json", ""],
  ErrorData: ["error.json", "/$defs/data"],
  ErrorObject: ["error.json", ""],
  JobStatus: ["status.json", ""],
  JobTask: ["status.json", "/$defs/task"],
  JobProgress: ["status.json", "/$defs/progress"],
  TokenUsage: ["status.json", "/$defs/tokenUsage"],
  JobFiles: ["status.json", "/properties/files"],
  TaskFiles: ["status.json", "/$defs/task/properties/files"],
  JobCancelled: ["status.json", "/properties/cancelled/oneOf/0"],
  RunPipelineParams: ["runPipeline.params.json", ""],
  RunPipelineOptions: ["runPipeline.params.json", "/properties/options/oneOf/0"],
  RunPipelineResult: ["runPipeline.result.json", ""],
  JobIdParams: ["getStatus.params.json", ""],
  GetStatusResult: ["getStatus.result.json", ""],
  ListJobsParams: ["listJobs.params.json", ""],
  ListJobsResult: ["listJobs.result.json", ""],
  JobSummary: ["listJobs.result.json", "/$defs/summary"],
  CancelJobResult: ["cancelJob.result.json", ""],
  RetryTaskParams: ["retryTask.params.json", ""],
  RetryTaskResult: ["retryTask.result.json", ""],
  ResumeJobResult: ["resumeJob.result.json", ""],
  GetArtifactParams: ["getArtifact.params.json", ""],
  GetArtifactResult: ["getArtifact.result.json", ""],
  SubscribeStatusParams: ["subscribeStatus.params.json", ""],
  SubscribeStatusResult: ["subscribeStatus.result.json", ""],
  UnsubscribeStatusParams: ["unsubscribeStatus.params.json", ""],
  UnsubscribeStatusResult: ["unsubscribeStatus.result.json", ""],
  StatusChangedParams: ["statusChanged.params.json", ""],
  PatchOperation: ["statusChanged.params.json", "/$defs/operation"],
  DryRunStage: ["dryRun.result.json", "/$defs/stage"],
  TaskDryRun: ["dryRun.result.json", "/$defs/task"],
  PipelineDryRun: ["dryRun.result.json", "/$defs/pipeline"],
  PipelineDryRunTask: ["dryRun.result.json", "/$defs/pipeline/properties/tasks/items"],
};

// Results that are a run's answer, or with dryRun the dry run's: their required members are those
// of the run's branch of the schema (the JSON pointer of the subschema that lists them).
const REQUIRED_AT = {
  TaskResult: "/oneOf/0",
  RunPipelineResult: "/else",
};

// The params of cancelJob and resumeJob are getStatus's: {jobId}.
for (const file of ["cancelJob.params.json", "resumeJob.params.json"]) {
  test(`${file} is JobIdParams`, () => {
    const a = JSON.parse(fs.readFileSync(path.join(SCHEMA_DIR, file), "utf8"));
    const b = JSON.parse(fs.readFileSync(path.join(SCHEMA_DIR, "getStatus.params.json"), "utf8"));
    assert.deepEqual([a.properties, a.required], [b.properties, b.required]);
  });
}

const dts = fs.readFileSync(path.join(PACKAGE_DIR, "index.d.ts"), "utf8");

/** Members of `export interface Name { ... }`: {name, optional} for each top-level member line. */
function interfaceMembers(name) {
  const m = new RegExp(`export interface ${name}(?:<[^>]*>)?(?: extends [^{]+)? \\{\\n([\\s\\S]*?)\\n\\}`).exec(dts);
  assert.ok(m, `interface ${name} not found in index.d.ts`);
  const members = [];
  for (const line of m[1].split("\n")) {
    const mm = /^ {2}(?:readonly )?["']?([A-Za-z_$][\w$]*)["']?(\?)?:/.exec(line);
    if (mm) members.push({ name: mm[1], optional: mm[2] === "?" });
  }
  return members;
}

function schemaAt(file, pointer) {
  let node = JSON.parse(fs.readFileSync(path.join(SCHEMA_DIR, file), "utf8"));
  for (const part of pointer.split("/").slice(1)) node = node[part.replace(/~1/g, "/").replace(/~0/g, "~")];
  return node;
}

for (const [iface, [file, pointer]] of Object.entries(MAP)) {
  test(`index.d.ts ${iface} matches ${file}${pointer ? "#" + pointer : ""}`, () => {
    const schema = schemaAt(file, pointer);
    assert.ok(schema && typeof schema === "object", `${file}#${pointer} not found`);
    const members = interfaceMembers(iface);
    const props = Object.keys(schema.properties ?? {});
    assert.deepEqual(members.map((m) => m.name).sort(), [...props].sort(), `${iface} members vs schema properties`);
    const required = new Set((iface in REQUIRED_AT ? schemaAt(file, REQUIRED_AT[iface]) : schema).required ?? []);
    for (const m of members) {
      assert.equal(!m.optional, required.has(m.name), `${iface}.${m.name}: optional in .d.ts must mean not required in the schema`);
    }
  });
}

test("index.d.ts ProgressValue is the union of progress.params.json's value kinds", () => {
  const m = /export type ProgressValue =\n([\s\S]*?);\n/.exec(dts);
  assert.ok(m, "type ProgressValue not found in index.d.ts");
  const variants = m[1].split("\n").filter((l) => l.trim().startsWith("|")).map((line) => {
    const members = [...line.matchAll(/(\w+)(\?)?: [^;}]+/g)];
    const kind = /kind: "(\w+)"/.exec(line)[1];
    return { kind, required: members.filter((x) => !x[2]).map((x) => x[1]).sort() };
  });
  const schema = schemaAt("progress.params.json", "/properties/value").oneOf.map((v) => ({
    kind: v.properties.kind.const,
    required: [...v.required].sort(),
  }));
  assert.deepEqual(variants, schema);
});

test("runTask and runPipeline answer a run, or with dryRun the dry run: TaskDryRun, PipelineDryRun", () => {
  assert.deepEqual(schemaAt("runTask.result.json", "/oneOf").map((branch) => branch.$ref), [undefined, "dryRun.result.json#/$defs/task"]);
  assert.deepEqual(schemaAt("runPipeline.result.json", "/if/properties"), { dryRun: { const: true } });
  assert.deepEqual(schemaAt("runPipeline.result.json", "/then"), { $ref: "dryRun.result.json#/$defs/pipeline" });
  assert.deepEqual(schemaAt("dryRun.result.json", "/oneOf").map((branch) => branch.$ref), ["#/$defs/task", "#/$defs/pipeline"]);
  assert.match(dts, /export type DryRunResult = TaskDryRun \| PipelineDryRun;/);
  for (const iface of ["TaskDryRun", "PipelineDryRun"]) {
    assert.match(dts, new RegExp(`export interface ${iface} \\{\\n  dryRun: true;`), `${iface}.dryRun is the literal true`);
  }
  // The overloads: dryRun true answers the dry run, anything else the run.
  assert.match(dts, /runTask\(params: RunTaskParams & \{ dryRun: true \}, options\?: CallOptions\): Promise<TaskDryRun>;/);
  assert.match(dts, /runPipeline\(params: RunPipelineParams & \{ dryRun: true \}, options\?: CallOptions\): Promise<PipelineDryRun>;/);
});

test("every result schema is mapped to an interface (or is null)", () => {
  const mapped = new Set(Object.values(MAP).filter(([, p]) => p === "").map(([f]) => f));
  // dryRun.result.json is a oneOf of its two $defs: DryRunResult = TaskDryRun | PipelineDryRun.
  if (MAP.TaskDryRun && MAP.PipelineDryRun) mapped.add("dryRun.result.json");
  for (const f of fs.readdirSync(SCHEMA_DIR).filter((f) => f.endsWith(".result.json"))) {
    const schema = JSON.parse(fs.readFileSync(path.join(SCHEMA_DIR, f), "utf8"));
    if (schema.type === "null") continue; // shutdown: ShutdownResult = null
    if (f === "test-print.result.json") continue; // {}: no properties
    assert.ok(mapped.has(f), `${f} has no interface in MAP`);
  }
});

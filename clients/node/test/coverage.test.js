// Every method and notification of protocol/openrpc.json is exercised by a test against the server.
//
// COVERAGE names, for each method (the test-only ones aside), the tests that exercise it against the
// real binary, as "file: title". This file fails when a method has no entry (a new one in
// openrpc.json), when an entry names a test that does not exist or sits in a file that does not run
// the server, when the test's code never mentions the method (its name in quotes, as
// traffic(client).sent["$/cancelRequest"] does, or as a member, as client.runStage( and
// traffic(client).sent.exit do), and when the README's coverage list says something else.
// traffic() (test/helpers.js) counts what each client sent and received, for the messages the
// client sends or receives by itself.
import { test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";

import { HERE, PACKAGE_DIR, PROTOCOL } from "./helpers.js";

const MAIN = "client.test.js: ndjson: initialize, ping, listTemplates, validateWorkspace, renderPrompt, runStage, shutdown";
const E2E = "jobs.test.js: the research pipeline end to end";

export const COVERAGE = {
  initialize: [MAIN],
  initialized: [MAIN],
  shutdown: [MAIN],
  exit: ["client.test.js: STAGERUNNER_BIN is the default executable; close() reports exit status 0"],
  ping: [MAIN],
  "$/cancelRequest": [
    "client.test.js: ndjson: AbortSignal and timeout cancel test/sleep; ping still works",
    "tasks.test.js: a slow handler is aborted when its stage times out",
  ],
  "$/progress": ["progress.test.js: onProgress gets begin, one report with the whole text, end; the result is the same as without"],
  runStage: [MAIN],
  renderPrompt: [MAIN],
  listTemplates: [MAIN],
  validateWorkspace: [MAIN],
  runTask: ["tasks.test.js: the research example runs through runTask"],
  executeStage: ["tasks.test.js: a client stage is served by a handler given to spawn"],
  runPipeline: [E2E],
  getStatus: [E2E],
  listJobs: [E2E],
  cancelJob: ["jobs.test.js: cancel mid-stage, then resume; an AbortSignal stops a subscription"],
  retryTask: ["jobs.test.js: retry after a failure"],
  resumeJob: ["jobs.test.js: cancel mid-stage, then resume; an AbortSignal stops a subscription"],
  getArtifact: [E2E],
  subscribeStatus: [E2E],
  unsubscribeStatus: [E2E],
  statusChanged: [E2E],
};

function protocolMethods() {
  const document = JSON.parse(fs.readFileSync(path.join(PROTOCOL, "openrpc.json"), "utf8"));
  return document.methods.filter((m) => !m["x-testOnly"]).map((m) => m.name);
}

const escape = (text) => text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");

/** The tests of a file: {title (a RegExp: `${…}` in a template literal matches anything), code}. */
function testsOf(file) {
  const source = fs.readFileSync(path.join(HERE, file), "utf8");
  const starts = [...source.matchAll(/\b(test|describe)\(\s*(["'`])((?:\\.|(?!\2)[^\\])*)\2/g)];
  return starts.filter((m) => m[1] === "test").map((m) => {
    const next = starts.find((n) => n.index > m.index);
    const pattern = m[3].split(/\$\{[^}]*\}/).map(escape).join(".*");
    return { title: new RegExp(`^${pattern}$`), code: source.slice(m.index, next ? next.index : source.length) };
  });
}

/** The method's name in quotes, or as a member (`.runStage(`, `sent.exit`), in `code`. */
export function mentions(code, method) {
  const quoted = new RegExp(`["'\`]${escape(method)}["'\`]`).test(code);
  const member = !method.startsWith("$/") && new RegExp(`\\.${escape(method)}\\b`).test(code);
  return quoted || member;
}

test("every protocol method has an entry in COVERAGE", () => {
  assert.deepEqual(Object.keys(COVERAGE).sort(), protocolMethods().sort(), "see CONTRIBUTING.md, 'Adding a method'");
});

for (const [method, entries] of Object.entries(COVERAGE)) {
  test(`${method}: the named tests exist, run the server and exercise it`, () => {
    assert.ok(entries.length > 0);
    for (const entry of entries) {
      const at = entry.indexOf(": ");
      const [file, title] = [entry.slice(0, at), entry.slice(at + 2)];
      const source = fs.readFileSync(path.join(HERE, file), "utf8");
      assert.match(source, /SKIP_NO_BIN/, `${file} does not run the server`);
      const found = testsOf(file).filter((t) => t.title.test(title));
      assert.equal(found.length, 1, `${entry}: ${found.length} tests with that title`);
      assert.ok(mentions(found[0].code, method), `${entry} never mentions ${method}`);
    }
  });
}

test("the check catches a test that does not mention its method", () => {
  assert.ok(mentions("traffic(client).sent.exit", "exit") && mentions("await client.runStage({", "runStage"));
  assert.ok(!mentions("client.initializeResult", "initialize") && !mentions("info.exitCode", "exit"));
  assert.ok(mentions('received["$/progress"]', "$/progress") && !mentions("{ onProgress }", "$/progress"));
});

test("the README lists the coverage", () => {
  const readme = fs.readFileSync(path.join(PACKAGE_DIR, "README.md"), "utf8");
  const section = readme.slice(readme.indexOf("## Tests"));
  const listed = {};
  for (const [, method, tests] of section.matchAll(/^\| `([^`]+)` \| (.+) \|$/gm)) {
    listed[method] = tests.split("<br>").map((t) => t.trim().replace(/^`([^`]+)`: /, "$1: "));
  }
  assert.deepEqual(listed, COVERAGE);
});

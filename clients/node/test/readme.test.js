// Runs the README's quick start against the real binary.
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { promisify } from "node:util";

import { BIN, REPO, SKIP_NO_BIN, PACKAGE_DIR, workspaceCopy, cleanupWorkspaces } from "./helpers.js";

test("README quick start runs", { skip: SKIP_NO_BIN }, async (t) => {
  t.after(cleanupWorkspaces);
  const readme = fs.readFileSync(path.join(PACKAGE_DIR, "README.md"), "utf8");
  const block = /## Quick start\s+```js\n([\s\S]*?)```/.exec(readme);
  assert.ok(block, "no js block under ## Quick start");
  const code = block[1];
  assert.ok(code.trim().split("\n").length <= 10, "the quick start is ten lines");
  const ws = workspaceCopy();
  const dir = path.dirname(ws);
  // The package is imported by name: point a node_modules entry at it.
  fs.mkdirSync(path.join(dir, "node_modules"), { recursive: true });
  fs.symlinkSync(PACKAGE_DIR, path.join(dir, "node_modules", "stagerunner-client"), "dir");
  fs.mkdirSync(path.join(dir, "examples"));
  fs.renameSync(ws, path.join(dir, "examples", "daydream"));
  const script = path.join(dir, "quickstart.mjs");
  fs.writeFileSync(script, code);
  const { stdout } = await promisify(execFile)(process.execPath, [script], {
    cwd: dir,
    env: { ...process.env, STAGERUNNER_BIN: BIN },
    timeout: 30000,
  });
  assert.match(stdout, /\{ echo: 'héllo' \}/);
  assert.match(stdout, /creative-synthesis/);
  assert.match(stdout, /success \[/);
  assert.match(stdout, /data\/1_raw\/templates\/draft\/systematic-analytical\.txt \d+/);
  assert.ok(fs.existsSync(path.join(dir, "examples/daydream/data/gens/draft/d-creative/metadata.json")));
});

test("README task example runs", { skip: SKIP_NO_BIN }, async () => {
  const readme = fs.readFileSync(path.join(PACKAGE_DIR, "README.md"), "utf8");
  const block = /### Tasks and stage handlers[\s\S]*?```js\n([\s\S]*?)```/.exec(readme);
  assert.ok(block, "no js block under ### Tasks and stage handlers");
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "stagerunner-node-readme-"));
  try {
    fs.mkdirSync(path.join(dir, "node_modules"));
    fs.symlinkSync(PACKAGE_DIR, path.join(dir, "node_modules", "stagerunner-client"), "dir");
    fs.cpSync(path.join(REPO, "examples", "research-task"), path.join(dir, "examples", "research-task"), { recursive: true });
    const script = path.join(dir, "tasks.mjs");
    fs.writeFileSync(script, block[1]);
    const { stdout } = await promisify(execFile)(process.execPath, [script], {
      cwd: dir,
      env: { ...process.env, STAGERUNNER_BIN: BIN },
      timeout: 30000,
    });
    assert.equal(stdout, "true 1\n{ words: 2 }\n");
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test("README jobs example runs", { skip: SKIP_NO_BIN }, async () => {
  const readme = fs.readFileSync(path.join(PACKAGE_DIR, "README.md"), "utf8");
  const block = /### Jobs[\s\S]*?```js\n([\s\S]*?)```/.exec(readme);
  assert.ok(block, "no js block under ### Jobs");
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "stagerunner-node-readme-"));
  try {
    fs.mkdirSync(path.join(dir, "node_modules"));
    fs.symlinkSync(PACKAGE_DIR, path.join(dir, "node_modules", "stagerunner-client"), "dir");
    fs.cpSync(path.join(REPO, "examples", "research-task"), path.join(dir, "examples", "research-task"), { recursive: true });
    const script = path.join(dir, "jobs.mjs");
    fs.writeFileSync(script, block[1]);
    const { stdout } = await promisify(execFile)(process.execPath, [script], {
      cwd: dir,
      env: { ...process.env, STAGERUNNER_BIN: BIN },
      timeout: 30000,
    });
    assert.equal(stdout, "done true\n");
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test("README progress example runs", { skip: SKIP_NO_BIN }, async () => {
  const readme = fs.readFileSync(path.join(PACKAGE_DIR, "README.md"), "utf8");
  const block = /### Progress of a stage run[\s\S]*?```js\n([\s\S]*?)```/.exec(readme);
  assert.ok(block, "no js block under ### Progress of a stage run");
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "stagerunner-node-readme-"));
  try {
    fs.mkdirSync(path.join(dir, "node_modules"));
    fs.symlinkSync(PACKAGE_DIR, path.join(dir, "node_modules", "stagerunner-client"), "dir");
    fs.cpSync(path.join(REPO, "examples", "daydream"), path.join(dir, "examples", "daydream"), { recursive: true });
    const script = path.join(dir, "progress.mjs");
    fs.writeFileSync(script, block[1]);
    const { stdout } = await promisify(execFile)(process.execPath, [script], {
      cwd: dir,
      env: { ...process.env, STAGERUNNER_BIN: BIN },
      timeout: 30000,
    });
    const raw = fs.readFileSync(path.join(dir, "examples/daydream/data/gens/draft/d-creative/raw.txt"), "utf8");
    assert.equal(stdout, `${raw}true\n`);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

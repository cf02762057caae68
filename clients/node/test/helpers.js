import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import assert from "node:assert/strict";

import { SchemaValidator } from "./schema-validator.js";

export const HERE = path.dirname(fileURLToPath(import.meta.url));
export const PACKAGE_DIR = path.resolve(HERE, "..");
export const REPO = path.resolve(PACKAGE_DIR, "..", "..");
export const PROTOCOL = path.join(REPO, "protocol");
export const SCHEMA_DIR = path.join(PROTOCOL, "schema");
export const BIN = process.env.STAGERUNNER_BIN || path.join(REPO, ".build", "debug", "stagerunner");
export const HAVE_BIN = fs.existsSync(BIN);
export const SKIP_NO_BIN = HAVE_BIN ? false : `server binary not found at ${BIN}`;

const tempDirs = [];

/** A fresh temporary copy of examples/daydream. */
export function workspaceCopy() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "stagerunner-node-"));
  const ws = path.join(dir, "daydream");
  fs.cpSync(path.join(REPO, "examples", "daydream"), ws, { recursive: true });
  tempDirs.push(dir);
  return ws;
}

export function cleanupWorkspaces() {
  for (const d of tempDirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
}

export const validator = new SchemaValidator();

/** Assert that `value` validates against protocol/schema/<name>.json. */
export function assertSchema(value, name) {
  const errors = validator.validateFile(value, path.join(SCHEMA_DIR, `${name}.json`));
  assert.deepEqual(errors, [], `${name}: ${JSON.stringify(value).slice(0, 400)}`);
}

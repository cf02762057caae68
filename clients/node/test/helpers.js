import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import assert from "node:assert/strict";

import { Client } from "../index.js";
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

// Every client of the tests counts the methods it sends and receives, so that a test can show
// that a message went over the wire (test/coverage.test.js holds each protocol method to a test).
const originalWrite = Client.prototype._write;
const originalDispatch = Client.prototype._dispatch;
Client.prototype._write = function write(message) {
  if (typeof message?.method === "string") count(this, "sent", message.method);
  return originalWrite.call(this, message);
};
Client.prototype._dispatch = function dispatch(message) {
  if (typeof message?.method === "string") count(this, "received", message.method);
  return originalDispatch.call(this, message);
};

function count(client, direction, method) {
  client._traffic ??= { sent: {}, received: {} };
  client._traffic[direction][method] = (client._traffic[direction][method] ?? 0) + 1;
}

/** The methods `client` has sent and received: {sent: {method: count}, received: {method: count}}. */
export function traffic(client) {
  return client._traffic ?? { sent: {}, received: {} };
}

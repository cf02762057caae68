// The test-folder validator must agree with protocol/examples (valid) and
// protocol/examples-invalid (invalid), or its verdicts on server results mean nothing.
import { test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";

import { PROTOCOL, SCHEMA_DIR } from "./helpers.js";
import { SchemaValidator } from "./schema-validator.js";

const validator = new SchemaValidator();
const schemas = fs.readdirSync(SCHEMA_DIR).filter((f) => f.endsWith(".json")).map((f) => f.slice(0, -5)).sort();
const resultSchemas = schemas.filter((s) => s.endsWith(".result"));

function examples(kind, schema) {
  const dir = path.join(PROTOCOL, kind, schema);
  if (!fs.existsSync(dir)) return [];
  return fs.readdirSync(dir).filter((f) => f.endsWith(".json")).sort().map((f) => ({
    name: f,
    value: JSON.parse(fs.readFileSync(path.join(dir, f), "utf8")),
  }));
}

test("every result schema has valid and invalid examples", () => {
  assert.ok(resultSchemas.length >= 7, resultSchemas.join(","));
  for (const s of resultSchemas) {
    assert.ok(examples("examples", s).length > 0, `no examples for ${s}`);
    assert.ok(examples("examples-invalid", s).length > 0, `no invalid examples for ${s}`);
  }
});

// Result schemas are required; the other schemas are checked too, since the validator is
// meant to cover every keyword protocol/schema uses.
for (const schema of schemas) {
  const file = path.join(SCHEMA_DIR, `${schema}.json`);
  test(`validator: examples/${schema} pass, examples-invalid/${schema} fail`, () => {
    for (const { name, value } of examples("examples", schema)) {
      assert.deepEqual(validator.validateFile(value, file), [], `${schema}/${name} should be valid`);
    }
    for (const { name, value } of examples("examples-invalid", schema)) {
      assert.notDeepEqual(validator.validateFile(value, file), [], `${schema}/${name} should be invalid`);
    }
  });
}

test("validator: keywords behave on small cases", () => {
  const dir = fs.mkdtempSync(path.join(process.env.TMPDIR || "/tmp", "sv-"));
  try {
    fs.writeFileSync(path.join(dir, "other.json"), JSON.stringify({ $defs: { n: { type: "integer", minimum: 0 } } }));
    const main = path.join(dir, "main.json");
    fs.writeFileSync(main, JSON.stringify({
      type: "object",
      required: ["a"],
      properties: {
        a: { $ref: "other.json#/$defs/n" },
        b: { oneOf: [{ type: "string", pattern: "^x" }, { type: "null" }] },
        c: { type: "array", items: { enum: [1, 2] }, uniqueItems: true, contains: { const: 2 } },
      },
      additionalProperties: false,
      if: { required: ["b"] }, then: { required: ["c"] },
    }));
    const v = new SchemaValidator();
    assert.deepEqual(v.validateFile({ a: 1 }, main), []);
    assert.deepEqual(v.validateFile({ a: 1, b: "xy", c: [1, 2] }, main), []);
    assert.notDeepEqual(v.validateFile({ a: -1 }, main), []);
    assert.notDeepEqual(v.validateFile({ a: 1.5 }, main), []);
    assert.notDeepEqual(v.validateFile({}, main), []);
    assert.notDeepEqual(v.validateFile({ a: 1, z: 0 }, main), []);
    assert.notDeepEqual(v.validateFile({ a: 1, b: "y", c: [2] }, main), []);
    assert.notDeepEqual(v.validateFile({ a: 1, b: null }, main), []); // if/then: c required
    assert.notDeepEqual(v.validateFile({ a: 1, b: null, c: [2, 2] }, main), []);
    assert.notDeepEqual(v.validateFile({ a: 1, b: null, c: [1] }, main), []);
    fs.writeFileSync(main, JSON.stringify({
      type: "object",
      propertyNames: { enum: ["s", "n"] },
      properties: { s: { type: "string", maxLength: 3, not: { enum: [".."] } }, n: { exclusiveMinimum: 0 } },
    }));
    const w = new SchemaValidator();
    assert.deepEqual(w.validateFile({ s: "abc", n: 0.5 }, main), []);
    assert.notDeepEqual(w.validateFile({ s: "abcd" }, main), []);
    assert.notDeepEqual(w.validateFile({ s: ".." }, main), []);
    assert.notDeepEqual(w.validateFile({ n: 0 }, main), []);
    assert.notDeepEqual(w.validateFile({ x: 1 }, main), []);
    fs.writeFileSync(main, JSON.stringify({ type: "object", dependentRequired: { a: ["b"] } }));
    assert.throws(() => new SchemaValidator().validateFile({}, main), /unsupported keyword dependentRequired/);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

// A small JSON Schema (draft 2020-12 subset) validator for the protocol schemas, written because
// no validator package can be installed. It supports exactly the keywords protocol/schema uses:
//   type, required, properties, additionalProperties, enum, const, items, contains, uniqueItems,
//   minItems, maxItems, minLength, minimum, maximum, pattern, $ref (same file and relative files),
//   oneOf, anyOf, allOf, if/then/else.
// Annotations (title, description, $schema, $id, $defs, examples, default, $comment) and
// `format` are ignored. Any other keyword throws, so an unsupported schema cannot pass silently.

import fs from "node:fs";
import path from "node:path";

const ANNOTATIONS = new Set([
  "title", "description", "$schema", "$id", "$defs", "definitions", "examples", "default",
  "$comment", "format", "deprecated", "readOnly", "writeOnly",
]);
const SUPPORTED = new Set([
  "type", "required", "properties", "additionalProperties", "enum", "const", "items", "contains",
  "uniqueItems", "minItems", "maxItems", "minLength", "maxLength", "minimum", "maximum", "exclusiveMinimum", "pattern",
  "$ref", "oneOf", "anyOf", "allOf", "not", "if", "then", "else", "propertyNames",
]);

function typeOf(v) {
  if (v === null) return "null";
  if (Array.isArray(v)) return "array";
  return typeof v; // "object" | "string" | "number" | "boolean"
}

function hasType(v, t) {
  const actual = typeOf(v);
  if (t === "integer") return actual === "number" && Number.isInteger(v);
  return actual === t;
}

export function deepEqual(a, b) {
  if (a === b) return true;
  const ta = typeOf(a);
  if (ta !== typeOf(b)) return false;
  if (ta === "array") return a.length === b.length && a.every((x, i) => deepEqual(x, b[i]));
  if (ta === "object") {
    const ka = Object.keys(a);
    const kb = Object.keys(b);
    return ka.length === kb.length && ka.every((k) => Object.hasOwn(b, k) && deepEqual(a[k], b[k]));
  }
  return false;
}

function unescapePointer(s) {
  return decodeURIComponent(s).replace(/~1/g, "/").replace(/~0/g, "~");
}

export class SchemaValidator {
  constructor() {
    this.files = new Map();
  }

  load(file) {
    const abs = path.resolve(file);
    if (!this.files.has(abs)) this.files.set(abs, JSON.parse(fs.readFileSync(abs, "utf8")));
    return this.files.get(abs);
  }

  /** Validate `value` against the schema file; returns a list of error strings (empty: valid). */
  validateFile(value, file) {
    const abs = path.resolve(file);
    const errors = [];
    this._validate(value, this.load(abs), abs, "$", errors);
    return errors;
  }

  _resolve(ref, base) {
    const hash = ref.indexOf("#");
    const filePart = hash < 0 ? ref : ref.slice(0, hash);
    const pointer = hash < 0 ? "" : ref.slice(hash + 1);
    if (/^[a-z]+:/i.test(filePart)) throw new Error(`absolute $ref not supported: ${ref}`);
    const file = filePart ? path.resolve(path.dirname(base), filePart) : base;
    let node = this.load(file);
    if (pointer) {
      if (!pointer.startsWith("/")) throw new Error(`anchor $ref not supported: ${ref}`);
      for (const part of pointer.slice(1).split("/").map(unescapePointer)) {
        if (node === null || typeof node !== "object" || !(part in node)) {
          throw new Error(`unresolvable $ref ${ref} from ${base}`);
        }
        node = node[part];
      }
    }
    return { schema: node, file };
  }

  _validate(v, schema, file, at, errors) {
    if (schema === true) return;
    if (schema === false) { errors.push(`${at}: no value is allowed here`); return; }
    for (const k of Object.keys(schema)) {
      if (!SUPPORTED.has(k) && !ANNOTATIONS.has(k)) throw new Error(`unsupported keyword ${k} at ${file}`);
    }
    const err = (msg) => errors.push(`${at}: ${msg}`);

    if ("$ref" in schema) {
      const { schema: target, file: tfile } = this._resolve(schema.$ref, file);
      this._validate(v, target, tfile, at, errors);
    }
    if ("type" in schema) {
      const types = Array.isArray(schema.type) ? schema.type : [schema.type];
      if (!types.some((t) => hasType(v, t))) err(`must be of type ${types.join("|")}, not ${typeOf(v)}`);
    }
    if ("enum" in schema && !schema.enum.some((e) => deepEqual(e, v))) {
      err(`must be one of ${JSON.stringify(schema.enum)}`);
    }
    if ("const" in schema && !deepEqual(schema.const, v)) err(`must equal ${JSON.stringify(schema.const)}`);

    if (typeOf(v) === "number") {
      if ("minimum" in schema && v < schema.minimum) err(`must be >= ${schema.minimum}`);
      if ("maximum" in schema && v > schema.maximum) err(`must be <= ${schema.maximum}`);
      if ("exclusiveMinimum" in schema && v <= schema.exclusiveMinimum) err(`must be > ${schema.exclusiveMinimum}`);
    }
    if (typeof v === "string") {
      if ("minLength" in schema && [...v].length < schema.minLength) err(`must have at least ${schema.minLength} characters`);
      if ("maxLength" in schema && [...v].length > schema.maxLength) err(`must have at most ${schema.maxLength} characters`);
      if ("pattern" in schema && !new RegExp(schema.pattern, "u").test(v)) err(`must match ${schema.pattern}`);
    }
    if (Array.isArray(v)) {
      if ("minItems" in schema && v.length < schema.minItems) err(`must have at least ${schema.minItems} items`);
      if ("maxItems" in schema && v.length > schema.maxItems) err(`must have at most ${schema.maxItems} items`);
      if ("items" in schema) v.forEach((x, i) => this._validate(x, schema.items, file, `${at}[${i}]`, errors));
      if (schema.uniqueItems === true) {
        for (let i = 0; i < v.length; i++) {
          for (let j = i + 1; j < v.length; j++) if (deepEqual(v[i], v[j])) err(`items ${i} and ${j} are equal`);
        }
      }
      if ("contains" in schema && !v.some((x) => this._ok(x, schema.contains, file))) {
        err(`must contain an item matching ${JSON.stringify(schema.contains)}`);
      }
    }
    if (typeOf(v) === "object") {
      for (const r of schema.required ?? []) if (!Object.hasOwn(v, r)) err(`missing required member ${r}`);
      const props = schema.properties ?? {};
      for (const [k, sub] of Object.entries(props)) {
        if (Object.hasOwn(v, k)) this._validate(v[k], sub, file, `${at}.${k}`, errors);
      }
      if ("propertyNames" in schema) {
        for (const k of Object.keys(v)) this._validate(k, schema.propertyNames, file, `${at} (name ${k})`, errors);
      }
      if ("additionalProperties" in schema) {
        for (const k of Object.keys(v)) {
          if (Object.hasOwn(props, k)) continue;
          this._validate(v[k], schema.additionalProperties, file, `${at}.${k}`, errors);
        }
      }
    }
    if ("allOf" in schema) for (const s of schema.allOf) this._validate(v, s, file, at, errors);
    if ("not" in schema && this._ok(v, schema.not, file)) err(`must not match ${JSON.stringify(schema.not).slice(0, 120)}`);
    if ("anyOf" in schema && !schema.anyOf.some((s) => this._ok(v, s, file))) err("matches none of anyOf");
    if ("oneOf" in schema) {
      const n = schema.oneOf.filter((s) => this._ok(v, s, file)).length;
      if (n !== 1) err(`must match exactly one of oneOf, matches ${n}`);
    }
    if ("if" in schema) {
      const branch = this._ok(v, schema.if, file) ? schema.then : schema.else;
      if (branch !== undefined) this._validate(v, branch, file, at, errors);
    }
  }

  _ok(v, schema, file) {
    const errors = [];
    this._validate(v, schema, file, "$", errors);
    return errors.length === 0;
  }
}

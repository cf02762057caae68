// Byte-level framing for JSON-RPC over stdio: NDJSON and LSP (Content-Length).
// Frames are split on Buffers; UTF-8 is decoded only once a frame is complete, so a
// multibyte character split across chunks survives.

import { ProtocolError } from "./errors.js";

const LF = 0x0a;
const CR = 0x0d;
const DEFAULT_MAX = 256 * 1024 * 1024;
const MAX_HEADER = 8192;

function decodeUtf8(buf) {
  // A fresh fatal decoder per frame: no state carried between frames.
  return new TextDecoder("utf-8", { fatal: true, ignoreBOM: true }).decode(buf);
}

function isBlank(buf) {
  for (const b of buf) if (b !== 0x20 && b !== 0x09 && b !== CR && b !== LF) return false;
  return true;
}

/**
 * NDJSON framer. push(chunk) calls onMessage(text) for every complete line and onError(err)
 * for lines that are not UTF-8 or are too long.
 */
export class NdjsonFramer {
  constructor({ onMessage, onError = () => {}, maxMessageSize = DEFAULT_MAX } = {}) {
    this.onMessage = onMessage;
    this.onError = onError;
    this.maxMessageSize = maxMessageSize;
    this.parts = [];
    this.size = 0;
    this.skipping = false; // discarding an over-size line until its LF
  }

  push(chunk) {
    let start = 0;
    for (;;) {
      const nl = chunk.indexOf(LF, start);
      if (nl === -1) {
        if (start < chunk.length && !this.skipping) {
          this.parts.push(chunk.subarray(start));
          this.size += chunk.length - start;
          if (this.size > this.maxMessageSize) {
            this.onError(new ProtocolError(`NDJSON line longer than ${this.maxMessageSize} bytes; skipped`));
            this.parts = [];
            this.size = 0;
            this.skipping = true;
          }
        }
        return;
      }
      const piece = chunk.subarray(start, nl);
      start = nl + 1;
      if (this.skipping) {
        this.skipping = false;
        continue;
      }
      let line = this.parts.length ? Buffer.concat([...this.parts, piece]) : piece;
      this.parts = [];
      this.size = 0;
      if (line.length > this.maxMessageSize) {
        this.onError(new ProtocolError(`NDJSON line longer than ${this.maxMessageSize} bytes; skipped`));
        continue;
      }
      if (line.length && line[line.length - 1] === CR) line = line.subarray(0, line.length - 1);
      if (isBlank(line)) continue;
      this._emit(line);
    }
  }

  /** End of input: a last line without LF is still a message. */
  end() {
    if (this.parts.length && !this.skipping) {
      const line = Buffer.concat(this.parts);
      this.parts = [];
      this.size = 0;
      if (!isBlank(line)) this._emit(line);
    }
  }

  _emit(buf) {
    let text;
    try {
      text = decodeUtf8(buf);
    } catch (e) {
      this.onError(new ProtocolError("frame is not valid UTF-8", { cause: e }));
      return;
    }
    this.onMessage(text);
  }
}

/**
 * LSP base-protocol framer: `Content-Length: N\r\n\r\n` + N bytes. Header names are matched
 * case-insensitively, other headers ignored, bare LF accepted, whitespace between frames skipped.
 */
export class LspFramer {
  constructor({ onMessage, onError = () => {}, maxMessageSize = DEFAULT_MAX } = {}) {
    this.onMessage = onMessage;
    this.onError = onError;
    this.maxMessageSize = maxMessageSize;
    this.parts = [];
    this.size = 0;
    this.bodyLength = -1; // -1: reading headers
    this.dropBody = false;
  }

  _take(n) {
    const all = this.parts.length === 1 ? this.parts[0] : Buffer.concat(this.parts);
    const head = all.subarray(0, n);
    const rest = all.subarray(n);
    this.parts = rest.length ? [rest] : [];
    this.size = rest.length;
    return head;
  }

  _flat() {
    if (this.parts.length > 1) this.parts = [Buffer.concat(this.parts)];
    return this.parts[0] || Buffer.alloc(0);
  }

  push(chunk) {
    if (chunk.length) {
      this.parts.push(chunk);
      this.size += chunk.length;
    }
    for (;;) {
      if (this.bodyLength < 0) {
        if (!this._readHeaders()) return;
      }
      if (this.bodyLength >= 0) {
        if (this.size < this.bodyLength) return;
        const body = this._take(this.bodyLength);
        this.bodyLength = -1;
        if (this.dropBody) {
          this.dropBody = false;
          continue;
        }
        let text;
        try {
          text = decodeUtf8(body);
        } catch (e) {
          this.onError(new ProtocolError("frame body is not valid UTF-8", { cause: e }));
          continue;
        }
        this.onMessage(text);
      }
    }
  }

  // Returns true when a header block was consumed (bodyLength set or a bad block skipped).
  _readHeaders() {
    let buf = this._flat();
    // Skip whitespace between frames.
    let i = 0;
    while (i < buf.length && (buf[i] === 0x20 || buf[i] === 0x09 || buf[i] === CR || buf[i] === LF)) i++;
    if (i > 0) {
      this._take(i);
      buf = this._flat();
    }
    if (!buf.length) return false;
    // Find the empty line that ends the header block.
    let pos = 0;
    const lines = [];
    for (;;) {
      const nl = buf.indexOf(LF, pos);
      if (nl === -1) {
        if (buf.length > MAX_HEADER) {
          this.onError(new ProtocolError(`LSP header block longer than ${MAX_HEADER} bytes`));
          this._take(buf.length);
        }
        return false;
      }
      let line = buf.subarray(pos, nl);
      if (line.length && line[line.length - 1] === CR) line = line.subarray(0, line.length - 1);
      pos = nl + 1;
      if (line.length === 0) break;
      lines.push(line.toString("latin1"));
    }
    this._take(pos);
    let length = null;
    for (const line of lines) {
      const colon = line.indexOf(":");
      if (colon < 0) {
        this.onError(new ProtocolError(`bad LSP header line: ${JSON.stringify(line)}`));
        return true;
      }
      if (line.slice(0, colon).trim().toLowerCase() === "content-length") {
        const v = line.slice(colon + 1).trim();
        if (!/^[0-9]+$/.test(v)) {
          this.onError(new ProtocolError(`bad Content-Length: ${JSON.stringify(v)}`));
          return true;
        }
        length = Number(v);
      }
    }
    if (length === null) {
      this.onError(new ProtocolError("LSP header block without Content-Length"));
      return true;
    }
    if (length > this.maxMessageSize) {
      this.onError(new ProtocolError(`LSP body of ${length} bytes is over the limit`));
      this.dropBody = true; // consume the body so the stream stays in sync, but do not deliver it
    }
    this.bodyLength = length;
    return true;
  }

  end() {
    if (this.bodyLength >= 0 || (this.size && !isBlank(this._flat()))) {
      this.onError(new ProtocolError("input ended inside an LSP frame"));
    }
    this.parts = [];
    this.size = 0;
    this.bodyLength = -1;
  }
}

export function createFramer(framing, options) {
  if (framing === "ndjson") return new NdjsonFramer(options);
  if (framing === "lsp") return new LspFramer(options);
  throw new TypeError(`unknown framing ${JSON.stringify(framing)}; use "ndjson" or "lsp"`);
}

/** Encode one message (or batch) as the bytes of one frame. */
export function encodeMessage(message, framing) {
  const json = JSON.stringify(message);
  if (framing === "ndjson") return Buffer.from(json + "\n", "utf8");
  if (framing === "lsp") {
    const body = Buffer.from(json, "utf8");
    return Buffer.concat([Buffer.from(`Content-Length: ${body.length}\r\n\r\n`, "ascii"), body]);
  }
  throw new TypeError(`unknown framing ${JSON.stringify(framing)}`);
}

// Jobs: status subscriptions that keep each job's document up to date, JSON Patch, computeTaskStage
// (protocol/README.md section 8.10).

/** Job states in which a job does nothing until retryTask or resumeJob starts it again. */
export const TERMINAL_JOB_STATES = Object.freeze(["done", "failed", "cancelled", "interrupted"]);

/** A JSON Patch operation does not apply to the document. */
export class PatchError extends Error {
  constructor(message) {
    super(message);
    this.name = "PatchError";
  }
}

const clone = (value) => (value === undefined ? undefined : structuredClone(value));

/**
 * `document` with the RFC 6902 `operations` applied (a new value; `document` is untouched):
 * add, replace and remove of object members, and add to arrays by index or "-".
 * Throws PatchError when an operation does not apply.
 */
export function applyPatch(document, operations) {
  let result = clone(document);
  for (const operation of operations) {
    const { op, path } = operation ?? {};
    if (typeof path !== "string" || (path !== "" && !path.startsWith("/"))) throw new PatchError(`bad path ${path}`);
    const names = path === "" ? [] : path.split("/").slice(1).map((p) => p.replace(/~1/g, "/").replace(/~0/g, "~"));
    const hasValue = Object.hasOwn(operation, "value");
    if (names.length === 0) {
      if ((op !== "add" && op !== "replace") || !hasValue) throw new PatchError(`${op} of the whole document`);
      result = clone(operation.value);
      continue;
    }
    let parent = result;
    for (const name of names.slice(0, -1)) {
      parent = Array.isArray(parent) ? parent[Number(name)] : parent?.[name];
      if (parent === null || typeof parent !== "object") throw new PatchError(`no parent for ${path}`);
    }
    const last = names[names.length - 1];
    if (parent !== null && typeof parent === "object" && !Array.isArray(parent)) {
      if ((op === "remove" || op === "replace") && !Object.hasOwn(parent, last)) {
        throw new PatchError(`${op} of ${path}: no such member`);
      }
      if (op === "remove") delete parent[last];
      else if ((op === "add" || op === "replace") && hasValue) parent[last] = clone(operation.value);
      else throw new PatchError(`unsupported operation ${JSON.stringify(operation)}`);
    } else if (Array.isArray(parent) && op === "add" && hasValue) {
      parent.splice(last === "-" ? parent.length : Number(last), 0, clone(operation.value));
    } else {
      throw new PatchError(`unsupported operation ${JSON.stringify(operation)} at ${path}`);
    }
  }
  return result;
}

/**
 * computeTaskStage, the stage to show for a task: the task's currentStage, else the job's
 * currentStage when the task is the current one, else the task's failedStage, else the stage of
 * its error; null otherwise. The same as getStatus's taskStages.
 */
export function computeTaskStage(status, task) {
  const entry = status?.tasks?.[task];
  if (!entry || typeof entry !== "object") return null;
  if (typeof entry.currentStage === "string") return entry.currentStage;
  if (status.current === task && typeof status.currentStage === "string") return status.currentStage;
  if (typeof entry.failedStage === "string") return entry.failedStage;
  if (typeof entry.error?.stage === "string") return entry.error.stage;
  return null;
}

/**
 * A subscribeStatus subscription: `for await (const change of subscription)`. Each change is
 * {jobId, rev, event, events, coalesced, status, resynced, params}, with `status` the job's whole
 * document already up to date: a snapshot replaces it, a patch is applied when its baseRev is the
 * rev held, and otherwise the document is fetched again with getStatus (`resynced: true`).
 * Notifications for revisions already held are skipped. Iteration ends when the server exits,
 * on close() or `signal`, or (untilFinished, with a jobId) once that job has finished.
 */
export class StatusSubscription {
  constructor(client, params = {}, options = {}) {
    const delivery = params.delivery ?? "snapshot";
    if (delivery !== "snapshot" && delivery !== "patch") {
      throw new TypeError(`delivery must be "snapshot" or "patch", not ${JSON.stringify(delivery)}`);
    }
    if (options.untilFinished && params.jobId == null) throw new TypeError("untilFinished needs a jobId");
    this.client = client;
    this.jobId = params.jobId ?? undefined;
    this.delivery = delivery;
    this.untilFinished = Boolean(options.untilFinished);
    this.signal = options.signal;
    this.timeout = options.timeout;
    this.subscriptionId = undefined;
    this.baselineRev = undefined;
    /** Each followed job's document, by job id. */
    this.documents = new Map();
    this._notes = null;
    this._starting = null;
    this._done = false;
    this._onAbort = () => { this.close().catch(() => {}); };
  }

  /** Send subscribeStatus (once) and take its baseline; resolves with the subscribeStatus result. */
  start() {
    if (!this._starting) {
      this._starting = (async () => {
        // Listen first: a statusChanged may arrive before the answer that names the subscription.
        this._notes = this.client.notifications("statusChanged");
        this.signal?.addEventListener("abort", this._onAbort, { once: true });
        const params = { delivery: this.delivery };
        if (this.jobId !== undefined) params.jobId = this.jobId;
        let result;
        try {
          result = await this.client.request("subscribeStatus", params, { timeout: this.timeout });
        } catch (err) {
          this._finish();
          throw err;
        }
        this.subscriptionId = result.subscriptionId;
        this.baselineRev = result.rev;
        if (this.jobId !== undefined) this.documents.set(this.jobId, result.snapshot);
        else for (const [id, doc] of Object.entries(result.snapshot.jobs ?? {})) this.documents.set(id, doc);
        if (this._done) await this._unsubscribe(); // closed while starting
        return result;
      })();
    }
    return this._starting;
  }

  _finish() {
    this._done = true;
    this.signal?.removeEventListener("abort", this._onAbort);
    this._notes?.return();
  }

  async _unsubscribe() {
    if (this.subscriptionId === undefined || this.client.exited) return;
    try {
      await this.client.request("unsubscribeStatus", { subscriptionId: this.subscriptionId });
    } catch { /* the server is gone, or already dropped it */ }
  }

  /** Stop the subscription (unsubscribeStatus) and end the iteration; idempotent. */
  async close() {
    if (this._done) return;
    this._finish();
    if (this.subscriptionId !== undefined) await this._unsubscribe();
  }

  async next() {
    if (this._done) return { value: undefined, done: true };
    if (this.signal?.aborted) {
      await this.close();
      return { value: undefined, done: true };
    }
    await this.start();
    for (;;) {
      if (this._done) return { value: undefined, done: true };
      const item = await this._notes.next();
      if (item.done) {
        this._finish();
        return { value: undefined, done: true };
      }
      const change = await this._apply(item.value);
      if (!change) continue;
      if (this.untilFinished && change.jobId === this.jobId && TERMINAL_JOB_STATES.includes(change.status.state)) {
        await this.close();
      }
      return { value: change, done: false };
    }
  }

  async return() {
    await this.close();
    return { value: undefined, done: true };
  }

  [Symbol.asyncIterator]() { return this; }

  async [Symbol.asyncDispose ?? Symbol.for("Symbol.asyncDispose")]() { await this.close(); }

  async _apply(params) {
    if (!params || params.subscriptionId !== this.subscriptionId) return null;
    const { jobId, rev } = params;
    const held = this.documents.get(jobId);
    if (held && rev <= held.rev) return null; // already held (before the baseline, or passed by a resync)
    let status;
    let resynced = false;
    if ("snapshot" in params) {
      status = params.snapshot;
    } else {
      if (held && params.baseRev === held.rev) {
        try { status = applyPatch(held, params.patch); } catch (err) { if (!(err instanceof PatchError)) throw err; }
      }
      if (!status || status.rev !== rev) {
        status = (await this.client.request("getStatus", { jobId }, { timeout: this.timeout })).status;
        resynced = true;
      }
    }
    this.documents.set(jobId, status);
    const coalesced = params.coalesced ?? 1;
    return {
      jobId,
      rev: status.rev,
      event: params.event,
      events: coalesced > 1 && Array.isArray(params.events) ? params.events : [params.event],
      coalesced,
      status: clone(status),
      resynced,
      params,
    };
  }
}

/**
 * The second process of a macro case, and what both processes share: naming, timing and
 * clean-up.
 *
 * A case runs in a fresh Node process (the runner's case process) that forks one peer from
 * bench/macro/peers/. They talk over Node's IPC channel with small requests: `{ id, cmd, ... }`
 * answered by `{ id, ok, result | error }`. The channel only sets runs up and collects their
 * results; the measured traffic goes over the link under test. A peer exits when its parent's
 * channel closes, so a case process that dies leaves no process behind.
 *
 * Clocks: `now()` is process.hrtime in nanoseconds as a Number (CLOCK_MONOTONIC, the same clock
 * in every process of the machine), so a run can start in one process and end in the other.
 */

import { fork } from 'node:child_process';
import { readdirSync, unlinkSync } from 'node:fs';

/** How long a peer may take to start and answer its first request. */
const START_TIMEOUT_MS = 30_000;
/** A peer still running this long after its channel closed is killed. */
const EXIT_GRACE_MS = 2_000;
/** Default longest wait for one request (a run included). */
export const REQUEST_TIMEOUT_MS = 120_000;

/** Nanoseconds on the machine-wide monotonic clock. */
export function now() {
  return Number(process.hrtime.bigint());
}

/**
 * The id of this benchmark run: the runner's pid, inherited through BENCH_RUN_ID, so that the
 * runner can remove whatever its case processes left in /dev/shm.
 */
export function runId() {
  return process.env.BENCH_RUN_ID ?? String(process.pid);
}

/** Prefix of every cluster (and so every /dev/shm entry) of this benchmark run. */
export function clusterPrefix(id = runId()) {
  return `mb${id}x`;
}

let names = 0;

/** A cluster name no other case of any run uses. */
export function uniqueCluster() {
  return `${clusterPrefix()}${process.pid}x${++names}`;
}

/** An abstract-namespace Unix socket path (no file to clean up) unique to this case. */
export function uniqueSocketPath() {
  return `\0disco-bench-${runId()}-${process.pid}-${++names}`;
}

/**
 * Removes every /dev/shm entry of benchmark run `id` (segments and pipe doorbells); returns
 * their names. Call it only when no process of the run uses them any more.
 */
export function removeRunSegments(id) {
  const prefix = `disco.${clusterPrefix(id)}`;
  let entries;
  try {
    entries = readdirSync('/dev/shm');
  } catch {
    return []; // no /dev/shm: no rings were made
  }
  const removed = [];
  for (const name of entries) {
    if (!name.startsWith(prefix)) continue;
    try {
      unlinkSync(`/dev/shm/${name}`);
      removed.push(name);
    } catch {
      // Gone meanwhile.
    }
  }
  return removed;
}

let children = 0;

/**
 * Node flags for a process this one starts: its own, with a CPU profile of its own name when
 * this process writes one (`--profile`), so that both processes of a case are profiled. The
 * name gets `tag` and a count (cases that share a process start several peers).
 */
export function childExecArgv(tag) {
  const n = ++children;
  return process.execArgv.map((arg) =>
    arg.startsWith('--cpu-prof-name=')
      ? arg.replace(/(\.cpuprofile)?$/, `.${tag}-${n}.cpuprofile`)
      : arg,
  );
}

/** A forked peer process answering requests. */
export class Peer {
  #child;
  #pending = new Map();
  #nextId = 0;
  #exited;
  #exitInfo = null;

  constructor(child) {
    this.#child = child;
    this.#exited = new Promise((resolve) =>
      child.once('exit', (code, signal) => {
        this.#exitInfo = { code, signal };
        const err = new Error(`benchmark peer exited (code ${code}, signal ${signal})`);
        for (const { reject } of this.#pending.values()) reject(err);
        this.#pending.clear();
        resolve();
      }),
    );
    child.on('message', (msg) => this.#onMessage(msg));
    child.on('error', () => {
      // Reported through 'exit' (or the pending requests' timeouts).
    });
  }

  /** Forks `modulePath` (a bench/macro/peers module) and waits until it answers. */
  static async start(modulePath, tag, args = []) {
    const child = fork(modulePath, args, {
      execArgv: childExecArgv(tag),
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
      env: { ...process.env, BENCH_RUN_ID: runId() },
    });
    const peer = new Peer(child);
    try {
      await peer.request('ping', {}, START_TIMEOUT_MS);
    } catch (err) {
      await peer.close();
      throw err;
    }
    return peer;
  }

  get pid() {
    return this.#child.pid;
  }

  /** Sends `cmd` and resolves with the peer's result; rejects with its error or a timeout. */
  request(cmd, args = {}, timeoutMs = REQUEST_TIMEOUT_MS) {
    if (this.#exitInfo !== null) return Promise.reject(new Error('benchmark peer has exited'));
    const id = ++this.#nextId;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#pending.delete(id);
        reject(new Error(`benchmark peer: "${cmd}" got no answer in ${timeoutMs} ms`));
      }, timeoutMs);
      this.#pending.set(id, {
        resolve: (v) => {
          clearTimeout(timer);
          resolve(v);
        },
        reject: (e) => {
          clearTimeout(timer);
          reject(e);
        },
      });
      this.#child.send({ ...args, id, cmd });
    });
  }

  /** Closes the channel (the peer then exits), killing it if it lingers. */
  async close() {
    if (this.#exitInfo === null) {
      if (this.#child.connected) this.#child.disconnect();
      const timer = setTimeout(() => this.#child.kill('SIGKILL'), EXIT_GRACE_MS);
      await this.#exited;
      clearTimeout(timer);
    }
  }

  #onMessage(msg) {
    const p = this.#pending.get(msg?.id);
    if (p === undefined) return;
    this.#pending.delete(msg.id);
    if (msg.ok) p.resolve(msg.result);
    else p.reject(new Error(`benchmark peer: ${msg.error}`));
  }
}

/**
 * The peer side: answers each request with `handlers[cmd](request)` (sync or async), one at a
 * time, in arrival order; exits when the parent's channel closes.
 */
export function serve(handlers) {
  let queue = Promise.resolve();
  const all = { ping: () => ({ pid: process.pid }), ...handlers };
  // A parent gone mid-request: nobody to answer, and 'disconnect' ends this process.
  const reply = (msg) => {
    if (process.connected) process.send(msg, () => {});
  };
  process.on('message', (msg) => {
    queue = queue.then(async () => {
      const handler = all[msg.cmd];
      try {
        if (handler === undefined) throw new Error(`unknown request ${msg.cmd}`);
        const result = await handler(msg);
        reply({ id: msg.id, ok: true, result });
      } catch (err) {
        reply({
          id: msg.id,
          ok: false,
          error: err instanceof Error ? err.stack : String(err),
        });
      }
    });
  });
  process.on('disconnect', () => process.exit(0));
}

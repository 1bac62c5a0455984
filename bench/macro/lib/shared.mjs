/**
 * Processes a smoke run's cases share: with `--quick` every case of a suite runs in one process
 * anyway, so consecutive cases that need the same kind of peer reuse one instead of starting
 * their own (a Node process with grpc-js loaded takes about half a second to start). A full run
 * never shares: each round of each case gets fresh processes (STYLE §8).
 */

/** How long a shared resource outlives its last user, waiting for the next case. */
const LINGER_MS = 100;
/** Shared resources by key: { started: Promise, users, timer }. */
const shared = new Map();

/**
 * `start()`'s value for one case: a fresh one (`share` false; `stop(value)` ends it at release),
 * or the one consecutive cases with the same `key` share, stopped once unused for a moment.
 * Resolves with `{ value, release }`.
 */
export async function acquire(key, share, start, stop) {
  if (!share) {
    const value = await start();
    return { value, release: () => stop(value) };
  }
  let entry = shared.get(key);
  if (entry === undefined) {
    entry = { started: start(), users: 0, timer: null };
    shared.set(key, entry);
    entry.started.catch(() => shared.delete(key));
  }
  clearTimeout(entry.timer);
  entry.users++;
  const value = await entry.started;
  let released = false;
  const release = async () => {
    if (released) return;
    released = true;
    if (--entry.users > 0) return;
    entry.timer = setTimeout(() => {
      shared.delete(key);
      Promise.resolve(stop(value)).catch((err) =>
        console.error(`stopping the shared ${key}:`, err),
      );
    }, LINGER_MS);
  };
  return { value, release };
}

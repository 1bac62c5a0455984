/**
 * NodeController events end to end between two Server processes of an Application: n0 in
 * Server s0 sends, n1 in Server s1 receives (bench/macro/jobs/controller.mjs). The case process
 * is the Application: it starts both Servers, asks them for runs over the job channel and times
 * them from s0's first send to s1's last delivery.
 *
 *   tput.controller.<link>  one-way events of `size` bytes: sendEvent -> outbound queue ->
 *                           link -> inbox;
 *   rtt.controller.<link>   one 64 B event n0 -> n1 and n1's answer back, one at a time.
 *
 * `link` is 'shm' (ShmTransport over the Application's rings, default ring size and doorbell) or
 * 'uds' (UnixSocketTransport: the same traffic, framing and batching over Unix sockets).
 */

import { readdirSync, renameSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Application } from '../../../dist/runtime/application.js';
import { REQUEST_TIMEOUT_MS, uniqueCluster } from '../lib/peer.mjs';
import { countsFor, ROUND_TRIP_COUNTS, sizeLabel } from '../lib/sizes.mjs';
import { ROUND_TRIP_WARM_OPS, warmedUp } from '../lib/warmup.mjs';

const JOB = fileURLToPath(new URL('../jobs/controller.mjs', import.meta.url));
const SERVERS = ['s0', 's1'];

function topology() {
  return {
    cluster: uniqueCluster(),
    simprocs: ['p'],
    machines: [
      {
        name: 'm',
        servers: [
          { name: 's0', nodes: ['n0'] },
          { name: 's1', nodes: ['n1'] },
        ],
      },
    ],
  };
}

/**
 * With `--profile`, the Servers must not share this process's profile name: they are forked
 * without it (so V8 names their profiles by pid), and `renameProfiles` gives them this case's
 * name with the Server's name appended once they have exited.
 */
function withoutProfileName(start) {
  const saved = process.execArgv;
  process.execArgv = saved.filter((a) => !a.startsWith('--cpu-prof-name='));
  try {
    return start();
  } finally {
    process.execArgv = saved;
  }
}

function renameProfiles(pids) {
  const flag = (name) =>
    process.execArgv.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3);
  const dir = flag('cpu-prof-dir');
  const base = flag('cpu-prof-name');
  if (dir === undefined || base === undefined) return;
  const files = readdirSync(dir);
  for (const [server, pid] of pids) {
    const file = files.find((f) => f.startsWith('CPU.') && f.includes(`.${pid}.`));
    if (file !== undefined) {
      renameSync(
        join(dir, file),
        join(dir, base.replace(/(\.cpuprofile)?$/, `.${server}.cpuprofile`)),
      );
    }
  }
}

/** Requests to the Servers' job and their answers, matched by run number. */
class JobChannel {
  #waiters = [];
  #failure = null;
  #runs = 0;

  constructor(app) {
    app.on('job', (server, msg) => {
      if (msg?.error !== undefined) {
        this.#failAll(new Error(`server ${server}: ${msg.error}`));
        return;
      }
      const i = this.#waiters.findIndex(
        (w) => w.server === server && w.run === msg?.run && w.key in msg,
      );
      if (i < 0) return;
      const [w] = this.#waiters.splice(i, 1);
      clearTimeout(w.timer);
      w.resolve(msg);
    });
  }

  nextRun() {
    return ++this.#runs;
  }

  /** Resolves with the message of run `run` from `server` that has field `key`. */
  answer(server, run, key) {
    if (this.#failure !== null) return Promise.reject(this.#failure);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#waiters = this.#waiters.filter((w) => w.timer !== timer);
        reject(
          new Error(`server ${server}: no "${key}" for run ${run} in ${REQUEST_TIMEOUT_MS} ms`),
        );
      }, REQUEST_TIMEOUT_MS);
      this.#waiters.push({ server, run, key, resolve, reject, timer });
    });
  }

  /** Fails every waiting answer (a Server failed or died). */
  #failAll(err) {
    this.#failure ??= err;
    for (const w of this.#waiters.splice(0)) {
      clearTimeout(w.timer);
      w.reject(err);
    }
  }

  fail(err) {
    this.#failAll(err);
  }
}

/** Starts an Application of two Servers linked by `link`; resolves with what a case needs. */
async function startApplication(link) {
  const app = new Application({ topology: topology(), jobModule: JOB, link });
  const channel = new JobChannel(app);
  app.on('error', (err) => channel.fail(err));
  try {
    await withoutProfileName(() => app.start());
  } catch (err) {
    await app.stop();
    throw err;
  }
  const pids = SERVERS.map((s) => [s, app.pidOf(s)]);
  // A Server that fails or dies fails the run waiting on it.
  const settled = app.wait();
  settled.catch((err) => channel.fail(err));
  const stop = async () => {
    app.send(null, { cmd: 'quit' });
    try {
      await settled;
    } finally {
      await app.stop();
      renameProfiles(pids);
    }
  };
  return { app, channel, stop };
}

/** How long a shared Application outlives its last case, waiting for the next one. */
const SHARED_LINGER_MS = 100;
/** Shared Applications by link: { started: Promise, users, timer }. */
const shared = new Map();

/**
 * An Application for one case: a fresh one, or with `share` (smoke runs only, where every case
 * of the suite runs in one process anyway) one per link that consecutive cases reuse, so that a
 * smoke run does not start two Server processes per case. It stops once no case has used it for
 * a moment.
 */
async function acquireApplication(link, share) {
  if (!share) return startApplication(link);
  let entry = shared.get(link);
  if (entry === undefined) {
    entry = { started: startApplication(link), users: 0, timer: null };
    shared.set(link, entry);
    entry.started.catch(() => shared.delete(link));
  }
  clearTimeout(entry.timer);
  entry.users++;
  const started = await entry.started;
  let released = false;
  const stop = async () => {
    if (released) return;
    released = true;
    if (--entry.users > 0) return;
    entry.timer = setTimeout(() => {
      shared.delete(link);
      started.stop().catch((err) => console.error(`stopping the shared ${link} Application:`, err));
    }, SHARED_LINGER_MS);
  };
  return { ...started, stop };
}

/** One-way throughput of `size`-byte events from n0 (Server s0) to n1 (Server s1). */
export function controllerThroughputCase({ size, link, share = false }) {
  return {
    name: `tput.controller.${link} size=${sizeLabel(size)}`,
    bytesPerOp: size,
    async setup() {
      const { app, channel, stop } = await acquireApplication(link, share);
      let bad = 0;
      return {
        bytesPerOp: size,
        ...countsFor(size),
        async run(count) {
          const run = channel.nextRun();
          const armed = channel.answer('s1', run, 'armed');
          app.send('s1', { cmd: 'expect', run, count, size });
          await armed;
          const delivered = channel.answer('s1', run, 'done');
          const sent = channel.answer('s0', run, 't0');
          app.send('s0', { cmd: 'send', run, count, size });
          const [{ t0 }, { done, bad: wrong }] = await Promise.all([sent, delivered]);
          bad += wrong;
          return { seconds: (done - t0) / 1e9 };
        },
        check() {
          if (bad > 0) throw new Error(`${bad} events arrived out of order or with a wrong size`);
        },
        teardown: stop,
      };
    },
  };
}

/**
 * 64 B round trips n0 -> n1 -> n0 across the two Servers, one at a time. `warm`: warm up first
 * (bench/macro/lib/warmup.mjs).
 */
export function controllerRoundTripCase({ link, share = false, warm = false }) {
  return {
    name: `rtt.controller.${link} size=64B`,
    async setup() {
      const { app, channel, stop } = await acquireApplication(link, share);
      const instance = {
        ...ROUND_TRIP_COUNTS,
        warmOps: ROUND_TRIP_WARM_OPS,
        async run(count) {
          const run = channel.nextRun();
          const answer = channel.answer('s0', run, 'seconds');
          app.send('s0', { cmd: 'ping', run, count });
          const { seconds, latency } = await answer;
          return { seconds, latency };
        },
        teardown: stop,
      };
      return warmedUp(instance, warm);
    },
  };
}

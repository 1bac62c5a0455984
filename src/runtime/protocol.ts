/**
 * Messages between an Application (parent) and its Server processes (children),
 * over Node's IPC channel with the 'advanced' (structured clone) serialization.
 *
 *   parent                         child
 *     start {topology, job, ...} ->
 *                                <- ready              (listening, controllers built)
 *     go                         ->                    (every child is ready)
 *     job {payload}              <-> job {payload}     (the job's own protocol)
 *     peer-dead {server, detail} ->                    (a sibling died)
 *     shutdown                   ->
 *                                <- done {result} | failed {error}
 *
 * Both sides validate what they receive (`isParentMessage`, `isChildMessage`): the
 * channel is local and trusted, but a malformed message must give a clear error,
 * not a crash deep inside a handler.
 */

import type { RingDoorbellOptions } from '../native.js';
import type { TopologyInput } from '../topology.js';

/** Which same-machine link the Server processes use between each other. */
export type SameMachineLink = 'shm' | 'uds';

/** What a child needs to build its Server and run its job. */
export interface StartMessage {
  readonly type: 'start';
  readonly topology: TopologyInput;
  readonly machine: string;
  readonly server: string;
  readonly link: SameMachineLink;
  /** How ring consumers wait (shm only); the addon's defaults when absent. */
  readonly ringDoorbell?: RingDoorbellOptions;
  /** Absolute path of the job module (exports `runJob`). */
  readonly jobModule: string;
  readonly jobOptions: unknown;
}

export type ParentMessage =
  | StartMessage
  | { readonly type: 'go' }
  | { readonly type: 'job'; readonly payload: unknown }
  | { readonly type: 'peer-dead'; readonly server: string; readonly detail: string }
  | { readonly type: 'shutdown' };

/** An error as it crosses the process boundary. */
export interface ErrorInfo {
  readonly name: string;
  readonly code?: string;
  readonly message: string;
}

export type ChildMessage =
  | { readonly type: 'ready' }
  | { readonly type: 'job'; readonly payload: unknown }
  | { readonly type: 'done'; readonly result: unknown }
  | { readonly type: 'failed'; readonly error: ErrorInfo };

const PARENT_TYPES = new Set(['start', 'go', 'job', 'peer-dead', 'shutdown']);
const CHILD_TYPES = new Set(['ready', 'job', 'done', 'failed']);

function hasType(m: unknown, types: ReadonlySet<string>): m is { type: string } {
  return typeof m === 'object' && m !== null && types.has((m as { type?: unknown }).type as string);
}

/** Whether `m` is a message a parent sends. */
export function isParentMessage(m: unknown): m is ParentMessage {
  return hasType(m, PARENT_TYPES);
}

/** Whether `m` is a message a child sends. */
export function isChildMessage(m: unknown): m is ChildMessage {
  if (!hasType(m, CHILD_TYPES)) return false;
  if (m.type === 'failed') {
    const e = (m as { error?: unknown }).error as ErrorInfo | undefined;
    return typeof e?.message === 'string' && typeof e.name === 'string';
  }
  return true;
}

/** Flattens an error for the IPC channel. */
export function errorInfo(err: unknown): ErrorInfo {
  if (err instanceof Error) {
    const code = (err as { code?: unknown }).code;
    return { name: err.name, message: err.message, ...(typeof code === 'string' ? { code } : {}) };
  }
  return { name: 'Error', message: String(err) };
}

/** What a job module runs in every Server process. */
export interface JobContext {
  /** The Server of this process, with its same-machine links up. */
  readonly server: import('./server.js').Server;
  readonly options: unknown;
  /** Sends a job message to the Application. */
  send(payload: unknown): void;
  /** Registers the handler of job messages from the Application. */
  onMessage(handler: (payload: unknown) => void): void;
  /** Aborted on shutdown, or when a sibling Server dies (the reason says which). */
  readonly signal: AbortSignal;
}

/** The export a job module provides: runs in each Server, returns its result. */
export type RunJob = (ctx: JobContext) => Promise<unknown>;

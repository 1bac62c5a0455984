/**
 * Messages between the Applications of a multi-machine cluster, carried as control
 * envelopes by the gateways (src/runtime/gateway.ts): in order, exactly once, over
 * the same links as the simulation's own traffic.
 *
 * The Application of the cluster's first machine leads: it runs the job's
 * coordinator and treats every Server of the cluster as one of its children. A
 * member (the Application of any other machine, `disco run --machine <name>`) forks
 * its own Servers and relays between them and the leader:
 *
 *   leader                                   member
 *     to-server {server, msg: ParentMessage} ->      (start, go, job, peer-dead, shutdown)
 *                                           <- from-server {server, msg: ChildMessage}
 *                                           <- exited {server, code, signal}
 *     stop                                   ->      (the run is over: stop and exit)
 *                                           <- stopped            (its Servers are gone; it
 *                                                                   closes its gateway next)
 *
 * The leader stops the members farthest from it first and waits for each one's
 * `stopped` before it stops those nearer: a member that relays traffic between the
 * leader and others stops only after them, so no `stop` is lost in a gateway that
 * closed before it could forward it.
 * A message comes from another machine, so it is checked (`isControlMessage`)
 * before use; a bad one is reported, never acted on.
 */

import {
  isChildMessage,
  isParentMessage,
  type ChildMessage,
  type ParentMessage,
} from './protocol.js';

export type ControlMessage =
  | { readonly type: 'to-server'; readonly server: string; readonly msg: ParentMessage }
  | { readonly type: 'from-server'; readonly server: string; readonly msg: ChildMessage }
  | {
      readonly type: 'exited';
      readonly server: string;
      readonly code: number | null;
      readonly signal: string | null;
    }
  | { readonly type: 'stop' }
  | { readonly type: 'stopped' };

function isRecord(m: unknown): m is Record<string, unknown> {
  return typeof m === 'object' && m !== null;
}

/** Whether `m` is a well-formed ControlMessage. */
export function isControlMessage(m: unknown): m is ControlMessage {
  if (!isRecord(m)) return false;
  switch (m.type) {
    case 'to-server':
      return typeof m.server === 'string' && isParentMessage(m.msg);
    case 'from-server':
      return typeof m.server === 'string' && isChildMessage(m.msg);
    case 'exited':
      return (
        typeof m.server === 'string' &&
        (m.code === null || typeof m.code === 'number') &&
        (m.signal === null || typeof m.signal === 'string')
      );
    case 'stop':
    case 'stopped':
      return true;
    default:
      return false;
  }
}

/** The name of a Server in a leader's view of a cluster of several machines. */
export function clusterServerKey(machine: string, server: string): string {
  return `${machine}/${server}`;
}

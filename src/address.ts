/**
 * Target addresses: `"<node>/<simproc>"`, where the node part may be `"self"`
 * (SPEC A2). Parsing happens once per distinct target string; the NodeController
 * caches the result, so this is off the hot path.
 *
 * Invariants: node and simproc names are non-empty, contain no `/`, and a node is
 * never literally named `self` (that word is reserved for the sending node).
 */

import { InvalidTargetError } from './errors.js';

/** The reserved node name that stands for the sending node. */
export const SELF_NODE = 'self';

/** Longest node or simproc name accepted, in UTF-16 code units. */
export const MAX_NAME_LENGTH = 256;

/** A node and one of its simprocs. */
export interface NodeRef {
  readonly node: string;
  readonly simproc: string;
}

/**
 * Checks a node or simproc name; returns a reason when it is not acceptable.
 * Used for user input (targets) and configuration (topology, controller options).
 */
export function nameProblem(name: unknown): string | undefined {
  if (typeof name !== 'string') return `expected a string, got ${typeof name}`;
  if (name.length === 0) return 'must not be empty';
  if (name.length > MAX_NAME_LENGTH) return `longer than ${MAX_NAME_LENGTH} characters`;
  if (name.includes('/')) return 'must not contain "/"';
  return undefined;
}

/**
 * Splits and validates a target.
 *
 * @param target - `"<node>/<simproc>"` or `"self/<simproc>"`.
 * @param selfNode - the sending node, substituted for `self`.
 * @param simprocs - the simprocs every node has.
 * @throws {InvalidTargetError} when the target is not a string, has no `/` or more
 *   than one, has an empty part, or names a simproc that is not in `simprocs`.
 */
export function parseTarget(
  target: unknown,
  selfNode: string,
  simprocs: ReadonlySet<string>,
): NodeRef {
  if (typeof target !== 'string') {
    throw new InvalidTargetError(target, 'expected a string "<node>/<simproc>"');
  }
  const slash = target.indexOf('/');
  if (slash < 0) {
    throw new InvalidTargetError(target, 'missing "/" between node and simproc');
  }
  if (target.indexOf('/', slash + 1) >= 0) {
    throw new InvalidTargetError(target, 'more than one "/"; names cannot contain "/"');
  }
  const nodePart = target.slice(0, slash);
  const simproc = target.slice(slash + 1);
  if (nodePart.length === 0) throw new InvalidTargetError(target, 'empty node name');
  if (simproc.length === 0) throw new InvalidTargetError(target, 'empty simproc name');
  if (nodePart.length > MAX_NAME_LENGTH || simproc.length > MAX_NAME_LENGTH) {
    throw new InvalidTargetError(target, `names are limited to ${MAX_NAME_LENGTH} characters`);
  }
  if (!simprocs.has(simproc)) {
    throw new InvalidTargetError(
      target,
      `unknown simproc ${JSON.stringify(simproc)}; known simprocs: ${[...simprocs].join(', ')}`,
    );
  }
  return { node: nodePart === SELF_NODE ? selfNode : nodePart, simproc };
}

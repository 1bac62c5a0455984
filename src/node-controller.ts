/**
 * NodeController: manages one node and all its simprocs (SPEC A1-A7).
 *
 * Sending: validate the target (cached per distinct target string), resolve "self",
 * ask the Router for the transport (cached against the router's version), serialize
 * the data once if and only if that transport leaves the process, and hand the
 * envelope over. A send to a NodeController of this process (this node, through the
 * controller's own DeliveryQueue, or another, through the in-process transport's)
 * builds no envelope: its fields go into the queue, and the receiver's inbox gets an
 * InProcessEvent or InProcessPromise built at hand-over. Sends to this node itself
 * never touch the Router.
 *
 * Receiving: transports call `deliverEvent`/`deliverPromise` with envelopes or those
 * in-process objects; the controller deserializes wire payloads and hands the message
 * to the inbox of its simproc.
 * Messages for a simproc without an inbox are held, in order, until `setInbox`.
 *
 * Flow control: `writable` is false while any queue on the way is above its
 * high-water mark; `drained()` waits for it, and 'drain' is emitted then.
 * Errors raised by inboxes, or by undecodable data from a peer, are emitted as
 * 'error' (thrown asynchronously when nobody listens); they never stop a batch.
 */

import { EventEmitter } from 'node:events';
import { nameProblem, parseTarget, type NodeRef } from './address.js';
import { checkEpoch, checkHeaders, checkNumEvents, checkSeqnr } from './arguments.js';
import {
  DataFormat,
  EventEnvelope,
  InProcessEvent,
  PromiseEnvelope,
  type Headers,
  type IncomingEvent,
  type IncomingPromise,
  type ReceivedEvent,
  type ReceivedPromise,
  type Seqnr,
} from './envelope.js';
import {
  emitError,
  InvalidArgumentError,
  SerializationError,
  UndeliverableError,
} from './errors.js';
import type { Router } from './router.js';
import { defaultSerializer, type Serializer } from './serializer.js';
import {
  DeliveryQueue,
  LocalTarget,
  type InProcessSink,
  type QueueLimits,
} from './transports/delivery-queue.js';
import type { Transport, TransportMetrics } from './transports/transport.js';

/** Distinct target strings remembered before the cache is cleared. */
const DESTINATION_CACHE_ENTRIES = 64 * 1024;
/** Default bound on messages held for simprocs that have no inbox yet. */
const DEFAULT_MAX_HELD_MESSAGES = 64 * 1024;
/** Name under which sends to the node itself are counted. */
const LOCAL_ROUTE = 'local';

/** What receives the events and promises of one simproc (the EventQueue implements it). */
export interface Inbox {
  onEvent(event: ReceivedEvent): void;
  onPromise(promise: ReceivedPromise): void;
}

/** Options of a NodeController. */
export interface NodeControllerOptions {
  /** Replication id (SPEC S1). Default 0. */
  repid?: number;
  /** This node's name. */
  nodeName: string;
  /** The simprocs every node has. */
  simprocs: readonly string[];
  router: Router;
  /** How data leaving the process is encoded. Default: structured clone (node:v8). */
  serializer?: Serializer;
  /** Inboxes to install right away, by simproc. */
  inboxes?: Readonly<Record<string, Inbox>>;
  /** Bounds of the queue for sends to this node itself. */
  localQueue?: QueueLimits;
  /** Messages held for simprocs without an inbox before 'error' is emitted. Default 65536. */
  maxHeldMessages?: number;
}

/** Counters of one controller; plain data. */
export interface NodeControllerMetrics {
  readonly repid: number;
  readonly node: string;
  readonly eventsSent: number;
  readonly promisesSent: number;
  readonly eventsReceived: number;
  readonly promisesReceived: number;
  readonly bytesSerialized: number;
  readonly heldMessages: number;
  /** Sends by route: `local` (to this node) or a transport name. */
  readonly sentVia: Readonly<Record<string, { events: number; promises: number }>>;
  /** The router's transports (shared by every controller on the router). */
  readonly transports: readonly TransportMetrics[];
}

/** Options of one `sendEvent`. */
export interface SendEventOptions {
  /**
   * Where answers go (`"<node>/<simproc>"`, `"self/<simproc>"`), when not to the sender:
   * the receiver reads it as `replyTo` and `reply()` uses it.
   */
  readonly replyTo?: string;
}

interface RouteCounters {
  events: number;
  promises: number;
}

/**
 * A parsed target with its route, valid while `version` equals the router's. A
 * route to a NodeController of this process (this node, or one the in-process
 * transport reaches) has `local`, so a send is one push into its queue; any other
 * goes through `transport`.
 */
interface Destination {
  readonly node: string;
  readonly simproc: string;
  readonly local: LocalTarget | null;
  readonly transport: Transport | null;
  readonly counters: RouteCounters;
  readonly version: number;
}

/** Manages one node; see the file header. */
export class NodeController extends EventEmitter implements InProcessSink {
  readonly repid: number;
  readonly nodeName: string;
  readonly simprocs: readonly string[];
  private readonly simprocSet: ReadonlySet<string>;
  private readonly router: Router;
  private readonly serializer: Serializer;
  private readonly local: DeliveryQueue;
  private readonly inboxes = new Map<string, Inbox>();
  private readonly held = new Map<string, (IncomingEvent | IncomingPromise)[]>();
  private readonly maxHeld: number;
  /**
   * Destinations by target string. A null-prototype object, not a Map: V8 keeps it in
   * dictionary mode and looks keys up by their internalized string, so a lookup among
   * many targets compares pointers, where a Map compares unequal strings that share a
   * bucket character by character (sends to 8 targets in turn: ~12% faster).
   */
  private destinations = Object.create(null) as Record<string, Destination | undefined>;
  private destinationCount = 0;
  /**
   * A run of sends to one target skips even that lookup: once a destination repeats,
   * its target string is kept here and compared first. Sends to many targets in turn
   * never compare (unequal strings cost about as much as the lookup).
   */
  private runTarget: string | null = null;
  private runDestination: Destination | null = null;
  private previousDestination: Destination | null = null;
  private readonly sentVia = new Map<string, RouteCounters>();
  private sender: NodeRef;
  private lastSimproc: string | null = null;
  private lastInbox: Inbox | undefined = undefined;
  private heldCount = 0;
  private eventsReceived = 0;
  private promisesReceived = 0;
  private bytesSerialized = 0;
  private closed = false;

  /**
   * Creates the controller and attaches it to the router, so that other
   * controllers of this process can reach it.
   * @throws {InvalidArgumentError} for a bad node name, simproc list or repid.
   */
  constructor(options: NodeControllerOptions) {
    super();
    const problem = nameProblem(options.nodeName);
    if (problem !== undefined)
      throw new InvalidArgumentError('nodeName', options.nodeName, problem);
    if (options.nodeName === 'self') {
      throw new InvalidArgumentError('nodeName', options.nodeName, 'a name other than "self"');
    }
    checkSimprocs(options.simprocs);
    const repid = options.repid ?? 0;
    if (!Number.isInteger(repid) || repid < 0 || repid > 0xffffffff) {
      throw new InvalidArgumentError('repid', repid, 'an integer from 0 to 2^32 - 1');
    }
    this.repid = repid;
    this.nodeName = options.nodeName;
    this.simprocs = Object.freeze([...options.simprocs]);
    this.simprocSet = new Set(this.simprocs);
    this.router = options.router;
    this.serializer = options.serializer ?? defaultSerializer;
    this.maxHeld = options.maxHeldMessages ?? DEFAULT_MAX_HELD_MESSAGES;
    this.local = new DeliveryQueue(`local queue of ${this.nodeName}`, options.localQueue);
    this.sender = Object.freeze({ node: this.nodeName, simproc: this.simprocs[0]! });
    this.local.on('drain', this.onDrain);
    this.router.setMaxListeners(0);
    this.router.on('drain', this.onDrain);
    for (const [simproc, inbox] of Object.entries(options.inboxes ?? {})) {
      this.setInbox(simproc, inbox);
    }
    this.router.attach(this);
  }

  /** The simproc stamped as sender on outgoing envelopes. Defaults to the first simproc. */
  get activeSimproc(): string {
    return this.sender.simproc;
  }

  /** @throws {InvalidArgumentError} when `simproc` is not one of this node's simprocs. */
  set activeSimproc(simproc: string) {
    if (simproc === this.sender.simproc) return;
    if (!this.simprocSet.has(simproc)) {
      throw new InvalidArgumentError(
        'activeSimproc',
        simproc,
        `one of ${this.simprocs.join(', ')}`,
      );
    }
    this.sender = Object.freeze({ node: this.nodeName, simproc });
  }

  /** False while a queue on the way is above its high-water mark; see `drained()`. */
  get writable(): boolean {
    return this.local.writable && this.router.writable;
  }

  /**
   * Sends an event to `"<node>/<simproc>"` (or `"self/<simproc>"`).
   * In-process, `data` and `headers` are passed by reference: do not change them after sending.
   * @throws {InvalidTargetError} for a malformed target or an unknown simproc.
   * @throws {UnknownNodeError} when no transport handles the node.
   * @throws {InvalidArgumentError} for a non-finite epoch or non-string header values.
   * @throws {SerializationError} when data leaving the process cannot be serialized.
   * @throws {BackpressureError} when a queue on the way is at its hard limit.
   */
  sendEvent(
    target: string,
    epoch: number,
    data: unknown,
    headers?: Headers,
    options?: SendEventOptions,
  ): void {
    const dest = this.destination(target);
    const checkedEpoch = checkEpoch(epoch);
    const checkedHeaders = checkHeaders(headers);
    const replyTo = options?.replyTo === undefined ? null : this.replyAddress(options.replyTo);
    const local = dest.local;
    if (local !== null && replyTo === null) {
      local.queue.pushLocalEvent(local, this.sender, checkedEpoch, checkedHeaders, data);
    } else if (local !== null) {
      // Rare: the envelope itself carries the reply address, so it is queued whole.
      const env = this.envelope(dest, checkedEpoch, checkedHeaders, replyTo, data);
      local.queue.pushEvent(env, local.sink);
    } else {
      this.sendEventVia(dest, checkedEpoch, checkedHeaders, data, replyTo);
    }
    dest.counters.events++;
  }

  /**
   * Answers `received`: sends an event to its `replyTo` address when it has one, else to
   * its sender. The answer takes whatever route leads there, which need not be the path
   * the request came by (SPEC B3).
   * @throws as `sendEvent`.
   */
  reply(received: ReceivedEvent, epoch: number, data: unknown, headers?: Headers): void {
    const to = received.replyTo ?? received.sender;
    this.sendEvent(`${to.node}/${to.simproc}`, epoch, data, headers);
  }

  /** A checked reply address ("self" resolved). @throws {InvalidTargetError} when malformed. */
  private replyAddress(address: string): NodeRef {
    const ref = parseTarget(address, this.nodeName, this.simprocSet);
    return Object.freeze({ node: ref.node, simproc: ref.simproc });
  }

  /**
   * Sends a promise: the sender will have sent `numEvents` events for `epoch`
   * (2^32 - 1: not known yet, a pre-promise).
   * @throws {InvalidTargetError} for a malformed target or an unknown simproc.
   * @throws {UnknownNodeError} when no transport handles the node.
   * @throws {InvalidArgumentError} for a bad seqnr, epoch or numEvents.
   * @throws {BackpressureError} when a queue on the way is at its hard limit.
   */
  sendPromise(target: string, seqnr: Seqnr, epoch: number, numEvents: number): void {
    const dest = this.destination(target);
    const checkedSeqnr = checkSeqnr(seqnr);
    const checkedEpoch = checkEpoch(epoch);
    const checkedCount = checkNumEvents(numEvents);
    const local = dest.local;
    if (local !== null) {
      local.queue.pushLocalPromise(local, this.sender, checkedSeqnr, checkedEpoch, checkedCount);
    } else {
      dest.transport!.sendPromise(
        new PromiseEnvelope(
          this.repid,
          this.sender,
          dest.node,
          dest.simproc,
          checkedSeqnr,
          checkedEpoch,
          checkedCount,
          0,
        ),
      );
    }
    dest.counters.promises++;
  }

  /**
   * Installs the inbox of `simproc`. Messages that arrived before it are handed to
   * it asynchronously, in arrival order, before any later message.
   * @throws {InvalidArgumentError} for an unknown simproc or an object without the two methods.
   */
  setInbox(simproc: string, inbox: Inbox): void {
    if (!this.simprocSet.has(simproc)) {
      throw new InvalidArgumentError('simproc', simproc, `one of ${this.simprocs.join(', ')}`);
    }
    if (typeof inbox?.onEvent !== 'function' || typeof inbox?.onPromise !== 'function') {
      throw new InvalidArgumentError(
        'inbox',
        inbox,
        'an object with onEvent and onPromise methods',
      );
    }
    this.inboxes.set(simproc, inbox);
    this.lastSimproc = null;
    this.lastInbox = undefined;
    if (this.held.has(simproc)) setImmediate(() => this.releaseHeld(simproc));
  }

  /** Resolves when `writable` is true (at once if it already is). */
  drained(): Promise<void> {
    if (this.writable) return Promise.resolve();
    return new Promise((resolve) => {
      const check = (): void => {
        if (!this.writable) return;
        this.off('drain', check);
        resolve();
      };
      this.on('drain', check);
    });
  }

  /** Resolves once everything sent so far has been handed over by every queue on the way. */
  async flush(): Promise<void> {
    await Promise.all([this.local.flushed(), this.router.flush()]);
  }

  /** Counters of this controller and of the router's transports. */
  metrics(): NodeControllerMetrics {
    const sentVia: Record<string, { events: number; promises: number }> = {};
    // Every send counts on its route only; the totals are the sums.
    let eventsSent = 0;
    let promisesSent = 0;
    for (const [name, c] of this.sentVia) {
      sentVia[name] = { events: c.events, promises: c.promises };
      eventsSent += c.events;
      promisesSent += c.promises;
    }
    return {
      repid: this.repid,
      node: this.nodeName,
      eventsSent,
      promisesSent,
      eventsReceived: this.eventsReceived,
      promisesReceived: this.promisesReceived,
      bytesSerialized: this.bytesSerialized,
      heldMessages: this.heldCount,
      sentVia,
      transports: this.router.metrics(),
    };
  }

  /** Flushes what this node sent to itself and detaches from the router; idempotent. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.local.flushed();
    this.router.off('drain', this.onDrain);
    this.router.detach(this);
  }

  /** Transport entry point: hands an event to its simproc's inbox. Never throws. */
  deliverEvent(env: IncomingEvent): void {
    // InProcessEvent first: its test ends at the first prototype, EventEnvelope's would
    // walk the whole chain of every in-process event.
    if (!(env instanceof InProcessEvent) && env.payload !== null && !this.decodePayload(env)) {
      return;
    }
    const inbox = this.inboxFor(env.simproc);
    if (inbox === undefined || (this.heldCount !== 0 && this.held.has(env.simproc))) {
      this.hold(env);
      return;
    }
    this.eventsReceived++;
    try {
      inbox.onEvent(env);
    } catch (err) {
      this.reportError(err);
    }
  }

  /** Transport entry point: hands a promise to its simproc's inbox. Never throws. */
  deliverPromise(env: IncomingPromise): void {
    const inbox = this.inboxFor(env.simproc);
    if (inbox === undefined || (this.heldCount !== 0 && this.held.has(env.simproc))) {
      this.hold(env);
      return;
    }
    this.promisesReceived++;
    try {
      inbox.onPromise(env);
    } catch (err) {
      this.reportError(err);
    }
  }

  /** The inbox of `simproc`; consecutive messages for one simproc cost a comparison. */
  private inboxFor(simproc: string): Inbox | undefined {
    if (simproc === this.lastSimproc) return this.lastInbox;
    const inbox = this.inboxes.get(simproc);
    if (inbox !== undefined) {
      this.lastSimproc = simproc;
      this.lastInbox = inbox;
    }
    return inbox;
  }

  private destination(target: string): Destination {
    const run = this.runDestination;
    if (run !== null) {
      if (target === this.runTarget && run.version === this.router.version) return run;
      this.runDestination = null;
    }
    // Only strings index the object: another key would be converted to one and could match.
    let d = typeof target === 'string' ? this.destinations[target] : undefined;
    if (d === undefined || d.version !== this.router.version)
      d = this.resolveDestination(target, d);
    if (d === this.previousDestination) {
      this.runTarget = target;
      this.runDestination = d;
    }
    this.previousDestination = d;
    return d;
  }

  private resolveDestination(target: string, stale: Destination | undefined): Destination {
    const ref = stale ?? parseTarget(target, this.nodeName, this.simprocSet);
    // Canonical name strings, so that later comparisons are pointer comparisons.
    const simproc = this.simprocs.find((s) => s === ref.simproc)!;
    let node = ref.node;
    let transport: Transport | null = null;
    let local: LocalTarget | null = null;
    if (node === this.nodeName) {
      node = this.nodeName;
      local = new LocalTarget(this.local, this, simproc, this.repid);
    } else {
      transport = this.router.resolve(this.repid, node);
      const direct = transport.directRoute?.(this.repid, node) ?? null;
      // Only a NodeController takes in-process message objects; the transport hands any
      // other LocalNode the envelopes it expects.
      if (direct !== null && direct.sink instanceof NodeController) {
        node = direct.sink.nodeName;
        local = new LocalTarget(direct.queue, direct.sink, simproc, this.repid);
      }
    }
    const route = transport === null ? LOCAL_ROUTE : transport.name;
    let counters = this.sentVia.get(route);
    if (counters === undefined) {
      counters = { events: 0, promises: 0 };
      this.sentVia.set(route, counters);
    }
    const dest: Destination = {
      node,
      simproc,
      local,
      transport,
      counters,
      version: this.router.version,
    };
    if (this.destinationCount >= DESTINATION_CACHE_ENTRIES) {
      this.destinations = Object.create(null) as Record<string, Destination | undefined>;
      this.destinationCount = 0;
    }
    if (this.destinations[target] === undefined) this.destinationCount++;
    this.destinations[target] = dest;
    return dest;
  }

  /** A send through a transport: the envelope, serialized first if it leaves the process. */
  private sendEventVia(
    dest: Destination,
    epoch: number,
    headers: Headers,
    data: unknown,
    replyTo: NodeRef | null,
  ): void {
    const transport = dest.transport!;
    if (transport.carriesObjects) {
      transport.sendEvent(this.envelope(dest, epoch, headers, replyTo, data));
      return;
    }
    const raw = data instanceof Uint8Array;
    const payload = raw ? data : this.serializeData(data, dest.node);
    const format = raw ? DataFormat.Raw : DataFormat.Serialized;
    this.bytesSerialized += payload.length;
    if (transport.sendEventFields !== undefined) {
      // A framed link stages the fields as they are: no envelope object to make and drop.
      transport.sendEventFields(
        this.repid,
        this.sender,
        dest.node,
        dest.simproc,
        epoch,
        headers,
        payload,
        format,
        replyTo,
      );
    } else {
      transport.sendEvent(this.envelope(dest, epoch, headers, replyTo, undefined, payload, format));
    }
  }

  /** A new envelope to `dest`: with `data` in-process, or with its serialized `payload`. */
  private envelope(
    dest: Destination,
    epoch: number,
    headers: Headers,
    replyTo: NodeRef | null,
    data: unknown,
    payload: Uint8Array | null = null,
    format: DataFormat = DataFormat.Raw,
  ): EventEnvelope {
    return new EventEnvelope(
      this.repid,
      this.sender,
      dest.node,
      dest.simproc,
      epoch,
      headers,
      data,
      payload,
      format,
      0,
      replyTo,
    );
  }

  /** The serializer's bytes of `data` (not a Uint8Array). @throws {SerializationError}. */
  private serializeData(data: unknown, node: string): Uint8Array {
    try {
      return this.serializer.serialize(data);
    } catch (err) {
      throw new SerializationError(`cannot serialize the data of an event for ${node}`, err);
    }
  }

  /** Turns wire bytes back into data; reports and returns false when they cannot be. */
  private decodePayload(env: EventEnvelope): boolean {
    const bytes = env.payload!;
    env.payload = null;
    if (env.dataFormat === DataFormat.Raw) {
      env.data = bytes;
      return true;
    }
    try {
      env.data = this.serializer.deserialize(bytes);
      return true;
    } catch (err) {
      this.reportError(
        new SerializationError(
          `cannot deserialize an event from ${env.sender.node}/${env.sender.simproc}; it was dropped`,
          err,
        ),
      );
      return false;
    }
  }

  private hold(env: IncomingEvent | IncomingPromise): void {
    // Every message handed to this controller targets this node.
    if (!this.simprocSet.has(env.simproc)) {
      this.reportError(
        new UndeliverableError(
          `${this.nodeName}/${env.simproc}`,
          `sent by ${env.sender.node}/${env.sender.simproc}, but this node has no such simproc`,
        ),
      );
      return;
    }
    if (this.heldCount >= this.maxHeld) {
      this.reportError(
        new UndeliverableError(
          `${this.nodeName}/${env.simproc}`,
          `${this.heldCount} messages already wait for simprocs without an inbox ` +
            `(maxHeldMessages). Call setInbox for every simproc.`,
        ),
      );
      return;
    }
    // Raw bytes off a wire are a view into the transport's buffer (shared memory for a ring),
    // valid only until the batch is released, which is long before setInbox hands them over.
    // In-process data is the sender's own object and passes untouched.
    if (
      env instanceof EventEnvelope &&
      env.dataFormat === DataFormat.Raw &&
      env.data instanceof Uint8Array
    ) {
      env.data = env.data.slice();
    }
    let list = this.held.get(env.simproc);
    if (list === undefined) {
      list = [];
      this.held.set(env.simproc, list);
    }
    list.push(env);
    this.heldCount++;
  }

  private releaseHeld(simproc: string): void {
    const list = this.held.get(simproc);
    if (list === undefined || !this.inboxes.has(simproc)) return;
    this.held.delete(simproc);
    this.heldCount -= list.length;
    for (const env of list) {
      if (env instanceof EventEnvelope || env instanceof InProcessEvent) this.deliverEvent(env);
      else this.deliverPromise(env);
    }
  }

  private reportError(err: unknown): void {
    emitError(this, err);
  }

  private readonly onDrain = (): void => {
    if (this.writable) this.emit('drain');
  };
}

function checkSimprocs(simprocs: unknown): void {
  if (!Array.isArray(simprocs) || simprocs.length === 0) {
    throw new InvalidArgumentError('simprocs', simprocs, 'a non-empty array of names');
  }
  const seen = new Set<string>();
  for (const s of simprocs) {
    const problem = nameProblem(s);
    if (problem !== undefined) throw new InvalidArgumentError('simproc name', s, problem);
    if (seen.has(s)) throw new InvalidArgumentError('simprocs', s, 'unique names');
    seen.add(s);
  }
}

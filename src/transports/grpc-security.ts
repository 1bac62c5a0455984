/**
 * Security of the cross-machine gRPC links (DESIGN §6, §11; SPEC C9, C10): TLS and
 * mTLS credentials from PEM files, an allow-list of peer identities per cluster,
 * and plaintext only on loopback or by explicit opt-in.
 *
 * GrpcTransport calls `serverCredentials` when it binds, `channelCredentials` when
 * it dials a peer, and `authorizeCall` first thing in its stream handler; a refused
 * call is logged with the returned reason and ended with PERMISSION_DENIED.
 *
 * Invariants:
 * - No `tls`: plaintext, and only when the host is loopback or `insecure` is true;
 *   anything else throws before a socket exists.
 * - PEM files are read and parsed once, when credentials are made; a missing,
 *   unreadable or malformed file throws then, naming the option and the path.
 * - `allow` is checked on both sides against the peer certificate's identities
 *   (subject CN and every DNS, URI and IP subjectAltName); one match admits the
 *   peer. With `identities`, the server also checks that the machine a caller
 *   claims to be (its `disco-sender`) is the one its certificate names. The
 *   server only knows a client's identity under mTLS, so `allow` without a
 *   required client certificate is a configuration error, not a silently open
 *   door. Matching is exact (IP addresses in canonical form); a wildcard DNS
 *   name in a certificate is taken literally.
 * - Certificate chains are verified by TLS itself (rejectUnauthorized stays on);
 *   the client also keeps the usual host-name check and adds the allow-list on
 *   top of it.
 */

import { X509Certificate, createPrivateKey, type KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { BlockList, isIP } from 'node:net';
import { checkServerIdentity, type PeerCertificate } from 'node:tls';
import {
  ChannelCredentials,
  ServerCredentials,
  type ChannelOptions,
  type ServerDuplexStream,
} from '@grpc/grpc-js';
import { InvalidArgumentError } from '../errors.js';
import { tracerFor } from '../trace.js';

const tracer = tracerFor('grpc-security');

/** Security options of a gRPC link, per machine (`tls`) and per cluster (`allow`, `insecure`). */
export interface GrpcSecurityOptions {
  tls?: {
    /** PEM file path: trust roots for verifying the peer. */
    ca?: string;
    /** PEM file path: our certificate chain. */
    cert?: string;
    /** PEM file path: our private key. */
    key?: string;
    /** Server side: require a client certificate (mTLS). Default: true when `ca` is given. */
    requireClientCert?: boolean;
    /** Client side: name to verify the server certificate against instead of the host. */
    serverNameOverride?: string;
  };
  /** Allowed peer identities: certificate subject CN or any SAN (DNS, URI, IP); checked on both sides. */
  allow?: readonly string[];
  /**
   * Binds callers to their certificates (server side, with `allow`): machine name -> the
   * identity (CN or SAN) that machine's certificate names. A call whose `disco-sender` is
   * machine `m` (or `m/<server>`) is refused unless its certificate names `identities[m]`,
   * and a call from a machine not listed is refused. Without it, any allowed certificate
   * may speak for any machine. Every identity must be in `allow`.
   */
  identities?: Readonly<Record<string, string>>;
  /** Explicit opt-in to plaintext on a non-loopback address. */
  insecure?: boolean;
}

/** Outcome of `authorizeCall`: the peer's identity, or why it was refused. */
export type CallAuthorization = { ok: true; identity: string } | { ok: false; reason: string };

const LOOPBACK = new BlockList();
LOOPBACK.addSubnet('127.0.0.0', 8, 'ipv4');
LOOPBACK.addAddress('::1', 'ipv6');

/**
 * True when `host` is a loopback address: 127.0.0.0/8, ::1 (also IPv4-mapped and
 * bracketed forms) or `localhost`. A trailing `:port` is ignored.
 */
export function isLoopbackHost(host: string): boolean {
  const bare = stripPort(host.trim()).toLowerCase();
  if (bare === 'localhost' || bare === 'localhost.') return true;
  const family = isIP(bare);
  return family !== 0 && LOOPBACK.check(bare, family === 6 ? 'ipv6' : 'ipv4');
}

function stripPort(host: string): string {
  const bracketed = /^\[([^\]]*)\](?::\d+)?$/.exec(host);
  if (bracketed) return bracketed[1]!;
  // One colon is host:port; more than one is a bare IPv6 address.
  const colon = host.indexOf(':');
  if (colon >= 0 && colon === host.lastIndexOf(':') && /^\d+$/.test(host.slice(colon + 1))) {
    return host.slice(0, colon);
  }
  return host;
}

/**
 * The identities a certificate asserts, as compared against `allow`: the subject
 * CN(s), then every DNS, URI and IP subjectAltName, in certificate order, without
 * duplicates. IP addresses are in canonical form (`::1`, not `0:0:0:0:0:0:0:1`).
 */
export function peerIdentities(
  cert: Pick<PeerCertificate, 'subject' | 'subjectaltname'>,
): string[] {
  const found = new Set<string>();
  const cn: unknown = cert.subject?.CN;
  for (const name of Array.isArray(cn) ? cn : [cn]) {
    if (typeof name === 'string' && name.length > 0) found.add(name);
  }
  for (const [kind, value] of parseSubjectAltName(cert.subjectaltname ?? '')) {
    if (kind === 'DNS' || kind === 'URI') found.add(value);
    else if (kind === 'IP Address') found.add(canonicalIdentity(value));
  }
  return [...found];
}

/**
 * Splits Node's `subjectaltname` string (`DNS:a, IP Address:1.2.3.4, URI:"x,y"`):
 * entries are separated by ", " and a value holding a separator or quote is a JSON
 * string (Node quotes those since 17.3.1 so names cannot smuggle extra entries).
 */
function parseSubjectAltName(text: string): Array<[string, string]> {
  const entries: Array<[string, string]> = [];
  const entry = /\s*([^:,]+):("(?:[^"\\]|\\.)*"|[^,]*)(?:,|$)/y;
  let match: RegExpExecArray | null;
  while (entry.lastIndex < text.length && (match = entry.exec(text)) !== null) {
    const raw = match[2]!;
    let value = raw;
    if (raw.startsWith('"')) {
      try {
        value = JSON.parse(raw) as string;
      } catch {
        // Not valid JSON after all: keep the raw text, which then matches nothing sane.
      }
    }
    entries.push([match[1]!, value]);
  }
  return entries;
}

/** IP addresses in canonical form; any other identity unchanged. */
export function canonicalIdentity(identity: string): string {
  const family = isIP(identity);
  if (family === 0) return identity;
  const host = new URL(`http://${family === 6 ? `[${identity}]` : identity}/`).hostname;
  return host.startsWith('[') ? host.slice(1, -1) : host;
}

function checkAllow(allow: readonly string[] | undefined): Set<string> | undefined {
  if (allow === undefined) return undefined;
  if (
    !Array.isArray(allow) ||
    allow.length === 0 ||
    allow.some((a) => typeof a !== 'string' || a === '')
  ) {
    throw new InvalidArgumentError(
      'allow',
      allow,
      'a non-empty list of peer identities (certificate CN, DNS, URI or IP names)',
    );
  }
  return new Set(allow.map(canonicalIdentity));
}

/** Checks `identities` (machine -> certificate identity) against the allow-list. */
function checkIdentityMap(
  identities: Readonly<Record<string, string>> | undefined,
  allowed: Set<string> | undefined,
): void {
  if (identities === undefined) return;
  const expected =
    'an object mapping machine names to the identity (certificate CN, DNS, URI or IP name) ' +
    'of each machine, every one of them in "allow"';
  if (typeof identities !== 'object' || identities === null || Array.isArray(identities)) {
    throw new InvalidArgumentError('identities', identities, expected);
  }
  if (allowed === undefined) {
    throw new InvalidArgumentError(
      'identities',
      identities,
      `${expected}; it binds callers to certificates, so it needs "allow" (mutual TLS)`,
    );
  }
  for (const [machine, identity] of Object.entries(identities)) {
    if (machine === '' || typeof identity !== 'string' || identity === '') {
      throw new InvalidArgumentError(`identities.${machine}`, identity, expected);
    }
    if (!allowed.has(canonicalIdentity(identity))) {
      throw new InvalidArgumentError(
        `identities.${machine}`,
        identity,
        'an identity in "allow": a certificate naming anything else is refused anyway',
      );
    }
  }
}

/** The machine a `disco-sender` names: a machine, or `<machine>/<server>` for a direct link. */
function senderMachine(sender: string): string {
  const slash = sender.indexOf('/');
  return slash < 0 ? sender : sender.slice(0, slash);
}

/** The first identity of `identities` in `allowed`, or undefined. */
function firstAllowed(identities: readonly string[], allowed: Set<string>): string | undefined {
  return identities.find((id) => allowed.has(id));
}

function listIdentities(identities: readonly string[]): string {
  return identities.length > 0 ? identities.join(', ') : 'no CN or DNS/URI/IP name';
}

/** Throws unless plaintext is acceptable for `host` (loopback, or `insecure: true`). */
function checkPlaintext(opts: GrpcSecurityOptions | undefined, host: string, side: string): void {
  if (isLoopbackHost(host) || opts?.insecure === true) return;
  throw new InvalidArgumentError(
    `plaintext gRPC ${side} host`,
    host,
    'a loopback address (127.0.0.0/8, ::1, localhost). Set "tls" ({ "ca", "cert", "key" }) ' +
      'to encrypt this link, or "insecure": true to allow plaintext on this address',
  );
}

// ---------------------------------------------------------------------------
// PEM files

function readPem(option: string, path: string | undefined, what: string): Buffer {
  if (typeof path !== 'string' || path === '') {
    throw new InvalidArgumentError(option, path, `the path of a PEM file with ${what}`);
  }
  try {
    return readFileSync(path);
  } catch (err) {
    const why = (err as NodeJS.ErrnoException).code ?? (err as Error).message;
    throw new InvalidArgumentError(option, path, `a readable PEM file with ${what} (${why})`);
  }
}

function parseCertificate(option: string, path: string, pem: Buffer): X509Certificate {
  try {
    if (!pem.includes('-----BEGIN CERTIFICATE-----')) throw new Error('no certificate');
    return new X509Certificate(pem);
  } catch {
    throw new InvalidArgumentError(option, path, 'a PEM file holding at least one certificate');
  }
}

function parseKey(option: string, path: string, pem: Buffer): KeyObject {
  try {
    return createPrivateKey(pem);
  } catch {
    throw new InvalidArgumentError(option, path, 'a PEM file holding an unencrypted private key');
  }
}

interface Identity {
  cert: Buffer;
  key: Buffer;
}

/** Reads `ca` (optional) and the cert/key pair, checking that the key belongs to the cert. */
function loadFiles(
  tls: NonNullable<GrpcSecurityOptions['tls']>,
  needIdentity: boolean,
): { ca: Buffer | null; own: Identity | null } {
  let ca: Buffer | null = null;
  if (tls.ca !== undefined) {
    ca = readPem('tls.ca', tls.ca, 'trusted CA certificates');
    parseCertificate('tls.ca', tls.ca, ca);
  }
  if (!needIdentity && tls.cert === undefined && tls.key === undefined) return { ca, own: null };
  if (tls.cert === undefined || tls.key === undefined) {
    const missing = tls.cert === undefined ? 'tls.cert' : 'tls.key';
    throw new InvalidArgumentError(
      missing,
      undefined,
      needIdentity
        ? 'the path of a PEM file: a server presents a certificate, so it needs both tls.cert and tls.key'
        : 'the path of a PEM file: a client certificate needs both tls.cert and tls.key',
    );
  }
  const cert = readPem('tls.cert', tls.cert, 'our certificate chain');
  const key = readPem('tls.key', tls.key, 'our private key');
  const leaf = parseCertificate('tls.cert', tls.cert, cert);
  if (!leaf.checkPrivateKey(parseKey('tls.key', tls.key, key))) {
    throw new InvalidArgumentError('tls.key', tls.key, `the private key of tls.cert ${tls.cert}`);
  }
  return { ca, own: { cert, key } };
}

// ---------------------------------------------------------------------------
// Server side

/**
 * Credentials for a gRPC server bound on `host`.
 * @throws {InvalidArgumentError} plaintext on a non-loopback host without `insecure`;
 *   `allow` without a required client certificate; `identities` without `allow`, or
 *   naming an identity outside it; a missing, unreadable or malformed PEM file; a key
 *   that does not match its certificate.
 */
export function serverCredentials(
  opts: GrpcSecurityOptions | undefined,
  host: string,
): ServerCredentials {
  const allowed = checkAllow(opts?.allow);
  checkIdentityMap(opts?.identities, allowed);
  const tls = opts?.tls;
  if (tls === undefined) {
    if (allowed !== undefined) throw allowNeedsMtls(opts!.allow, 'no "tls" is set');
    checkPlaintext(opts, host, 'server');
    return ServerCredentials.createInsecure();
  }
  const requireClientCert = tls.requireClientCert ?? tls.ca !== undefined;
  if (requireClientCert && tls.ca === undefined) {
    throw new InvalidArgumentError(
      'tls.ca',
      undefined,
      'the path of a PEM file with the CA that signs client certificates: ' +
        'tls.requireClientCert needs it to verify them',
    );
  }
  if (allowed !== undefined && !requireClientCert) {
    throw allowNeedsMtls(opts!.allow, 'tls.requireClientCert is false');
  }
  const { ca, own } = loadFiles(tls, true);
  return ServerCredentials.createSsl(
    ca,
    [{ cert_chain: own!.cert, private_key: own!.key }],
    requireClientCert,
  );
}

function allowNeedsMtls(allow: unknown, why: string): InvalidArgumentError {
  return new InvalidArgumentError(
    'allow',
    allow,
    `mutual TLS on the server, but ${why}: without a verified client certificate the ` +
      'identity of a caller cannot be known. Set "tls" with "ca", "cert" and "key" ' +
      '(requireClientCert defaults to true when "ca" is given), or remove "allow"',
  );
}

/**
 * Decides whether the peer of a server call may use it. With `allow` set, the
 * client's verified certificate must name an allowed identity; the reason of a
 * refusal names the peer's address and identities (the caller logs it and ends the
 * call with PERMISSION_DENIED). Without `allow`, every call that reached the
 * handler is admitted (TLS already verified any certificate); the identity is then
 * the certificate's first identity, or the peer address. With `identities` set, the
 * certificate must also name the identity of the machine `sender` (the call's
 * `disco-sender`) belongs to: an allowed certificate cannot speak for another machine.
 *
 * The certificate comes from `call.getAuthContext().sslPeerCertificate` (server
 * calls gained `getAuthContext` in grpc-js with gRFC L35; the pinned 1.14.7 has
 * it). grpc-js fills it only on a TLS connection whose peer certificate verified,
 * and returns `{}` otherwise.
 */
export function authorizeCall(
  call: ServerDuplexStream<Buffer, Buffer>,
  opts: GrpcSecurityOptions | undefined,
  sender: string,
): CallAuthorization {
  const peer = call.getPeer();
  const cert = call.getAuthContext()?.sslPeerCertificate;
  const identities = cert !== undefined ? peerIdentities(cert) : [];
  let result = decideCall(peer, cert !== undefined, identities, opts?.allow);
  if (result.ok && opts?.identities !== undefined) {
    result = decideSender(peer, sender, identities, opts.identities);
  }
  if (tracer.enabled) {
    tracer.log(result.ok ? `admitted ${peer} as ${result.identity}` : `refused: ${result.reason}`);
  }
  return result;
}

function decideCall(
  peer: string,
  hasCert: boolean,
  identities: readonly string[],
  allow: readonly string[] | undefined,
): CallAuthorization {
  const allowed = checkAllow(allow);
  if (allowed === undefined) return { ok: true, identity: identities[0] ?? peer };
  if (!hasCert) {
    return {
      ok: false,
      reason: `client ${peer} presented no verified certificate, so it cannot match the allow-list`,
    };
  }
  const identity = firstAllowed(identities, allowed);
  if (identity !== undefined) return { ok: true, identity };
  return {
    ok: false,
    reason:
      `client ${peer} is not allowed: its certificate names ${listIdentities(identities)}, ` +
      'none of which is in the allow-list',
  };
}

/** Whether a certificate naming `identities` may speak for the machine of `sender`. */
function decideSender(
  peer: string,
  sender: string,
  identities: readonly string[],
  bound: Readonly<Record<string, string>>,
): CallAuthorization {
  // `bound` was checked when the server's credentials were made (serverCredentials); the
  // sender is the caller's claim, so only an own key of `bound` counts.
  const machine = senderMachine(sender);
  const expected = Object.hasOwn(bound, machine) ? canonicalIdentity(bound[machine]!) : undefined;
  if (expected === undefined) {
    return {
      ok: false,
      reason:
        `client ${peer} claims to be ${JSON.stringify(sender)}, but machine ` +
        `${JSON.stringify(machine)} has no identity in "identities"`,
    };
  }
  if (identities.includes(expected)) return { ok: true, identity: expected };
  return {
    ok: false,
    reason:
      `client ${peer} claims to be ${JSON.stringify(sender)}, whose certificate must name ` +
      `${expected}, but its certificate names ${listIdentities(identities)}`,
  };
}

// ---------------------------------------------------------------------------
// Client side

/**
 * Credentials and channel options for dialling a server on `host`. With `allow`
 * set, the server's certificate must also name an allowed identity: the TLS
 * handshake fails with an Error naming the server's identities, and the call
 * fails with UNAVAILABLE.
 * @throws {InvalidArgumentError} plaintext on a non-loopback host without `insecure`;
 *   `allow` without `tls`; a missing, unreadable or malformed PEM file; `cert`
 *   without `key` or the reverse.
 */
export function channelCredentials(
  opts: GrpcSecurityOptions | undefined,
  host: string,
): { credentials: ChannelCredentials; options: ChannelOptions } {
  const allowed = checkAllow(opts?.allow);
  const tls = opts?.tls;
  if (tls === undefined) {
    if (allowed !== undefined) {
      throw new InvalidArgumentError(
        'allow',
        opts?.allow,
        'TLS on the client: a plaintext server shows no certificate to check. Set "tls" ' +
          '(at least "ca") or remove "allow"',
      );
    }
    checkPlaintext(opts, host, 'client');
    return { credentials: ChannelCredentials.createInsecure(), options: {} };
  }
  const { ca, own } = loadFiles(tls, false);
  const verify =
    allowed === undefined
      ? {}
      : {
          checkServerIdentity: (hostname: string, cert: PeerCertificate): Error | undefined =>
            checkServer(hostname, cert, allowed),
        };
  const credentials = ChannelCredentials.createSsl(ca, own?.key ?? null, own?.cert ?? null, verify);
  const options: ChannelOptions = {};
  if (tls.serverNameOverride !== undefined) {
    options['grpc.ssl_target_name_override'] = tls.serverNameOverride;
  }
  return { credentials, options };
}

/**
 * Node's `checkServerIdentity` option replaces the host-name check rather than
 * adding to it, so the usual check runs first and the allow-list after it.
 */
function checkServer(
  hostname: string,
  cert: PeerCertificate,
  allowed: Set<string>,
): Error | undefined {
  const mismatch = checkServerIdentity(hostname, cert);
  if (mismatch !== undefined) return mismatch;
  const identities = peerIdentities(cert);
  const identity = firstAllowed(identities, allowed);
  if (tracer.enabled) {
    tracer.log(
      identity !== undefined
        ? `accepted server ${hostname} as ${identity}`
        : `refused server ${hostname}: ${listIdentities(identities)}`,
    );
  }
  if (identity !== undefined) return undefined;
  return new Error(
    `server ${hostname} is not allowed: its certificate names ${listIdentities(identities)}, ` +
      'none of which is in the allow-list',
  );
}

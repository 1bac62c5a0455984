import { copyFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import { afterEach, describe, expect, it } from 'vitest';
import { rawBidiMethod } from '../../src/transports/grpc-service.js';
import { InvalidArgumentError } from '../../src/errors.js';
import {
  authorizeCall,
  channelCredentials,
  isLoopbackHost,
  peerIdentities,
  serverCredentials,
  type GrpcSecurityOptions,
} from '../../src/transports/grpc-security.js';

const TLS_DIR = fileURLToPath(new URL('../fixtures/tls/', import.meta.url));
const pem = (name: string): string => join(TLS_DIR, name);
const CALL_DEADLINE_MS = 5000;
/** The `disco-sender` the echo server checks a caller against, when `identities` is set. */
const SENDER = 'machine-a/s0';

const identity = (b: Buffer): Buffer => b;
const ECHO_PATH = '/disco.test.Echo/Echo';
const echoService: grpc.ServiceDefinition = { echo: rawBidiMethod(ECHO_PATH) };

/** What a test server saw: identities it admitted, reasons it refused with. */
interface ServerLog {
  admitted: string[];
  refused: string[];
  calls: number;
}

type EchoResult = { ok: true; reply: string } | { ok: false; code: number; details: string };

const cleanups: Array<() => void> = [];
afterEach(() => {
  for (const c of cleanups.splice(0)) c();
});

/** A bidi echo server on 127.0.0.1:0 guarded by `serverCredentials` and `authorizeCall`. */
async function startServer(opts: GrpcSecurityOptions | undefined): Promise<{
  port: number;
  log: ServerLog;
}> {
  const log: ServerLog = { admitted: [], refused: [], calls: 0 };
  const server = new grpc.Server();
  server.addService(echoService, {
    echo: (call: grpc.ServerDuplexStream<Buffer, Buffer>) => {
      log.calls++;
      const auth = authorizeCall(call, opts, SENDER);
      if (!auth.ok) {
        log.refused.push(auth.reason);
        call.emit('error', { code: grpc.status.PERMISSION_DENIED, details: auth.reason });
        return;
      }
      log.admitted.push(auth.identity);
      call.on('data', (chunk: Buffer) => call.write(chunk));
      call.on('end', () => call.end());
    },
  });
  const credentials = serverCredentials(opts, '127.0.0.1');
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', credentials, (err, p) => (err ? reject(err) : resolve(p))),
  );
  cleanups.push(() => server.forceShutdown());
  return { port, log };
}

/** One round trip of "ping" through the echo stream, with a deadline. */
function echo(port: number, opts: GrpcSecurityOptions | undefined): Promise<EchoResult> {
  const { credentials, options } = channelCredentials(opts, '127.0.0.1');
  const client = new grpc.Client(`127.0.0.1:${port}`, credentials, options);
  cleanups.push(() => client.close());
  return new Promise((resolve) => {
    const call = client.makeBidiStreamRequest(ECHO_PATH, identity, identity, new grpc.Metadata(), {
      deadline: Date.now() + CALL_DEADLINE_MS,
    });
    const chunks: Buffer[] = [];
    call.on('data', (chunk: Buffer) => chunks.push(chunk));
    call.on('error', (err: grpc.ServiceError) =>
      resolve({ ok: false, code: err.code, details: err.details }),
    );
    call.on('status', (s: grpc.StatusObject) => {
      if (s.code === grpc.status.OK) resolve({ ok: true, reply: Buffer.concat(chunks).toString() });
    });
    call.write(Buffer.from('ping'));
    call.end();
  });
}

const SERVER_TLS = { cert: pem('server.pem'), key: pem('server.key') };
const MTLS_SERVER = { tls: { ca: pem('ca.pem'), ...SERVER_TLS } };
const machine = (name: string) => ({
  ca: pem('ca.pem'),
  cert: pem(`${name}.pem`),
  key: pem(`${name}.key`),
});

describe('gRPC TLS', () => {
  it('carries a call over TLS when the client trusts the server CA', async () => {
    const { port, log } = await startServer({ tls: SERVER_TLS });
    expect(await echo(port, { tls: { ca: pem('ca.pem') } })).toEqual({ ok: true, reply: 'ping' });
    // No client certificate: the identity is the peer address.
    expect(log.admitted).toHaveLength(1);
    expect(log.admitted[0]).toMatch(/^127\.0\.0\.1:\d+$/);
  });

  it('refuses a server whose certificate comes from an untrusted CA', async () => {
    const { port, log } = await startServer({
      tls: { cert: pem('server-untrusted.pem'), key: pem('server-untrusted.key') },
    });
    const r = await echo(port, { tls: { ca: pem('ca.pem') } });
    expect(r).toMatchObject({ ok: false, code: grpc.status.UNAVAILABLE });
    expect(r.ok === false && r.details).toMatch(/unable to (get local issuer|verify)/i);
    expect(log.calls).toBe(0);
  });

  it('refuses a server outside the client allow-list, naming its identities', async () => {
    const { port, log } = await startServer({ tls: SERVER_TLS });
    const r = await echo(port, { tls: { ca: pem('ca.pem') }, allow: ['machine-a'] });
    expect(r).toMatchObject({ ok: false, code: grpc.status.UNAVAILABLE });
    expect(r.ok === false && r.details).toContain(
      'server 127.0.0.1 is not allowed: its certificate names disco-server, localhost, ' +
        '127.0.0.1, ::1, spiffe://disco-test/server',
    );
    expect(log.calls).toBe(0);
  });

  it('accepts a server named in the client allow-list by CN, URI or IP', async () => {
    const { port } = await startServer({ tls: SERVER_TLS });
    for (const name of ['disco-server', 'spiffe://disco-test/server', '0:0:0:0:0:0:0:1']) {
      const r = await echo(port, { tls: { ca: pem('ca.pem') }, allow: [name] });
      expect(r, name).toEqual({ ok: true, reply: 'ping' });
    }
  });

  it('keeps the host-name check when an allow-list is set', async () => {
    // The certificate is allowed, but it does not name the host being dialled.
    const { port, log } = await startServer({
      tls: { cert: pem('machine-a.pem'), key: pem('machine-a.key') },
    });
    const r = await echo(port, { tls: { ca: pem('ca.pem') }, allow: ['machine-a'] });
    expect(r).toMatchObject({ ok: false, code: grpc.status.UNAVAILABLE });
    expect(r.ok === false && r.details).toMatch(/IP: 127\.0\.0\.1 is not in the cert's list/);
    expect(log.calls).toBe(0);
  });

  it('verifies the server against serverNameOverride instead of the host', async () => {
    const { port } = await startServer({
      tls: { cert: pem('machine-a.pem'), key: pem('machine-a.key') },
    });
    const ok = await echo(port, {
      tls: { ca: pem('ca.pem'), serverNameOverride: 'machine-a' },
      allow: ['machine-a'],
    });
    expect(ok).toEqual({ ok: true, reply: 'ping' });
    const wrong = await echo(port, { tls: { ca: pem('ca.pem'), serverNameOverride: 'machine-b' } });
    expect(wrong).toMatchObject({ ok: false, code: grpc.status.UNAVAILABLE });
    expect(wrong.ok === false && wrong.details).toMatch(/Host: machine-b\. is not in the cert's/);
  });
});

describe('gRPC mutual TLS and the server allow-list', () => {
  it('refuses a client certificate from an untrusted CA during the handshake', async () => {
    // client-untrusted says CN=machine-a, which is allowed: only the CA check can refuse it.
    const { port, log } = await startServer({ ...MTLS_SERVER, allow: ['machine-a'] });
    const r = await echo(port, {
      tls: {
        ca: pem('ca.pem'),
        cert: pem('client-untrusted.pem'),
        key: pem('client-untrusted.key'),
      },
    });
    expect(r).toMatchObject({ ok: false, code: grpc.status.UNAVAILABLE });
    expect(log.calls).toBe(0);
  });

  it('refuses a client without a certificate when mTLS is on', async () => {
    const { port, log } = await startServer(MTLS_SERVER);
    const r = await echo(port, { tls: { ca: pem('ca.pem') } });
    expect(r).toMatchObject({ ok: false, code: grpc.status.UNAVAILABLE });
    expect(r.ok === false && r.details).toMatch(/alert certificate required/);
    expect(log.calls).toBe(0);
  });

  it('ends a trusted client outside the allow-list with PERMISSION_DENIED naming it', async () => {
    const { port, log } = await startServer({ ...MTLS_SERVER, allow: ['machine-a'] });
    const r = await echo(port, { tls: machine('machine-b') });
    expect(r).toMatchObject({ ok: false, code: grpc.status.PERMISSION_DENIED });
    expect(r.ok === false && r.details).toMatch(
      /^client 127\.0\.0\.1:\d+ is not allowed: its certificate names machine-b, none of which is in the allow-list$/,
    );
    expect(log.refused).toEqual([(r as { details: string }).details]);
    expect(log.admitted).toEqual([]);
  });

  it('admits a client in the allow-list and reports the matching identity', async () => {
    const { port, log } = await startServer({ ...MTLS_SERVER, allow: ['machine-a'] });
    expect(await echo(port, { tls: machine('machine-a') })).toEqual({ ok: true, reply: 'ping' });
    const byUri = await startServer({ ...MTLS_SERVER, allow: ['spiffe://disco-test/machine-a'] });
    expect(await echo(byUri.port, { tls: machine('machine-a') })).toEqual({
      ok: true,
      reply: 'ping',
    });
    expect([...log.admitted, ...byUri.log.admitted]).toEqual([
      'machine-a',
      'spiffe://disco-test/machine-a',
    ]);
  });

  it('binds the machine a caller claims to be to the identity its certificate names', async () => {
    const both = ['machine-a', 'machine-b'];
    const identities = { 'machine-a': 'machine-a', 'machine-b': 'machine-b' };
    const { port, log } = await startServer({ ...MTLS_SERVER, allow: both, identities });
    // SENDER claims machine-a: machine-a's certificate may, machine-b's (allowed too) may not.
    expect(await echo(port, { tls: machine('machine-a') })).toEqual({ ok: true, reply: 'ping' });
    const r = await echo(port, { tls: machine('machine-b') });
    expect(r).toMatchObject({ ok: false, code: grpc.status.PERMISSION_DENIED });
    expect(r.ok === false && r.details).toMatch(
      /^client 127\.0\.0\.1:\d+ claims to be "machine-a\/s0", whose certificate must name machine-a, but its certificate names machine-b$/,
    );
    expect(log.admitted).toEqual(['machine-a']);
    // Without the binding the same certificate gets through: the allow-list alone admits it.
    const unbound = await startServer({ ...MTLS_SERVER, allow: both });
    expect(await echo(unbound.port, { tls: machine('machine-b') })).toEqual({
      ok: true,
      reply: 'ping',
    });
  });

  it('refuses a caller whose machine has no identity when callers are bound', async () => {
    const { port, log } = await startServer({
      ...MTLS_SERVER,
      allow: ['machine-a', 'machine-b'],
      identities: { 'machine-b': 'machine-b' },
    });
    const r = await echo(port, { tls: machine('machine-a') });
    expect(r).toMatchObject({ ok: false, code: grpc.status.PERMISSION_DENIED });
    expect(r.ok === false && r.details).toMatch(
      /claims to be "machine-a\/s0", but machine "machine-a" has no identity in "identities"$/,
    );
    expect(log.admitted).toEqual([]);
  });

  it('admits any trusted client under mTLS without an allow-list, named by its CN', async () => {
    const { port, log } = await startServer(MTLS_SERVER);
    expect(await echo(port, { tls: machine('machine-b') })).toEqual({ ok: true, reply: 'ping' });
    expect(log.admitted).toEqual(['machine-b']);
  });

  it('reads the PEM files once, when the credentials are made', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'disco-tls-'));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    for (const f of ['ca.pem', 'server.pem', 'server.key', 'machine-a.pem', 'machine-a.key']) {
      copyFileSync(pem(f), join(dir, f));
    }
    const inDir = (f: string) => join(dir, f);
    const { port } = await startServer({
      tls: { ca: inDir('ca.pem'), cert: inDir('server.pem'), key: inDir('server.key') },
      allow: ['machine-a'],
    });
    const client = channelCredentials(
      { tls: { ca: inDir('ca.pem'), cert: inDir('machine-a.pem'), key: inDir('machine-a.key') } },
      '127.0.0.1',
    );
    rmSync(dir, { recursive: true, force: true });
    const c = new grpc.Client(`127.0.0.1:${port}`, client.credentials, client.options);
    cleanups.push(() => c.close());
    const reply = await new Promise<string>((resolve, reject) => {
      const call = c.makeBidiStreamRequest(ECHO_PATH, identity, identity, new grpc.Metadata(), {
        deadline: Date.now() + CALL_DEADLINE_MS,
      });
      call.on('data', (b: Buffer) => resolve(b.toString()));
      call.on('error', reject);
      call.write(Buffer.from('after delete'));
      call.end();
    });
    expect(reply).toBe('after delete');
  });
});

describe('plaintext', () => {
  it('carries a call in plaintext on loopback without any option', async () => {
    const { port, log } = await startServer(undefined);
    expect(await echo(port, undefined)).toEqual({ ok: true, reply: 'ping' });
    expect(log.admitted[0]).toMatch(/^127\.0\.0\.1:\d+$/);
  });

  it.each(['10.1.2.3', '0.0.0.0', '::', 'node7.example', '[2001:db8::1]:7000'])(
    'refuses plaintext on %s without insecure, on both sides',
    (host) => {
      for (const [side, make] of [
        ['server', () => serverCredentials({}, host)],
        ['client', () => channelCredentials(undefined, host)],
      ] as const) {
        let err: unknown;
        try {
          make();
        } catch (e) {
          err = e;
        }
        expect(err).toBeInstanceOf(InvalidArgumentError);
        const message = (err as Error).message;
        expect(message).toContain(`invalid plaintext gRPC ${side} host ${JSON.stringify(host)}`);
        expect(message).toContain('"insecure": true');
        expect(message).toContain('Set "tls"');
      }
    },
  );

  it('allows plaintext on a non-loopback host with insecure: true', () => {
    expect(serverCredentials({ insecure: true }, '0.0.0.0')._isSecure()).toBe(false);
    expect(channelCredentials({ insecure: true }, '10.1.2.3').credentials._isSecure()).toBe(false);
  });

  it('tells loopback hosts from the rest', () => {
    for (const h of [
      '127.0.0.1',
      '127.8.9.10',
      '::1',
      '[::1]:50051',
      '127.0.0.1:80',
      'localhost',
    ]) {
      expect(isLoopbackHost(h), h).toBe(true);
    }
    for (const h of ['10.0.0.1', '0.0.0.0', '::', 'localhost.example', '128.0.0.1', '::2']) {
      expect(isLoopbackHost(h), h).toBe(false);
    }
  });
});

describe('configuration errors', () => {
  const thrown = (f: () => unknown): Error => {
    try {
      f();
    } catch (e) {
      return e as Error;
    }
    throw new Error('did not throw');
  };

  it('names the option and the path of a missing PEM file', () => {
    const missing = join(TLS_DIR, 'no-such.pem');
    const ca = thrown(() =>
      serverCredentials({ tls: { ...SERVER_TLS, ca: missing } }, '127.0.0.1'),
    );
    expect(ca).toBeInstanceOf(InvalidArgumentError);
    expect(ca.message).toBe(
      `invalid tls.ca ${JSON.stringify(missing)}: expected a readable PEM file with trusted CA certificates (ENOENT)`,
    );
    const key = thrown(() =>
      channelCredentials({ tls: { ...machine('machine-a'), key: missing } }, '127.0.0.1'),
    );
    expect(key.message).toContain(`invalid tls.key ${JSON.stringify(missing)}`);
  });

  it('refuses a file that holds no certificate, and a key that is not the certificate key', () => {
    const notCert = thrown(() =>
      serverCredentials({ tls: { ...SERVER_TLS, ca: pem('server.key') } }, '127.0.0.1'),
    );
    expect(notCert.message).toContain('invalid tls.ca');
    expect(notCert.message).toContain('at least one certificate');
    const wrongKey = thrown(() =>
      serverCredentials({ tls: { cert: pem('server.pem'), key: pem('machine-a.key') } }, '::1'),
    );
    expect(wrongKey.message).toContain(`the private key of tls.cert ${pem('server.pem')}`);
  });

  it('refuses an allow-list the server cannot check without mTLS', () => {
    for (const opts of [
      { allow: ['machine-a'] },
      { allow: ['machine-a'], tls: SERVER_TLS },
      { allow: ['machine-a'], tls: { ...MTLS_SERVER.tls, requireClientCert: false } },
    ]) {
      const err = thrown(() => serverCredentials(opts, '127.0.0.1'));
      expect(err).toBeInstanceOf(InvalidArgumentError);
      expect(err.message).toMatch(
        /^invalid allow \["machine-a"\]: expected mutual TLS on the server/,
      );
      expect(err.message).toContain('identity of a caller cannot be known');
    }
    const client = thrown(() => channelCredentials({ allow: ['disco-server'] }, '127.0.0.1'));
    expect(client.message).toContain('a plaintext server shows no certificate to check');
  });

  it('refuses identities without an allow-list, or naming an identity outside it', () => {
    const noAllow = thrown(() =>
      serverCredentials({ ...MTLS_SERVER, identities: { m1: 'machine-a' } }, '127.0.0.1'),
    );
    expect(noAllow).toBeInstanceOf(InvalidArgumentError);
    expect(noAllow.message).toMatch(/^invalid identities .*it binds callers to certificates/);
    const outside = thrown(() =>
      serverCredentials(
        { ...MTLS_SERVER, allow: ['machine-a'], identities: { m1: 'machine-a', m2: 'machine-b' } },
        '127.0.0.1',
      ),
    );
    expect(outside.message).toMatch(
      /^invalid identities\.m2 "machine-b": expected an identity in "allow"/,
    );
  });

  it('refuses requireClientCert without a CA, and a client cert without its key', () => {
    const noCa = thrown(() =>
      serverCredentials({ tls: { ...SERVER_TLS, requireClientCert: true } }, '127.0.0.1'),
    );
    expect(noCa.message).toContain('tls.requireClientCert needs it');
    const noKey = thrown(() =>
      channelCredentials({ tls: { ca: pem('ca.pem'), cert: pem('machine-a.pem') } }, '127.0.0.1'),
    );
    expect(noKey.message).toContain('invalid tls.key undefined');
  });
});

describe('peerIdentities', () => {
  it('lists CN, then DNS, URI and IP names, IPs in canonical form', () => {
    expect(
      peerIdentities({
        subject: { CN: 'disco-server' } as never,
        subjectaltname:
          'DNS:localhost, IP Address:127.0.0.1, IP Address:0:0:0:0:0:0:0:1, ' +
          'email:x@example.com, URI:spiffe://disco-test/server, DNS:localhost',
      }),
    ).toEqual(['disco-server', 'localhost', '127.0.0.1', '::1', 'spiffe://disco-test/server']);
  });

  it('reads quoted names whole, so a comma cannot forge a second entry', () => {
    expect(
      peerIdentities({
        subject: { CN: ['a', 'b'] } as never,
        subjectaltname: 'DNS:"evil, DNS:machine-a", URI:x',
      }),
    ).toEqual(['a', 'b', 'evil, DNS:machine-a', 'x']);
  });
});

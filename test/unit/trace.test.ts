import { afterEach, describe, expect, it, vi } from 'vitest';

// DISCO_TRACE is read when the module loads, so each case loads a fresh copy.
async function traceOutput(setting: string): Promise<string> {
  vi.resetModules();
  process.env.DISCO_TRACE = setting;
  const lines: string[] = [];
  const spy = vi.spyOn(process.stderr, 'write').mockImplementation((chunk) => {
    lines.push(String(chunk));
    return true;
  });
  try {
    const { Server } = await import('../../src/runtime/server.js');
    const s = Server.standalone({ nodes: 2, simprocs: ['p'] });
    s.controller('n0').sendEvent('n1/p', 1, 1);
    await s.close();
  } finally {
    spy.mockRestore();
  }
  return lines.join('');
}

describe('tracing', () => {
  afterEach(() => {
    delete process.env.DISCO_TRACE;
  });

  it('is silent by default', async () => {
    expect(await traceOutput('')).not.toMatch(/disco:/);
  });

  it('logs routing decisions when DISCO_TRACE names the module', async () => {
    expect(await traceOutput('router')).toMatch(/disco:router route repid=0 node=n1 -> inprocess/);
    expect(await traceOutput('all')).toMatch(/disco:router/);
    expect(await traceOutput('inprocess')).not.toMatch(/disco:router/);
  });
});

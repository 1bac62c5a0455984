import { describe, expect, it } from 'vitest';
import { ResendBuffer } from '../../../src/transports/resend-buffer.js';

function filled(n: number): ResendBuffer {
  const b = new ResendBuffer();
  for (let seq = 1; seq <= n; seq++) b.push(seq, Buffer.alloc(10 * seq), seq);
  return b;
}

function drain(b: ResendBuffer): number[] {
  const out: number[] = [];
  for (let f = b.next(); f !== null; f = b.next()) out.push(f.frame.length / 10);
  return out;
}

describe('ResendBuffer', () => {
  it('hands frames out once per call, in order, and marks rewritten ones as resends', () => {
    const b = filled(3);
    expect(b.caughtUp).toBe(false);
    expect(drain(b)).toEqual([1, 2, 3]);
    expect(b.caughtUp).toBe(true);
    b.rewind();
    const again = b.next()!;
    expect(again.resend).toBe(true);
    expect(drain(b)).toEqual([2, 3]);
  });

  it('trims cumulatively, counts bytes and messages, and resends only what is left', () => {
    const b = filled(4);
    drain(b);
    expect(b.trim(2)).toBe(1 + 2);
    expect(b.trim(1)).toBe(0); // an older ack changes nothing
    expect(b).toMatchObject({ length: 2, bytes: 70, messages: 7 });
    b.rewind();
    expect(drain(b)).toEqual([3, 4]);
    expect(b.trim(4)).toBe(7);
    expect(b).toMatchObject({ length: 0, bytes: 0, messages: 0, caughtUp: true });
  });

  it('keeps the cursor on the right frame when a trim passes it and after compaction', () => {
    const b = filled(3000);
    for (let i = 0; i < 10; i++) b.next();
    b.trim(2000); // beyond the cursor: the next frame to write is 2001
    expect(b.next()!.frame.length).toBe(20010);
    b.rewind();
    expect(b.next()!.frame.length).toBe(20010);
    expect(b.length).toBe(1000);
  });

  it('hands each acknowledged frame to release once, and none that is still held or cleared', () => {
    const released: number[] = [];
    const b = new ResendBuffer((frame) => released.push(frame.length / 10));
    for (let seq = 1; seq <= 6; seq++) b.push(seq, Buffer.alloc(10 * seq), 1);
    drain(b);
    b.trim(2);
    expect(released).toEqual([1, 2]);
    b.trim(2); // the same ack again
    b.trim(1);
    expect(released).toEqual([1, 2]);
    b.rewind();
    b.trim(4);
    expect(released).toEqual([1, 2, 3, 4]);
    b.clear(); // a failed link: frames 5 and 6 go to the garbage collector, not to reuse
    expect(released).toEqual([1, 2, 3, 4]);
  });
});

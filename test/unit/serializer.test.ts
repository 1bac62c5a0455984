import { describe, expect, it } from 'vitest';
import { StructuredCloneSerializer } from '../../src/serializer.js';

describe('StructuredCloneSerializer', () => {
  const s = new StructuredCloneSerializer();
  it.each([
    ['object', { a: 1, b: [1, 'two', null], c: { d: true } }],
    [
      'Map',
      new Map<unknown, unknown>([
        ['k', 1],
        [2, { x: 3 }],
      ]),
    ],
    ['Set', new Set([1, 'a'])],
    ['Date', new Date('2020-01-02T03:04:05Z')],
    ['bigint', 2n ** 100n],
    ['Float64Array', new Float64Array([0.5, -1e300])],
    ['Int32Array', new Int32Array([-1, 2 ** 31 - 1])],
    ['undefined', undefined],
    ['string', 'héllo'],
    ['NaN', NaN],
  ])('round-trips %s', (_name, value) => {
    expect(s.deserialize(s.serialize(value))).toEqual(value);
  });

  it('throws on values structured clone refuses', () => {
    expect(() => s.serialize(() => 1)).toThrow();
    expect(() => s.serialize(Symbol('x'))).toThrow();
  });
});

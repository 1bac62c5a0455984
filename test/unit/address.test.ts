import { describe, expect, it } from 'vitest';
import { parseTarget, nameProblem } from '../../src/address.js';
import { InvalidTargetError } from '../../src/errors.js';

const simprocs = new Set(['physics']);

describe('parseTarget', () => {
  it('splits node and simproc and resolves self', () => {
    expect(parseTarget('n7/physics', 'me', simprocs)).toEqual({ node: 'n7', simproc: 'physics' });
    expect(parseTarget('self/physics', 'me', simprocs)).toEqual({ node: 'me', simproc: 'physics' });
  });

  it.each([
    ['physics', /missing "\/"/],
    ['a/b/physics', /more than one/],
    ['/physics', /empty node/],
    ['n1/', /empty simproc/],
    ['n1/chemistry', /unknown simproc "chemistry"; known simprocs: physics/],
    [`${'x'.repeat(300)}/physics`, /limited to 256/],
  ])('rejects %j', (target, message) => {
    expect(() => parseTarget(target, 'me', simprocs)).toThrow(InvalidTargetError);
    expect(() => parseTarget(target, 'me', simprocs)).toThrow(message);
  });

  it('carries the offending target on the error', () => {
    try {
      parseTarget('oops', 'me', simprocs);
    } catch (err) {
      expect((err as InvalidTargetError).target).toBe('oops');
      expect((err as InvalidTargetError).code).toBe('ERR_INVALID_TARGET');
      return;
    }
    throw new Error('expected a throw');
  });

  it('checks names', () => {
    expect(nameProblem('ok')).toBeUndefined();
    expect(nameProblem('')).toMatch(/empty/);
    expect(nameProblem('a/b')).toMatch(/"\/"/);
    expect(nameProblem(3)).toMatch(/string/);
  });
});

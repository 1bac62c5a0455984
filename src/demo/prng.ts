/**
 * A small seeded pseudo-random generator for the demos (xoshiro128** on 32-bit
 * integer arithmetic), so that a simulation run is reproducible from its seed.
 *
 * Invariants: the same (seed, stream) pair always yields the same sequence on
 * every platform (only `Math.imul`, shifts and `>>> 0` are used); the state is
 * never all zero, which is the generator's one fixed point.
 *
 * Not for cryptography. Called by the PHOLD model once per random draw.
 */

/** 2^32, to scale a 32-bit integer into [0, 1). */
const TWO_POW_32 = 4294967296;
/** Odd constant (the golden ratio as a 32-bit fraction) that separates seed streams. */
const GOLDEN_RATIO_32 = 0x9e3779b9;

/** Murmur3-style finaliser: spreads every input bit over the whole 32-bit output. */
function mix32(value: number): number {
  let z = (value + GOLDEN_RATIO_32) | 0;
  z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
  z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
  return (z ^ (z >>> 16)) >>> 0;
}

function rotl(x: number, k: number): number {
  return (x << k) | (x >>> (32 - k));
}

/** Reproducible pseudo-random numbers; see the file header. */
export class Prng {
  private s0: number;
  private s1: number;
  private s2: number;
  private s3: number;

  /**
   * @param seed - any 32-bit unsigned integer.
   * @param streams - further integers (replication, node index, ...) that select an
   *   independent-looking sequence for the same seed.
   */
  constructor(seed: number, ...streams: number[]) {
    let h = mix32(seed >>> 0);
    for (const s of streams) h = mix32(h ^ Math.imul(s >>> 0, GOLDEN_RATIO_32));
    this.s0 = mix32(h);
    this.s1 = mix32(this.s0);
    this.s2 = mix32(this.s1);
    this.s3 = mix32(this.s2);
    if ((this.s0 | this.s1 | this.s2 | this.s3) === 0) this.s0 = 1;
  }

  /** The next 32-bit unsigned integer. */
  nextUint32(): number {
    const result = Math.imul(rotl(Math.imul(this.s1, 5), 7), 9) >>> 0;
    const t = this.s1 << 9;
    this.s2 ^= this.s0;
    this.s3 ^= this.s1;
    this.s1 ^= this.s2;
    this.s0 ^= this.s3;
    this.s2 ^= t;
    this.s3 = rotl(this.s3, 11);
    return result;
  }

  /** Uniform in [0, 1). */
  next(): number {
    return this.nextUint32() / TWO_POW_32;
  }

  /** Uniform integer in [0, n), for a positive integer n below 2^32. */
  below(n: number): number {
    return Math.floor(this.next() * n);
  }

  /** Exponentially distributed with the given mean (0 gives 0). */
  exponential(mean: number): number {
    // 1 - u lies in (0, 1], so the logarithm is finite.
    return -mean * Math.log(1 - this.next());
  }
}

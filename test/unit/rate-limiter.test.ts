// The limits that pace retries: a misconfigured limiter is refused at start, never a queue that
// spins (a 0 ms backoff) or stalls (a bucket that never refills).
import assert from 'node:assert/strict';
import { ItemExponentialBackoff, TokenBucket } from '../../src/controller/rate-limiter.ts';
import { FakeClock } from '../support/fake-clock.ts';

describe('rate limiters', () => {
  it('a backoff needs 0 < base <= max', () => {
    for (const [base, max] of [
      [0, 10],
      [-1, 10],
      [10, 5],
      [Number.NaN, 10],
      [10, Number.NaN],
    ] as const) {
      assert.throws(
        () => new ItemExponentialBackoff(base, max),
        (error: unknown) =>
          error instanceof RangeError && error.message.includes(`base=${base} max=${max}`),
        `${base}/${max}`,
      );
    }
    assert.doesNotThrow(() => new ItemExponentialBackoff(10, 10));
    assert.doesNotThrow(() => new ItemExponentialBackoff(0.5, 10));
  });

  it('a token bucket needs qps > 0 and a burst of at least 1', () => {
    for (const [qps, burst] of [
      [0, 5],
      [-1, 5],
      [10, 0.5],
      [Number.NaN, 5],
      [10, Number.NaN],
    ] as const) {
      assert.throws(
        () => new TokenBucket(qps, burst, new FakeClock(5_000)),
        (error: unknown) =>
          error instanceof RangeError && error.message.includes(`${qps}/${burst}`),
        `${qps}/${burst}`,
      );
    }
    assert.doesNotThrow(() => new TokenBucket(0.5, 1, new FakeClock(5_000)));
  });

  it('a token bucket refills at qps tokens a second, fractions included', () => {
    const clock = new FakeClock(5_000);
    const bucket = new TokenBucket(10, 1, clock);
    assert.equal(bucket.when('a'), 0);
    assert.equal(bucket.when('b'), 100, 'one token owed at 10/s: 100 ms');
    clock.time += 150;
    // 1.5 tokens refilled, capped at the burst of 1, minus one owed and one taken: 0.5 owed.
    assert.equal(bucket.when('c'), 50);
  });
});

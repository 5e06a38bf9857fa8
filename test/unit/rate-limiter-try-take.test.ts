// TokenBucket.tryTake, as the stuck-Pod recovery uses it: a pass either takes a token now or is
// skipped, and a skipped pass leaves no debt behind.
import assert from 'node:assert/strict';
import { TokenBucket } from '../../src/controller/rate-limiter.ts';
import { FakeClock } from '../support/fake-clock.ts';

describe('TokenBucket.tryTake', () => {
  it('lets a burst through, then refuses until a whole token has refilled', () => {
    const clock = new FakeClock(5_000);
    const bucket = new TokenBucket(2, 3, clock); // 2 per second, 3 at once
    assert.deepEqual(
      [bucket.tryTake(), bucket.tryTake(), bucket.tryTake(), bucket.tryTake()],
      [true, true, true, false],
    );
    clock.time += 499; // 0.998 of a token
    assert.equal(bucket.tryTake(), false);
    clock.time += 1; // one token
    assert.deepEqual([bucket.tryTake(), bucket.tryTake()], [true, false]);
  });

  it('refused passes leave no debt: the next token comes at its usual time', () => {
    const clock = new FakeClock(5_000);
    const bucket = new TokenBucket(1, 1, clock);
    assert.equal(bucket.tryTake(), true);
    for (let i = 0; i < 100; i++) assert.equal(bucket.tryTake(), false);
    clock.time += 1_000;
    assert.equal(bucket.tryTake(), true);
    // and a caller using when() after it waits one token's time, not 100
    assert.equal(bucket.when('k'), 1_000);
  });
});

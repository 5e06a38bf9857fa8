// Retry delays for the work queue, after client-go's util/workqueue/default_rate_limiters.go:
// a per-key exponential backoff and an overall token bucket, combined by taking the larger.
import { type Clock, systemClock } from '../clock.ts';

export interface RateLimiter {
  /** How long `key` should wait before its next attempt; counts one more failure. */
  when(key: string): number;
  /** The key succeeded (or was given up on): stop tracking it. */
  forget(key: string): void;
  /** Failures counted for `key` since it was last forgotten. */
  numRequeues(key: string): number;
}

/** base * 2^failures, capped at max. */
export class ItemExponentialBackoff implements RateLimiter {
  readonly baseMs: number;
  readonly maxMs: number;
  readonly #failures = new Map<string, number>();

  constructor(baseMs: number, maxMs: number) {
    if (!(baseMs > 0) || !(maxMs >= baseMs)) {
      throw new RangeError(`backoff needs 0 < base <= max, got base=${baseMs} max=${maxMs}`);
    }
    this.baseMs = baseMs;
    this.maxMs = maxMs;
  }

  when(key: string): number {
    const failures = this.#failures.get(key) ?? 0;
    this.#failures.set(key, failures + 1);
    // 2^1100 is Infinity; the comparison below also catches that.
    const delay = this.baseMs * 2 ** failures;
    return Math.min(delay, this.maxMs);
  }

  forget(key: string): void {
    this.#failures.delete(key);
  }

  numRequeues(key: string): number {
    return this.#failures.get(key) ?? 0;
  }
}

/**
 * A token bucket shared by all keys (golang.org/x/time/rate semantics): `burst` tokens,
 * refilled at `qps`; each call takes a token, going into debt when none is left, and the
 * debt is the delay. It bounds the overall retry rate, not the first attempt of a key.
 */
export class TokenBucket implements RateLimiter {
  readonly qps: number;
  readonly burst: number;
  readonly #clock: Clock;
  #tokens: number;
  #last: number;

  constructor(qps: number, burst: number, clock: Clock = systemClock) {
    if (!(qps > 0) || !(burst >= 1)) {
      throw new RangeError(`token bucket needs qps > 0 and burst >= 1, got ${qps}/${burst}`);
    }
    this.qps = qps;
    this.burst = burst;
    this.#clock = clock;
    this.#tokens = burst;
    this.#last = clock.now();
  }

  when(_key: string): number {
    this.#refill();
    this.#tokens -= 1;
    return this.#tokens >= 0 ? 0 : (-this.#tokens / this.qps) * 1000;
  }

  /**
   * Takes a token if one is there now, and nothing otherwise: for a caller that skips the work
   * when told to wait (when() reserves the token, so skipping after it leaves a debt that grows
   * with every skipped call and never lets anything through).
   */
  tryTake(): boolean {
    this.#refill();
    if (this.#tokens < 1) return false;
    this.#tokens -= 1;
    return true;
  }

  #refill(): void {
    const now = this.#clock.now();
    const elapsed = Math.max(0, now - this.#last);
    this.#tokens = Math.min(this.burst, this.#tokens + (elapsed / 1000) * this.qps);
    this.#last = now;
  }

  forget(_key: string): void {}

  numRequeues(_key: string): number {
    return 0;
  }
}

/** The longest delay any of the limiters asks for. */
export class MaxOfRateLimiter implements RateLimiter {
  readonly #limiters: readonly RateLimiter[];

  constructor(...limiters: RateLimiter[]) {
    this.#limiters = limiters;
  }

  when(key: string): number {
    let delay = 0;
    for (const limiter of this.#limiters) delay = Math.max(delay, limiter.when(key));
    return delay;
  }

  forget(key: string): void {
    for (const limiter of this.#limiters) limiter.forget(key);
  }

  numRequeues(key: string): number {
    let n = 0;
    for (const limiter of this.#limiters) n = Math.max(n, limiter.numRequeues(key));
    return n;
  }
}

export interface ControllerRateLimiterOptions {
  /** First retry delay of a key (default 5 ms); doubles per failure. */
  baseDelayMs?: number;
  /** Ceiling of a key's retry delay (default 1000 s). */
  maxDelayMs?: number;
  /** Overall retry rate (default 10 per second)... */
  qps?: number;
  /** ...after a burst of this many (default 100). */
  burst?: number;
  clock?: Clock;
}

/** client-go's DefaultControllerRateLimiter, with its numbers as defaults. */
export function controllerRateLimiter(opts: ControllerRateLimiterOptions = {}): RateLimiter {
  return new MaxOfRateLimiter(
    new ItemExponentialBackoff(opts.baseDelayMs ?? 5, opts.maxDelayMs ?? 1_000_000),
    new TokenBucket(opts.qps ?? 10, opts.burst ?? 100, opts.clock),
  );
}

import assert from 'node:assert/strict';
import fc from 'fast-check';
import type { CloudToken } from '../../src/credentials/cloud/cloud-token.ts';
import { CredentialError } from '../../src/credentials/errors.ts';
import {
  backoffMs,
  jitterFactor,
  refreshAt,
  TokenCache,
  type TokenCacheKey,
  type TokenFetcher,
} from '../../src/credentials/token-cache.ts';

const SECOND = 1000;
const MINUTE = 60 * SECOND;
const HOUR = 60 * MINUTE;
const T0 = new Date('2030-01-01T00:00:00Z');
const key: TokenCacheKey = {
  credentialUid: 'uid-acme',
  index: 0,
  server: '123456789012.dkr.ecr.eu-west-1.amazonaws.com',
};

const at = (ms: number): Date => new Date(T0.getTime() + ms);

/** A fetcher that hands out numbered tokens living `lifetimeMs` from the caller's clock, or
 * fails while `failing` is set. */
function scriptedFetcher(clock: { now: Date }, lifetimeMs = 12 * HOUR) {
  const state = { calls: 0, failing: false as false | string };
  const fetcher: TokenFetcher = async () => {
    state.calls += 1;
    if (state.failing) throw new CredentialError('RefreshFailed', state.failing);
    return {
      username: 'AWS',
      password: `token-${state.calls}`,
      expiresAt: new Date(clock.now.getTime() + lifetimeMs),
    };
  };
  return { state, fetcher };
}

/** A cache with no jitter (random = 0.5) and a frozen elapsed clock. */
function exactCache(): TokenCache {
  return new TokenCache({ random: () => 0.5, elapsedClock: () => 0 });
}

describe('refresh timing', () => {
  it('refreshes after two thirds of the lifetime', () => {
    assert.deepEqual(refreshAt(T0, at(12 * HOUR), undefined, 1), at(8 * HOUR));
  });

  it('refreshes after refreshInterval when that comes first', () => {
    assert.deepEqual(refreshAt(T0, at(12 * HOUR), 1 * HOUR, 1), at(1 * HOUR));
    assert.deepEqual(refreshAt(T0, at(3 * HOUR), 10 * HOUR, 1), at(2 * HOUR));
  });

  it('jitters by at most ±5 %', () => {
    assert.equal(
      jitterFactor(() => 0, 0.05),
      0.95,
    );
    assert.equal(
      jitterFactor(() => 0.5, 0.05),
      1,
    );
    assert.ok(jitterFactor(() => 0.999999, 0.05) < 1.05);
    fc.assert(
      fc.property(
        fc.integer({ min: 2 * SECOND, max: 30 * 24 * HOUR }),
        fc.option(fc.integer({ min: MINUTE, max: 30 * 24 * HOUR }), { nil: undefined }),
        fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true }),
        (lifetime, interval, r) => {
          const nominal = Math.min((lifetime * 2) / 3, interval ?? Number.POSITIVE_INFINITY);
          const when = refreshAt(
            T0,
            at(lifetime),
            interval,
            jitterFactor(() => r, 0.05),
          ).getTime();
          const delay = when - T0.getTime();
          assert.ok(
            delay >= Math.max(nominal * 0.95, SECOND) - 1,
            `delay ${delay} < 95 % of ${nominal}`,
          );
          assert.ok(
            delay <= Math.max(nominal * 1.05, SECOND) + 1,
            `delay ${delay} > 105 % of ${nominal}`,
          );
          assert.ok(when < T0.getTime() + lifetime, 'a refresh is due before the token expires');
        },
      ),
    );
  });

  it('never schedules a refresh sooner than a second after the token was obtained', () => {
    assert.deepEqual(refreshAt(T0, at(900), undefined, 1), at(SECOND));
    assert.deepEqual(refreshAt(T0, T0, undefined, 0.95), at(SECOND));
  });

  it('backs off from 5 s, doubling to a 5 min cap', () => {
    const steady = () => 0.5;
    const waits = [1, 2, 3, 4, 5, 6, 7, 8, 50].map((n) => backoffMs(n, steady));
    assert.deepEqual(
      waits,
      [5, 10, 20, 40, 80, 160, 300, 300, 300].map((s) => s * SECOND),
    );
  });

  it('jitters backoff by ±5 % and never above the cap', () => {
    assert.equal(
      backoffMs(1, () => 0),
      4750,
    );
    assert.ok(backoffMs(1, () => 0.999999) < 5250);
    assert.equal(
      backoffMs(7, () => 0.999999),
      5 * MINUTE,
    );
    assert.equal(
      backoffMs(7, () => 0),
      0.95 * 5 * MINUTE,
    );
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 100 }),
        fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true }),
        (n, r) => {
          const wait = backoffMs(n, () => r);
          const nominal = Math.min(5 * SECOND * 2 ** Math.min(n - 1, 30), 5 * MINUTE);
          assert.ok(wait >= nominal * 0.95 - 1e-6 && wait <= Math.min(nominal * 1.05, 5 * MINUTE));
        },
      ),
    );
  });
});

describe('TokenCache', () => {
  it('fetches the first token, then not again until two thirds of its lifetime', async () => {
    const clock = { now: T0 };
    const { state, fetcher } = scriptedFetcher(clock);
    const cache = exactCache();

    const first = await cache.get(key, fetcher, clock.now);
    assert.equal(state.calls, 1);
    assert.equal(first.token?.password, 'token-1');
    assert.deepEqual(first.refreshedAt, T0);
    assert.deepEqual(first.expiresAt, at(12 * HOUR));
    assert.deepEqual(first.nextAttemptAt, at(8 * HOUR));
    assert.equal(first.expired, false);
    assert.equal(first.error, undefined);

    clock.now = at(8 * HOUR - 1);
    const cached = await cache.get(key, fetcher, clock.now);
    assert.equal(state.calls, 1);
    assert.equal(cached.token?.password, 'token-1');

    clock.now = at(8 * HOUR);
    const refreshed = await cache.get(key, fetcher, clock.now);
    assert.equal(state.calls, 2);
    assert.equal(refreshed.token?.password, 'token-2');
    assert.deepEqual(refreshed.refreshedAt, at(8 * HOUR));
    assert.deepEqual(refreshed.nextAttemptAt, at(16 * HOUR));
  });

  it('after a restart, adopts the unexpired token it wrote before instead of minting a new one', async () => {
    const clock = { now: at(2 * HOUR) };
    const { state, fetcher } = scriptedFetcher(clock);
    const cache = exactCache();
    const written = { username: 'AWS', password: 'written-before', expiresAt: at(12 * HOUR) };
    assert.equal(cache.seed(key, written, T0, clock.now), true);

    const adopted = await cache.get(key, fetcher, clock.now);
    assert.equal(state.calls, 0, 'no cloud call for a token that is still good');
    assert.equal(adopted.token?.password, 'written-before');
    assert.deepEqual(
      adopted.nextAttemptAt,
      at(8 * HOUR),
      'the schedule continues from when it was minted',
    );

    clock.now = at(8 * HOUR);
    assert.equal((await cache.get(key, fetcher, clock.now)).token?.password, 'token-1');
    assert.equal(
      cache.seed(key, written, T0, clock.now),
      false,
      'a known key is never overwritten',
    );
  });

  it('does not adopt a written token that has already expired', async () => {
    const clock = { now: at(13 * HOUR) };
    const { state, fetcher } = scriptedFetcher(clock);
    const cache = exactCache();
    const stale = { username: 'AWS', password: 'expired', expiresAt: at(12 * HOUR) };
    assert.equal(cache.seed(key, stale, T0, clock.now), false);
    assert.equal((await cache.get(key, fetcher, clock.now)).token?.password, 'token-1');
    assert.equal(state.calls, 1);
  });

  it('refreshes after refreshInterval when it is shorter, and follows a changed interval', async () => {
    const clock = { now: T0 };
    const { state, fetcher } = scriptedFetcher(clock);
    const cache = exactCache();

    const first = await cache.get(key, fetcher, clock.now, { refreshIntervalMs: HOUR });
    assert.deepEqual(first.nextAttemptAt, at(HOUR));

    clock.now = at(30 * MINUTE);
    const shorter = await cache.get(key, fetcher, clock.now, { refreshIntervalMs: 10 * MINUTE });
    assert.equal(state.calls, 2, 'the token is already older than the new interval');
    assert.deepEqual(shorter.nextAttemptAt, at(40 * MINUTE));
  });

  it('jitters the schedule within ±5 % of the nominal refresh time', async () => {
    for (const r of [0, 0.25, 0.75, 0.999999]) {
      const clock = { now: T0 };
      const { fetcher } = scriptedFetcher(clock, 3 * HOUR);
      const cache = new TokenCache({ random: () => r, elapsedClock: () => 0 });
      const { nextAttemptAt } = await cache.get(key, fetcher, clock.now);
      const delay = nextAttemptAt.getTime() - T0.getTime();
      assert.ok(
        delay >= 0.95 * 2 * HOUR && delay < 1.05 * 2 * HOUR,
        `delay ${delay} for random ${r}`,
      );
    }
  });

  it('backs off on failure, serves the last good token until it expires, then reports it expired', async () => {
    const clock = { now: T0 };
    const { state, fetcher } = scriptedFetcher(clock, 3 * HOUR);
    const cache = exactCache();
    await cache.get(key, fetcher, clock.now);
    state.failing =
      'ecr: AccessDeniedException: not authorized to perform ecr:GetAuthorizationToken';

    clock.now = at(2 * HOUR); // two thirds of 3 h
    const failed = await cache.get(key, fetcher, clock.now);
    assert.equal(state.calls, 2);
    assert.equal(failed.token?.password, 'token-1', 'the last good token is still served');
    assert.equal(failed.error?.reason, 'RefreshFailed');
    assert.match(failed.error?.message ?? '', /AccessDeniedException/);
    assert.equal(failed.expired, false);
    assert.deepEqual(failed.nextAttemptAt, at(2 * HOUR + 5 * SECOND));

    clock.now = at(2 * HOUR + 4 * SECOND);
    await cache.get(key, fetcher, clock.now);
    assert.equal(state.calls, 2, 'no attempt before the backoff has passed');

    // 5 s, then 10 s, 20 s, 40 s, 80 s, 160 s, then 300 s each.
    const waits: number[] = [];
    let next = failed.nextAttemptAt;
    for (let i = 0; i < 8; i++) {
      clock.now = next;
      const result = await cache.get(key, fetcher, clock.now);
      assert.equal(result.token?.password, 'token-1');
      waits.push((result.nextAttemptAt.getTime() - clock.now.getTime()) / SECOND);
      next = result.nextAttemptAt;
    }
    assert.deepEqual(waits, [10, 20, 40, 80, 160, 300, 300, 300]);
    assert.equal(state.calls, 10);

    clock.now = at(3 * HOUR - 1);
    const last = await cache.get(key, fetcher, clock.now);
    assert.equal(last.token?.password, 'token-1');
    assert.equal(last.expired, false);
    assert.deepEqual(last.nextAttemptAt, at(3 * HOUR), 'the expiry is the next wake-up');

    clock.now = at(3 * HOUR);
    const expired = await cache.get(key, fetcher, clock.now);
    assert.equal(expired.token, undefined);
    assert.equal(expired.expired, true);
    assert.equal(expired.error?.reason, 'RefreshFailed');
    assert.deepEqual(expired.expiresAt, at(3 * HOUR));
    assert.deepEqual(expired.refreshedAt, T0);

    state.failing = false;
    clock.now = expired.nextAttemptAt;
    const recovered = await cache.get(key, fetcher, clock.now);
    assert.ok(recovered.token?.password.startsWith('token-'));
    assert.equal(recovered.expired, false);
    assert.equal(recovered.error, undefined);
    assert.deepEqual(recovered.refreshedAt, clock.now);
  });

  it('wakes the caller at the expiry when that comes before the next retry', async () => {
    const clock = { now: T0 };
    const { state, fetcher } = scriptedFetcher(clock, 30 * MINUTE);
    const cache = exactCache();
    await cache.get(key, fetcher, clock.now);
    state.failing = 'down';
    clock.now = at(30 * MINUTE - 2 * SECOND);
    const result = await cache.get(key, fetcher, clock.now, { force: true });
    assert.deepEqual(result.nextAttemptAt, at(30 * MINUTE));
  });

  it('reports a failure with no token and no expiry when nothing was ever obtained', async () => {
    const clock = { now: T0 };
    const { state, fetcher } = scriptedFetcher(clock);
    state.failing = 'gcp: invalid_grant: Invalid JWT Signature.';
    const result = await exactCache().get(key, fetcher, clock.now);
    assert.equal(result.token, undefined);
    assert.equal(result.expired, false);
    assert.equal(result.refreshedAt, undefined);
    assert.equal(result.error?.message, 'gcp: invalid_grant: Invalid JWT Signature.');
    assert.deepEqual(result.nextAttemptAt, at(5 * SECOND));
  });

  it('refreshes at once for a new refresh-requested-at value, and only once per value', async () => {
    const clock = { now: T0 };
    const { state, fetcher } = scriptedFetcher(clock);
    const cache = exactCache();
    await cache.get(key, fetcher, clock.now, { forceToken: '2030-01-01T00:00:00Z' });
    assert.equal(state.calls, 1, 'the first value seen does not force anything by itself');

    clock.now = at(MINUTE);
    await cache.get(key, fetcher, clock.now, { forceToken: '2030-01-01T00:00:00Z' });
    assert.equal(state.calls, 1);

    const forced = await cache.get(key, fetcher, clock.now, { forceToken: 'again' });
    assert.equal(state.calls, 2);
    assert.equal(forced.token?.password, 'token-2');
    assert.deepEqual(forced.nextAttemptAt, at(MINUTE + 8 * HOUR));

    await cache.get(key, fetcher, clock.now, { forceToken: 'again' });
    await cache.get(key, fetcher, clock.now, {});
    assert.equal(state.calls, 2, 'removing the annotation does not force');
  });

  it('a forced refresh skips the backoff', async () => {
    const clock = { now: T0 };
    const { state, fetcher } = scriptedFetcher(clock);
    const cache = exactCache();
    state.failing = 'down';
    await cache.get(key, fetcher, clock.now);
    state.failing = false;
    clock.now = at(SECOND);
    const result = await cache.get(key, fetcher, clock.now, { force: true });
    assert.equal(state.calls, 2);
    assert.equal(result.token?.password, 'token-2');
    assert.equal(result.error, undefined);
  });

  it('refreshes when the fingerprint of what the token depends on changes', async () => {
    const clock = { now: T0 };
    const { state, fetcher } = scriptedFetcher(clock);
    const cache = exactCache();
    await cache.get({ ...key, fingerprint: 'rv-1' }, fetcher, clock.now);
    await cache.get({ ...key, fingerprint: 'rv-1' }, fetcher, clock.now);
    assert.equal(state.calls, 1);
    await cache.get({ ...key, fingerprint: 'rv-2' }, fetcher, clock.now);
    assert.equal(state.calls, 2);
  });

  it('runs one fetch per key at a time and shares it between callers', async () => {
    let release: (token: CloudToken) => void = () => {};
    let calls = 0;
    const fetcher: TokenFetcher = () => {
      calls += 1;
      return new Promise((resolve) => {
        release = resolve;
      });
    };
    const cache = exactCache();
    const first = cache.get(key, fetcher, T0);
    const second = cache.get(key, fetcher, T0, { force: true });
    const other = cache.get(
      { ...key, index: 1 },
      async () => ({ username: 'u', password: 'other', expiresAt: at(HOUR) }),
      T0,
    );
    await new Promise((resolve) => setImmediate(resolve));
    assert.equal(calls, 1);
    release({ username: 'AWS', password: 'shared', expiresAt: at(HOUR) });
    const [a, b, c] = await Promise.all([first, second, other]);
    assert.equal(a.token?.password, 'shared');
    assert.equal(b.token?.password, 'shared');
    assert.equal(c.token?.password, 'other', 'other keys are not held up');
    assert.equal(calls, 1);
  });

  it('gives up on a fetch that outlives its deadline and aborts it', async () => {
    let signal: AbortSignal | undefined;
    const fetcher: TokenFetcher = (s) => {
      signal = s;
      return new Promise(() => {});
    };
    const cache = new TokenCache({ random: () => 0.5, elapsedClock: () => 0, fetchTimeoutMs: 20 });
    const result = await cache.get(key, fetcher, T0);
    assert.equal(result.error?.reason, 'RefreshFailed');
    assert.match(result.error?.message ?? '', /no answer within/);
    assert.equal(signal?.aborted, true);
    assert.deepEqual(result.nextAttemptAt, at(5 * SECOND));
  });

  it('turns other errors into RefreshFailed without their secrets', async () => {
    const leaked = 'eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJlLXNlY3JldA';
    const fetcher: TokenFetcher = async () => {
      throw new Error(`upstream said: bad token ${leaked}\nstack line`);
    };
    const result = await exactCache().get(key, fetcher, T0);
    assert.equal(result.error?.reason, 'RefreshFailed');
    assert.ok(!result.error?.message.includes(leaked));
    assert.ok(!result.error?.message.includes('stack line'));
  });

  it('counts a token that has already expired as a failure', async () => {
    const fetcher: TokenFetcher = async () => ({
      username: 'u',
      password: 'stale',
      expiresAt: at(-1),
    });
    const result = await exactCache().get(key, fetcher, T0);
    assert.equal(result.token, undefined);
    assert.equal(result.error?.reason, 'RefreshFailed');
    assert.equal(result.expired, false);
  });

  it('forgets every token of a credential, and the registries no longer in its spec', async () => {
    const clock = { now: T0 };
    const { state, fetcher } = scriptedFetcher(clock);
    const cache = exactCache();
    await cache.get(key, fetcher, clock.now);
    await cache.get({ ...key, index: 1 }, fetcher, clock.now);
    await cache.get({ ...key, credentialUid: 'uid-other' }, fetcher, clock.now);
    assert.equal(cache.size, 3);

    cache.retainOnly('uid-acme', [key]);
    assert.equal(cache.size, 2);
    cache.forget('uid-acme');
    assert.equal(cache.size, 1);

    await cache.get(key, fetcher, clock.now);
    assert.equal(state.calls, 4, 'a forgotten key is fetched again');
  });
});

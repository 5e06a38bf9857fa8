// The token cache's schedule as the status shows it: when a token was obtained (the time the
// cloud call took included), when the next attempt is, what a failure reports, and which
// inputs force a refresh or keep the adopted token.
import assert from 'node:assert/strict';
import type { CloudToken } from '../../src/credentials/cloud/cloud-token.ts';
import { CredentialError } from '../../src/credentials/errors.ts';
import {
  refreshAt,
  TokenCache,
  type TokenCacheKey,
  type TokenFetcher,
} from '../../src/credentials/token-cache.ts';

const T0 = new Date('2030-01-01T00:00:00Z');
const at = (ms: number): Date => new Date(T0.getTime() + ms);
const key: TokenCacheKey = { credentialUid: 'uid-1', index: 0, server: 'r.example.com' };
const token = (expiresAt: Date, password = 'p'): CloudToken => ({
  username: 'AWS',
  password,
  expiresAt,
});

describe('token cache schedule', () => {
  it('a refreshInterval of 0 or below is no interval', () => {
    for (const interval of [0, -5]) {
      assert.deepEqual(refreshAt(T0, at(3_000_000), interval, 1), at(2_000_000), `${interval}`);
    }
  });

  it('counts the time the cloud call took: obtained when it answered, refreshed from then', async () => {
    let elapsed = 100;
    const cache = new TokenCache({ random: () => 0.5, elapsedClock: () => elapsed });
    const fetcher: TokenFetcher = async () => {
      elapsed += 2_000;
      return token(at(2_000 + 3_000_000));
    };
    const lookup = await cache.get(key, fetcher, T0);
    assert.deepEqual(lookup.refreshedAt, at(2_000));
    assert.deepEqual(lookup.nextAttemptAt, at(2_000 + 2_000_000));
  });

  it('a failure is retried after the backoff, counted from when the call failed', async () => {
    let elapsed = 100;
    const cache = new TokenCache({ random: () => 0.5, elapsedClock: () => elapsed });
    const lookup = await cache.get(
      key,
      async () => {
        elapsed += 3_000;
        throw new Error('boom');
      },
      T0,
    );
    assert.deepEqual(lookup, {
      nextAttemptAt: at(3_000 + 5_000),
      error: new CredentialError('RefreshFailed', 'boom'),
      expired: false,
    });
  });

  it('a failed refresh serves the last token only while it is still valid when the call ends', async () => {
    let elapsed = 5_000;
    const cache = new TokenCache({ random: () => 0.5, elapsedClock: () => elapsed });
    const failingFor = (ms: number) => async (): Promise<CloudToken> => {
      elapsed += ms;
      throw new Error('cloud down');
    };
    const lasting = { ...key, index: 1 };
    cache.seed(key, token(at(1_000), 'last'), at(-60_000), T0);
    cache.seed(lasting, token(at(1_500), 'last'), at(-60_000), T0);
    const expired = await cache.get(key, failingFor(2_000), T0, { force: true });
    assert.equal(expired.token, undefined, 'expired while the call failed');
    assert.equal(expired.expired, true);
    const valid = await cache.get(lasting, failingFor(1_000), T0, { force: true });
    assert.equal(valid.token?.password, 'last', 'still valid when the call failed');
    assert.equal(valid.expired, false);
  });

  it('a token expiring the moment it arrives is refused as already expired', async () => {
    let elapsed = 0;
    const cache = new TokenCache({ random: () => 0.5, elapsedClock: () => elapsed });
    const lookup = await cache.get(
      key,
      async () => {
        elapsed += 1_000;
        return token(at(1_000));
      },
      T0,
    );
    assert.equal(lookup.token, undefined);
    assert.equal(lookup.error?.message, 'the cloud returned a token that has already expired');
  });

  it('a fetcher’s own CredentialError keeps its reason; an empty error message gets one', async () => {
    const cache = new TokenCache({ random: () => 0.5, elapsedClock: () => 0 });
    const own = await cache.get(
      key,
      async () => {
        throw new CredentialError('SourceInvalid', 'the key is not JSON');
      },
      T0,
    );
    assert.equal(own.error?.reason, 'SourceInvalid');
    const other = { ...key, index: 1 };
    const empty = await cache.get(
      other,
      async () => {
        throw new Error('');
      },
      T0,
    );
    assert.equal(empty.error?.reason, 'RefreshFailed');
    assert.equal(empty.error?.message, 'the token request failed');
  });

  it('a call with no answer fails at the fetch timeout, saying so in seconds', async () => {
    const cache = new TokenCache({ random: () => 0.5, fetchTimeoutMs: 500 });
    let aborted = false;
    const lookup = await cache.get(
      key,
      (signal) =>
        new Promise<CloudToken>(() => {
          signal.addEventListener('abort', () => {
            aborted = true;
          });
        }),
      T0,
    );
    assert.equal(lookup.error?.message, 'the token request got no answer within 1s');
    assert.ok(aborted, 'the call was aborted');
  });

  it('the minimum refresh delay is configurable', async () => {
    const cache = new TokenCache({
      random: () => 0.5,
      elapsedClock: () => 0,
      minRefreshDelayMs: 5_000,
    });
    const lookup = await cache.get(key, async () => token(at(3_000)), T0);
    assert.deepEqual(lookup.nextAttemptAt, at(5_000));
  });

  it('knows a key once it was asked for, and forgets what retainOnly leaves out', async () => {
    const cache = new TokenCache({ random: () => 0.5, elapsedClock: () => 0 });
    const other = { ...key, index: 1, server: 'q.example.com' };
    assert.equal(cache.knows(key), false);
    await cache.get(key, async () => token(at(3_600_000)), T0);
    await cache.get(other, async () => token(at(3_600_000)), T0);
    assert.equal(cache.knows(key), true);
    cache.retainOnly('uid-1', [key]);
    assert.equal(cache.knows(key), true);
    assert.equal(cache.knows(other), false);
    assert.equal(cache.size, 1);
  });

  it('an adopted token is kept while its fingerprint and refresh request are the same', async () => {
    const cache = new TokenCache({ random: () => 0.5, elapsedClock: () => 0 });
    const keyed = { ...key, fingerprint: 'f1' };
    assert.equal(cache.seed(keyed, token(at(3_600_000), 'adopted'), T0, T0, 'r1'), true);
    let calls = 0;
    const fetcher: TokenFetcher = async () => {
      calls += 1;
      return token(at(3_600_000), 'new');
    };
    const kept = await cache.get(keyed, fetcher, at(1_000), { forceToken: 'r1' });
    assert.equal(kept.token?.password, 'adopted');
    assert.equal(calls, 0);
    const forced = await cache.get(keyed, fetcher, at(2_000), { forceToken: 'r2' });
    assert.equal(forced.token?.password, 'new');
    assert.equal(calls, 1);
  });

  it('a token expiring right now is not adopted', () => {
    const cache = new TokenCache({ random: () => 0.5, elapsedClock: () => 0 });
    assert.equal(cache.seed(key, token(T0), at(-1_000), T0), false);
    assert.equal(cache.seed(key, token(at(1)), at(-1_000), T0), true);
  });
});

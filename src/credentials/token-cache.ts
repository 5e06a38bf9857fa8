// The last good token of every cloud registry, and when to ask for the next one.
//
// A token is refreshed when two thirds of its lifetime has passed, or after refreshInterval if
// that is sooner, give or take 5 % so that many credentials made at once do not refresh in
// step. A failed refresh is retried with exponential backoff (5 s doubling to 5 min, jittered)
// while the last good token keeps being served until it actually expires; after that the
// registry is reported expired and the caller drops it from the Secret. One fetch per key is
// in flight at a time: concurrent callers share it.
import type { CloudToken } from './cloud/cloud-token.ts';
import { cleanMessage } from './cloud/cloud-token.ts';
import { CredentialError } from './errors.ts';

export interface TokenCacheKey {
  /** metadata.uid of the RegistryCredential: a re-created object starts afresh. */
  credentialUid: string;
  /** Position in spec.registries. */
  index: number;
  server: string;
  /** What else the token depends on (the source block, the source Secret's resourceVersion):
   * a new value refreshes at once, as a forced refresh does. */
  fingerprint?: string;
}

export interface TokenLookup {
  /** The token to write; absent when there is no unexpired one. */
  token?: CloudToken;
  /** When the last good token was obtained (kept after it expires, for status). */
  refreshedAt?: Date;
  expiresAt?: Date;
  /** When to ask again: the scheduled refresh, the next retry, or the expiry, whichever is first. */
  nextAttemptAt: Date;
  /** Why the latest attempt failed; cleared by the next success. */
  error?: CredentialError;
  /** A token was obtained once, has expired, and no new one could be had. */
  expired: boolean;
}

export interface TokenGetOptions {
  /** Refresh now whatever the schedule says. */
  force?: boolean;
  /** The value of the regcred.dev/refresh-requested-at annotation: a value different from the
   * one acted on last time forces a refresh. */
  forceToken?: string;
  /**
   * The value last acted on, as status recorded it (any process, any leader): what a key this
   * process has not seen yet compares `forceToken` with. Without it, the first value a process
   * sees never counts as new, and a request made while no leader ran does nothing.
   */
  actedToken?: string;
  /** spec.refreshInterval in milliseconds: the longest a token is kept before a refresh. */
  refreshIntervalMs?: number;
}

/** Obtains a token; `signal` aborts when the cache gives up waiting. */
export type TokenFetcher = (signal: AbortSignal) => Promise<CloudToken>;

export interface RefreshTiming {
  /** ±fraction applied to refresh delays and backoffs (0.05 = ±5 %). */
  jitter: number;
  initialBackoffMs: number;
  maxBackoffMs: number;
  /** A refresh is never scheduled sooner than this after the token was obtained. */
  minRefreshDelayMs: number;
}

export const DEFAULT_REFRESH_TIMING: RefreshTiming = {
  jitter: 0.05,
  initialBackoffMs: 5_000,
  maxBackoffMs: 5 * 60_000,
  minRefreshDelayMs: 1_000,
};

export interface TokenCacheOptions extends Partial<RefreshTiming> {
  /** Uniform in [0, 1); Math.random by default. */
  random?: () => number;
  /** Monotonic milliseconds, to measure how long a fetch took (performance.now by default). */
  elapsedClock?: () => number;
  /** A fetch that has not settled by then counts as failed, and its signal aborts. */
  fetchTimeoutMs?: number;
}

export const DEFAULT_FETCH_TIMEOUT_MS = 60_000;

/** A factor in [1 - jitter, 1 + jitter) from one draw of `random`. */
export function jitterFactor(random: () => number, jitter: number): number {
  return 1 + jitter * (2 * random() - 1);
}

/**
 * When to refresh a token obtained at `refreshedAt`: after two thirds of its lifetime or
 * `refreshIntervalMs`, whichever is sooner, times `factor` (see jitterFactor), and never
 * sooner than `minRefreshDelayMs` after it was obtained.
 */
export function refreshAt(
  refreshedAt: Date,
  expiresAt: Date,
  refreshIntervalMs: number | undefined,
  factor: number,
  minRefreshDelayMs: number = DEFAULT_REFRESH_TIMING.minRefreshDelayMs,
): Date {
  const lifetime = Math.max(0, expiresAt.getTime() - refreshedAt.getTime());
  let delay = (lifetime * 2) / 3;
  if (refreshIntervalMs !== undefined && refreshIntervalMs > 0)
    delay = Math.min(delay, refreshIntervalMs);
  return new Date(refreshedAt.getTime() + Math.max(delay * factor, minRefreshDelayMs));
}

/** The wait before retry number `failures` (1 = after the first failure): 5 s, 10 s, 20 s, …
 * capped at 5 min, jittered, and never above the cap. */
export function backoffMs(
  failures: number,
  random: () => number,
  timing: Pick<
    RefreshTiming,
    'jitter' | 'initialBackoffMs' | 'maxBackoffMs'
  > = DEFAULT_REFRESH_TIMING,
): number {
  const exponent = Math.min(Math.max(failures, 1) - 1, 30);
  const base = Math.min(timing.initialBackoffMs * 2 ** exponent, timing.maxBackoffMs);
  return Math.min(base * jitterFactor(random, timing.jitter), timing.maxBackoffMs);
}

interface Entry {
  token?: CloudToken;
  refreshedAt?: Date;
  /** Drawn when the token was obtained, so the schedule is stable between calls. */
  factor: number;
  failures: number;
  retryAt?: Date;
  error?: CredentialError;
  forceToken?: string;
  fingerprint?: string;
  inFlight?: Promise<void>;
}

export class TokenCache {
  readonly #entries = new Map<string, Entry>();
  readonly #timing: RefreshTiming;
  readonly #random: () => number;
  readonly #elapsed: () => number;
  readonly #fetchTimeoutMs: number;

  constructor(options: TokenCacheOptions = {}) {
    this.#timing = {
      jitter: options.jitter ?? DEFAULT_REFRESH_TIMING.jitter,
      initialBackoffMs: options.initialBackoffMs ?? DEFAULT_REFRESH_TIMING.initialBackoffMs,
      maxBackoffMs: options.maxBackoffMs ?? DEFAULT_REFRESH_TIMING.maxBackoffMs,
      minRefreshDelayMs: options.minRefreshDelayMs ?? DEFAULT_REFRESH_TIMING.minRefreshDelayMs,
    };
    this.#random = options.random ?? Math.random;
    this.#elapsed = options.elapsedClock ?? (() => performance.now());
    this.#fetchTimeoutMs = options.fetchTimeoutMs ?? DEFAULT_FETCH_TIMEOUT_MS;
  }

  /**
   * The token for `key`, fetched first when one is due (none yet, the refresh time or the
   * retry time has come, or a refresh was forced). `now` is the caller's clock; the time a
   * fetch took is added to it.
   */
  async get(
    key: TokenCacheKey,
    fetcher: TokenFetcher,
    now: Date,
    options: TokenGetOptions = {},
  ): Promise<TokenLookup> {
    const started = this.#elapsed();
    const id = cacheId(key);
    let entry = this.#entries.get(id);
    let forced = options.force === true;
    if (entry === undefined) {
      entry = { factor: 1, failures: 0 };
      const baseline = 'actedToken' in options ? options.actedToken : options.forceToken;
      if (baseline !== undefined) entry.forceToken = baseline;
      if (key.fingerprint !== undefined) entry.fingerprint = key.fingerprint;
      this.#entries.set(id, entry);
    }
    if (options.forceToken !== entry.forceToken) {
      forced ||= options.forceToken !== undefined;
      entry.forceToken = options.forceToken;
    }
    if (key.fingerprint !== entry.fingerprint) {
      forced = true;
      entry.fingerprint = key.fingerprint;
    }

    if (
      entry.inFlight === undefined &&
      (forced || this.#due(entry, now, options.refreshIntervalMs))
    ) {
      entry.inFlight = this.#refresh(entry, fetcher, now, started).finally(() => {
        if (entry !== undefined) delete entry.inFlight;
      });
    }
    if (entry.inFlight !== undefined) await entry.inFlight;
    return this.#lookup(
      entry,
      new Date(now.getTime() + (this.#elapsed() - started)),
      options.refreshIntervalMs,
    );
  }

  /** True when `key` has an entry (a token, or a failure being retried). */
  knows(key: TokenCacheKey): boolean {
    return this.#entries.has(cacheId(key));
  }

  /**
   * Adopts a token this operator wrote earlier (read back from a managed Secret and the status
   * after a restart or a leader change), so a new process does not mint a fresh token and
   * rewrite every namespace. Ignored when the key is already known or the token has expired.
   */
  seed(
    key: TokenCacheKey,
    token: CloudToken,
    refreshedAt: Date,
    now: Date,
    forceToken?: string,
  ): boolean {
    const id = cacheId(key);
    if (this.#entries.has(id) || token.expiresAt.getTime() <= now.getTime()) return false;
    const entry: Entry = {
      token,
      refreshedAt,
      factor: jitterFactor(this.#random, this.#timing.jitter),
      failures: 0,
    };
    if (key.fingerprint !== undefined) entry.fingerprint = key.fingerprint;
    if (forceToken !== undefined) entry.forceToken = forceToken;
    this.#entries.set(id, entry);
    return true;
  }

  /** Drops every token of a RegistryCredential (deleted, or re-created under a new uid). */
  forget(credentialUid: string): void {
    for (const id of [...this.#entries.keys()]) {
      if (id.startsWith(`${credentialUid}\u0000`)) this.#entries.delete(id);
    }
  }

  /** Drops the tokens of a RegistryCredential's registries other than `keys` (spec changed). */
  retainOnly(credentialUid: string, keys: readonly TokenCacheKey[]): void {
    const keep = new Set(keys.map(cacheId));
    for (const id of [...this.#entries.keys()]) {
      if (id.startsWith(`${credentialUid}\u0000`) && !keep.has(id)) this.#entries.delete(id);
    }
  }

  get size(): number {
    return this.#entries.size;
  }

  #due(entry: Entry, now: Date, refreshIntervalMs: number | undefined): boolean {
    if (entry.retryAt !== undefined) return now.getTime() >= entry.retryAt.getTime();
    if (entry.token === undefined || entry.refreshedAt === undefined) return true;
    return now.getTime() >= this.#refreshAt(entry, refreshIntervalMs).getTime();
  }

  #refreshAt(entry: Entry, refreshIntervalMs: number | undefined): Date {
    const { token, refreshedAt } = entry;
    if (token === undefined || refreshedAt === undefined) return new Date(0);
    return refreshAt(
      refreshedAt,
      token.expiresAt,
      refreshIntervalMs,
      entry.factor,
      this.#timing.minRefreshDelayMs,
    );
  }

  async #refresh(entry: Entry, fetcher: TokenFetcher, now: Date, started: number): Promise<void> {
    const controller = new AbortController();
    const seconds = Math.round(this.#fetchTimeoutMs / 1000);
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        controller.abort();
        reject(
          new CredentialError(
            'RefreshFailed',
            `the token request got no answer within ${seconds}s`,
          ),
        );
      }, this.#fetchTimeoutMs);
      timer.unref();
    });
    try {
      const token = await Promise.race([fetcher(controller.signal), deadline]);
      const at = new Date(now.getTime() + (this.#elapsed() - started));
      if (!(token.expiresAt instanceof Date) || !(token.expiresAt.getTime() > at.getTime())) {
        throw new CredentialError(
          'RefreshFailed',
          'the cloud returned a token that has already expired',
        );
      }
      entry.token = token;
      entry.refreshedAt = at;
      entry.factor = jitterFactor(this.#random, this.#timing.jitter);
      entry.failures = 0;
      delete entry.retryAt;
      delete entry.error;
    } catch (err) {
      const at = now.getTime() + (this.#elapsed() - started);
      entry.failures += 1;
      entry.error = asCredentialError(err);
      entry.retryAt = new Date(at + backoffMs(entry.failures, this.#random, this.#timing));
    } finally {
      clearTimeout(timer);
    }
  }

  #lookup(entry: Entry, at: Date, refreshIntervalMs: number | undefined): TokenLookup {
    const { token, refreshedAt, error, retryAt } = entry;
    const valid = token !== undefined && at.getTime() < token.expiresAt.getTime();
    let next: Date;
    if (retryAt !== undefined) {
      next = valid && token.expiresAt.getTime() < retryAt.getTime() ? token.expiresAt : retryAt;
    } else if (token !== undefined) {
      next = this.#refreshAt(entry, refreshIntervalMs);
    } else {
      next = at;
    }
    return {
      ...(valid ? { token } : {}),
      ...(refreshedAt !== undefined ? { refreshedAt } : {}),
      ...(token !== undefined ? { expiresAt: token.expiresAt } : {}),
      nextAttemptAt: next,
      ...(error !== undefined ? { error } : {}),
      expired: token !== undefined && !valid,
    };
  }
}

function cacheId(key: TokenCacheKey): string {
  return `${key.credentialUid}\u0000${key.index}\u0000${key.server}`;
}

function asCredentialError(err: unknown): CredentialError {
  if (err instanceof CredentialError) return err;
  const message = err instanceof Error ? err.message : String(err);
  return new CredentialError('RefreshFailed', cleanMessage(message) || 'the token request failed');
}

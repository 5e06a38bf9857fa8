// Workers that drain a WorkQueue: `concurrency` async loops, each taking one key at a time,
// or, with `batching`, the keys due together (still each handed out once by the queue and
// settled on its own result). The queue does the de-duplication, so the loops are the whole pool: no second queue (a
// p-queue fed from get() would only add buffering in which keys could not be de-duplicated).
// Outcome handling follows controller-runtime: success → forget (reset backoff) and, if asked,
// addAfter; error → addRateLimited; always done().
import { type Clock, sleep, systemClock } from '../clock.ts';
import { type Logger, silentLogger } from '../observability/logger.ts';
import { safeMessage } from '../observability/redact.ts';
import type { WorkQueue } from './workqueue.ts';

export interface WorkResult {
  /** Process the key again after this long (a scheduled refresh). */
  requeueAfterMs?: number;
}

export type KeyHandler = (key: string) => Promise<WorkResult | undefined>;

export interface WorkerPoolOptions {
  logger?: Pick<Logger, 'warn' | 'error'>;
  /** Called after each handler run, e.g. for reconcile metrics; must not throw (logged). */
  onResult?: (key: string, outcome: WorkOutcome) => void;
  /** Keys handled together when they are due together (see Batching). */
  batching?: Batching;
  clock?: Clock;
}

/**
 * Keys due together handled in one call (full reconciles fanning out namespace-major, ADR
 * 0014). A worker that takes a key `accepts` also takes every other such key waiting, up to
 * `maxKeys`; when the first is one that `gathers` (a credential just created: a burst of
 * creations), it keeps taking them, those other workers take included, until `quietMs` pass
 * without a new one that `gathers`, at most `maxWaitMs`. Only time the event loop was free
 * counts (see gatherKeys): a stall is not quiet. Each key is then settled on its own result,
 * exactly as if its handler had run alone.
 */
export interface Batching {
  accepts(key: string): boolean;
  gathers(key: string): boolean;
  maxKeys: number;
  quietMs: number;
  maxWaitMs: number;
  handler(
    keys: readonly string[],
  ): Promise<ReadonlyArray<PromiseSettledResult<WorkResult | undefined>>>;
}

/** The keys one batch is gathering (shared with the other workers while it waits). */
export interface Gathering {
  keys: string[];
  sawNew: boolean;
}

/**
 * The keys to handle with `first` (see Batching). `open` is told of the gathering while it
 * waits, so keys other workers take join it.
 *
 * A quiet period counts only if the event loop was free to deliver what came meanwhile: the
 * keys of new credentials are queued by watch events, I/O that the poll phase delivers. So
 * - after each sleep the window looks at the queue only in the check phase (`setImmediate`
 *   from the timer): after a stall (a GC pause or a long synchronous step while handling I/O)
 *   the next timers phase runs the expired sleep before the poll phase has delivered the
 *   watch data that piled up meanwhile;
 * - a sleep that ended more than `quietMs / 2` late was a stall, not quiet: the window stays
 *   open for another period, new key or not;
 * - `maxWaitMs` bounds the loop's time, each sleep counting for what it asked for, not for
 *   what a stall added; the wall clock bounds the window at twice `maxWaitMs`, so a batch
 *   always starts.
 */
export async function gatherKeys(
  queue: Pick<WorkQueue, 'tryGet'>,
  first: string,
  batching: Batching,
  clock: Clock = systemClock,
  open?: (gathering: Gathering, waiting: boolean) => void,
  signal?: AbortSignal,
): Promise<string[]> {
  const g: Gathering = { keys: [first], sawNew: false };
  const take = (): void => {
    while (g.keys.length < batching.maxKeys) {
      const key = queue.tryGet((k) => batching.accepts(k));
      if (key === undefined) return;
      g.keys.push(key);
      if (batching.gathers(key)) g.sawNew = true;
    }
  };
  take();
  if (!batching.gathers(first)) return g.keys;
  const wallDeadline = clock.now() + 2 * batching.maxWaitMs;
  let waited = 0;
  open?.(g, true);
  try {
    for (;;) {
      const left = Math.min(batching.maxWaitMs - waited, wallDeadline - clock.now());
      if (left <= 0 || g.keys.length >= batching.maxKeys || signal?.aborted) break;
      g.sawNew = false;
      const ms = Math.min(batching.quietMs, left);
      const asleep = clock.now();
      await sleep(ms, signal, clock, true);
      waited += ms;
      const stalled = clock.now() - asleep - ms > batching.quietMs / 2;
      take();
      if (!g.sawNew && !stalled) break;
    }
  } finally {
    open?.(g, false);
  }
  return g.keys;
}

export type WorkOutcome =
  | { kind: 'success'; durationMs: number; requeueAfterMs?: number }
  | { kind: 'error'; durationMs: number; error: unknown };

/** Stops taking keys and resolves once every handler in flight has returned. */
export type StopWorkers = () => Promise<void>;

export function runWorkers(
  queue: WorkQueue,
  concurrency: number,
  handler: KeyHandler,
  opts: WorkerPoolOptions = {},
): StopWorkers {
  if (!Number.isInteger(concurrency) || concurrency < 1) {
    throw new RangeError(`concurrency must be a positive integer, got ${concurrency}`);
  }
  const logger = opts.logger ?? silentLogger;
  const stopping = new AbortController();

  const clock = opts.clock ?? systemClock;
  const batching = opts.batching;
  /** The batch gathering now, which keys other workers take join. */
  let gathering: Gathering | undefined;

  const settle = (
    key: string,
    result: PromiseSettledResult<WorkResult | undefined>,
    durationMs: number,
  ): void => {
    let outcome: WorkOutcome;
    try {
      if (result.status === 'fulfilled') {
        queue.forget(key);
        const requeueAfterMs = result.value?.requeueAfterMs;
        if (requeueAfterMs !== undefined && requeueAfterMs > 0) queue.addAfter(key, requeueAfterMs);
        outcome = { kind: 'success', durationMs, requeueAfterMs };
      } else {
        const error = result.reason;
        queue.addRateLimited(key);
        // A partial failure still keeps its schedule (a token refresh, a conflict recheck): the
        // earlier of that and the backoff wins, so a failing namespace never delays a refresh.
        const scheduled = scheduledRetryOf(error);
        if (scheduled !== undefined) queue.addAfter(key, scheduled);
        logger.warn('reconcile failed; retrying with backoff', {
          key,
          error: messageOf(error),
          requeues: queue.numRequeues(key),
        });
        outcome = { kind: 'error', durationMs, error };
      }
    } finally {
      queue.done(key);
    }
    try {
      opts.onResult?.(key, outcome);
    } catch (err) {
      logger.error('onResult hook failed', { key, error: messageOf(err) });
    }
  };

  const work = async (key: string): Promise<void> => {
    const started = performance.now();
    let result: PromiseSettledResult<WorkResult | undefined>;
    try {
      result = { status: 'fulfilled', value: await handler(key) };
    } catch (error) {
      result = { status: 'rejected', reason: error };
    }
    settle(key, result, performance.now() - started);
  };

  const workTogether = async (first: string, b: Batching): Promise<void> => {
    const keys = await gatherKeys(
      queue,
      first,
      b,
      clock,
      (g, waiting) => {
        if (waiting) gathering ??= g;
        else if (gathering === g) gathering = undefined;
      },
      stopping.signal,
    );
    const started = performance.now();
    let results: ReadonlyArray<PromiseSettledResult<WorkResult | undefined>>;
    try {
      results = await b.handler(keys);
    } catch (error) {
      results = keys.map(() => ({ status: 'rejected', reason: error }));
    }
    const durationMs = performance.now() - started;
    for (const [i, key] of keys.entries()) {
      settle(key, results[i] ?? { status: 'rejected', reason: new Error('no result') }, durationMs);
    }
  };

  const loop = async (): Promise<void> => {
    while (!stopping.signal.aborted) {
      const key = await queue.get(stopping.signal);
      if (key === undefined) return;
      if (!batching?.accepts(key)) {
        await work(key);
      } else if (gathering && gathering.keys.length < batching.maxKeys) {
        // Due with the batch another worker is gathering: it handles (and settles) the key.
        gathering.keys.push(key);
        if (batching.gathers(key)) gathering.sawNew = true;
      } else {
        await workTogether(key, batching);
      }
    }
  };

  const loops = Array.from({ length: concurrency }, () => loop());

  return async () => {
    stopping.abort();
    await Promise.all(loops);
  };
}

/** An error that also says when its key is due anyway (`requeueAfterMs`). */
export interface ScheduledError extends Error {
  requeueAfterMs?: number;
}

function scheduledRetryOf(error: unknown): number | undefined {
  const ms = (error as ScheduledError | undefined)?.requeueAfterMs;
  return typeof ms === 'number' && ms > 0 ? ms : undefined;
}

function messageOf(err: unknown): string {
  return safeMessage(err instanceof Error ? err.message : String(err));
}

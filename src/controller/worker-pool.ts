// Workers that drain a WorkQueue: `concurrency` async loops, each taking one key at a time.
// The queue does the de-duplication, so the loops are the whole pool: no second queue (a
// p-queue fed from get() would only add buffering in which keys could not be de-duplicated).
// Outcome handling follows controller-runtime: success → forget (reset backoff) and, if asked,
// addAfter; error → addRateLimited; always done().
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

  const work = async (key: string): Promise<void> => {
    const started = performance.now();
    let outcome: WorkOutcome;
    try {
      const result = await handler(key);
      queue.forget(key);
      const requeueAfterMs = result?.requeueAfterMs;
      if (requeueAfterMs !== undefined && requeueAfterMs > 0) queue.addAfter(key, requeueAfterMs);
      outcome = { kind: 'success', durationMs: performance.now() - started, requeueAfterMs };
    } catch (error) {
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
      outcome = { kind: 'error', durationMs: performance.now() - started, error };
    } finally {
      queue.done(key);
    }
    try {
      opts.onResult?.(key, outcome);
    } catch (err) {
      logger.error('onResult hook failed', { key, error: messageOf(err) });
    }
  };

  const loop = async (): Promise<void> => {
    while (!stopping.signal.aborted) {
      const key = await queue.get(stopping.signal);
      if (key === undefined) return;
      await work(key);
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

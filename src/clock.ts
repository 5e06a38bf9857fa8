// Time and timers behind an interface, so queues and informers can be driven by a fake clock
// in tests. Real timers are unref'd: a pending retry or refresh never keeps a process alive.

export interface Clock {
  /** Milliseconds since the epoch. */
  now(): number;
  /** Runs `fn` after `ms` milliseconds; the returned function cancels it. */
  schedule(fn: () => void, ms: number): () => void;
}

/**
 * Milliseconds from an arbitrary origin, never stepped by NTP or an operator setting the date:
 * for measuring durations that decide something (a lease's expiry), not for timestamps.
 */
export interface MonotonicClock {
  now(): number;
}

export const monotonicClock: MonotonicClock = { now: () => performance.now() };

/** setTimeout's ceiling (about 24.8 days); longer delays would fire at once. */
export const MAX_TIMER_MS = 2_147_483_647;

export const systemClock: Clock = {
  now: () => Date.now(),
  schedule(fn, ms) {
    const timer = setTimeout(fn, Math.min(Math.max(0, ms), MAX_TIMER_MS));
    timer.unref();
    return () => clearTimeout(timer);
  },
};

/**
 * Resolves after `ms`, or at once when `signal` aborts; never rejects. `checkPhase`: resolves in
 * the check phase after the timer (a `setImmediate`), so the I/O waiting by then (the poll
 * phase) has been delivered first.
 */
export function sleep(
  ms: number,
  signal?: AbortSignal,
  clock: Clock = systemClock,
  checkPhase = false,
): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) {
      resolve();
      return;
    }
    const onAbort = (): void => {
      cancel();
      resolve();
    };
    const cancel = clock.schedule(() => {
      signal?.removeEventListener('abort', onAbort);
      if (checkPhase) setImmediate(resolve);
      else resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

// Waiting on a condition, never for a fixed time. On timeout the error says what was awaited and
// what was last seen, so a failing test explains itself.
import { inspect } from 'node:util';

export interface WaitOptions {
  timeoutMs?: number;
  intervalMs?: number;
}

/**
 * Polls `observe` until `accept` holds for what it returns; resolves with that value.
 * `observe` may throw (e.g. a 404 while an object does not exist yet): that counts as "not yet".
 */
export async function waitFor<T>(
  what: string,
  observe: () => Promise<T> | T,
  accept: (value: T) => boolean,
  { timeoutMs = 60_000, intervalMs = 100 }: WaitOptions = {},
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: { value?: T; error?: unknown } = {};
  for (;;) {
    try {
      const value = await observe();
      last = { value };
      if (accept(value)) return value;
    } catch (error) {
      last = { error };
    }
    if (Date.now() > deadline) {
      const seen =
        'error' in last && last.error !== undefined
          ? `the last attempt failed: ${last.error instanceof Error ? last.error.message : String(last.error)}`
          : `last saw: ${inspect(last.value, { depth: 6, breakLength: 120 })}`;
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}; ${seen}`);
    }
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

/** Resolves once `check` returns true. */
export function waitUntil(
  what: string,
  check: () => Promise<boolean> | boolean,
  options?: WaitOptions,
): Promise<boolean> {
  return waitFor(what, check, (ok) => ok, options);
}

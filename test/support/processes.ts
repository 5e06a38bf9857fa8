// Process helpers the harnesses share for their synchronous teardown (signal and exit hooks,
// where nothing can be awaited).
import { readFileSync } from 'node:fs';

/** Blocks the thread for `ms` (teardown on process exit cannot await). */
export function sleepSync(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

/** True while `pid` exists and is not a zombie (a zombie has exited: only its entry is left). */
export function processRunning(pid: number): boolean {
  try {
    return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
}

/** Waits, blocking and bounded by `timeoutMs`, until none of `pids` runs; true if none does. */
export function waitExitedSync(pids: Iterable<number>, timeoutMs = 5_000): boolean {
  const left = [...pids];
  for (let waited = 0; waited < timeoutMs; waited += 20) {
    if (!left.some(processRunning)) return true;
    sleepSync(20);
  }
  return !left.some(processRunning);
}

// A de-duplicating, delaying, rate-limited work queue with client-go's semantics
// (util/workqueue: queue.go, delaying_queue.go, rate_limiting_queue.go).
//
// A key lives in up to three places:
//   dirty      — it needs processing (again). Adding a dirty key does nothing more.
//   queue      — dirty and not processing: waiting for a worker, in FIFO order within one of
//                two lanes (urgent keys are handed out first; see AddOptions).
//   processing — handed out by get() and not yet done().
// add() of a processing key only marks it dirty; done() puts it back in the queue. So a key is
// never processed twice at once, and a change seen during processing is never lost.
//
// Delays (addAfter, addRateLimited) wait in a min-heap keyed by deadline. A key waits at most
// once: a later call with an earlier deadline moves it up, a later one is ignored. An immediate
// add() does not cancel a pending delayed add (as in client-go): a scheduled refresh is never
// lost to an unrelated event, at the cost of one extra, harmless, reconcile.
import { type Clock, systemClock } from '../clock.ts';
import {
  type ControllerRateLimiterOptions,
  controllerRateLimiter,
  type RateLimiter,
} from './rate-limiter.ts';

/** Hooks for prom-client (workqueue_depth, workqueue_adds_total, ...). */
export interface WorkQueueMetrics {
  depth(n: number): void;
  add(): void;
  queueDuration(seconds: number): void;
  workDuration(seconds: number): void;
  retry(): void;
}

export interface WorkQueueOptions extends ControllerRateLimiterOptions {
  /** Replaces the default controller rate limiter (and its options). */
  rateLimiter?: RateLimiter;
  metrics?: WorkQueueMetrics;
  clock?: Clock;
}

interface Waiting {
  key: string;
  readyAt: number;
  seq: number;
}

type Waiter = (key: string | undefined) => void;

interface Lane {
  entries: Array<{ key: string; seq: number }>;
  head: number;
}

export interface AddOptions {
  /**
   * Hand it out before every key added without it (and move it up if it is already
   * waiting): work whose delay someone is waiting on, ahead of background work.
   */
  urgent?: boolean;
}

export class WorkQueue {
  readonly #clock: Clock;
  readonly #rateLimiter: RateLimiter;
  readonly #metrics: WorkQueueMetrics | undefined;

  // Keys waiting for a worker, in two FIFO lanes: urgent ones are handed out first. A key is
  // in one lane at a time (#waiting); moving it up leaves a stale entry behind, skipped when
  // reached (its sequence number no longer matches).
  readonly #lanes: [Lane, Lane] = [
    { entries: [], head: 0 },
    { entries: [], head: 0 },
  ];
  readonly #waiting = new Map<string, { lane: 0 | 1; seq: number }>();
  /** Processing keys added again as urgent: they go back in the urgent lane. */
  readonly #urgentAfterDone = new Set<string>();
  #laneSeq = 0;
  readonly #dirty = new Set<string>();
  readonly #processing = new Set<string>();
  readonly #queuedAt = new Map<string, number>();
  readonly #startedAt = new Map<string, number>();
  readonly #getters: Waiter[] = [];
  #shuttingDown = false;
  readonly #drainWaiters: Array<() => void> = [];

  // Delayed adds: earliest deadline per key, plus a heap whose stale entries are skipped.
  readonly #deadlines = new Map<string, number>();
  #heap: Waiting[] = [];
  #seq = 0;
  #cancelTimer: (() => void) | undefined;
  #timerAt: number | undefined;

  constructor(opts: WorkQueueOptions = {}) {
    this.#clock = opts.clock ?? systemClock;
    this.#rateLimiter = opts.rateLimiter ?? controllerRateLimiter({ ...opts, clock: this.#clock });
    this.#metrics = opts.metrics;
  }

  /** Marks `key` as needing processing. */
  add(key: string, opts: AddOptions = {}): void {
    if (this.#shuttingDown) return;
    const lane = opts.urgent ? 0 : 1;
    if (this.#dirty.has(key)) {
      if (lane === 0) {
        if (this.#waiting.get(key)?.lane === 1) this.#push(key, 0);
        else if (this.#processing.has(key)) this.#urgentAfterDone.add(key);
      }
      return;
    }
    this.#metrics?.add();
    this.#dirty.add(key);
    if (!this.#queuedAt.has(key)) this.#queuedAt.set(key, this.#clock.now());
    if (this.#processing.has(key)) {
      if (lane === 0) this.#urgentAfterDone.add(key);
      return;
    }
    this.#enqueue(key, lane);
  }

  /**
   * The next key to process; the caller must call done(key) when finished. Resolves to
   * undefined once the queue is shut down and empty, or when `signal` aborts.
   */
  get(signal?: AbortSignal): Promise<string | undefined> {
    if (this.len() > 0) return Promise.resolve(this.#take());
    if (this.#shuttingDown || signal?.aborted) return Promise.resolve(undefined);
    return new Promise((resolve) => {
      const onAbort = (): void => {
        const i = this.#getters.indexOf(waiter);
        if (i >= 0) this.#getters.splice(i, 1);
        resolve(undefined);
      };
      const waiter: Waiter = (key) => {
        signal?.removeEventListener('abort', onAbort);
        resolve(key);
      };
      this.#getters.push(waiter);
      signal?.addEventListener('abort', onAbort, { once: true });
    });
  }

  /**
   * The first waiting key `accept` takes, handed out like get()'s (done() it), or undefined:
   * for a worker that batches keys due together (worker-pool.ts). Never waits.
   */
  tryGet(accept: (key: string) => boolean = () => true): string | undefined {
    for (const lane of this.#lanes) {
      for (let i = lane.head; i < lane.entries.length; i++) {
        const entry = lane.entries[i] as { key: string; seq: number };
        if (this.#waiting.get(entry.key)?.seq !== entry.seq || !accept(entry.key)) continue;
        // Its entry stays behind, skipped when reached (its sequence number is gone).
        this.#waiting.delete(entry.key);
        this.#metrics?.depth(this.len());
        this.#start(entry.key);
        return entry.key;
      }
    }
    return undefined;
  }

  /**
   * True when `key` will be handed out (again) without a further add: it waits for a worker,
   * or was added while processing.
   */
  isDirty(key: string): boolean {
    return this.#dirty.has(key);
  }

  /** Ends processing of `key`; if it was added meanwhile, it goes back in the queue. */
  done(key: string): void {
    if (!this.#processing.delete(key)) return;
    const started = this.#startedAt.get(key);
    this.#startedAt.delete(key);
    if (started !== undefined) this.#metrics?.workDuration((this.#clock.now() - started) / 1000);
    const urgent = this.#urgentAfterDone.delete(key);
    if (this.#dirty.has(key)) this.#enqueue(key, urgent ? 0 : 1);
    if (this.#processing.size === 0) {
      for (const wake of this.#drainWaiters.splice(0)) wake();
    }
  }

  /** Adds `key` after `ms`; if it is already waiting, the earlier deadline wins. */
  addAfter(key: string, ms: number): void {
    if (this.#shuttingDown) return;
    if (!(ms > 0)) {
      this.add(key);
      return;
    }
    const readyAt = this.#clock.now() + ms;
    const current = this.#deadlines.get(key);
    if (current !== undefined && current <= readyAt) return;
    this.#deadlines.set(key, readyAt);
    this.#heapPush({ key, readyAt, seq: this.#seq++ });
    this.#armTimer();
  }

  /** Adds `key` after its rate limiter's delay: per-key backoff and the overall bucket. */
  addRateLimited(key: string): void {
    if (this.#shuttingDown) return;
    this.#metrics?.retry();
    this.addAfter(key, this.#rateLimiter.when(key));
  }

  /** Resets `key`'s backoff (it succeeded). Does not remove it from the queue. */
  forget(key: string): void {
    this.#rateLimiter.forget(key);
  }

  numRequeues(key: string): number {
    return this.#rateLimiter.numRequeues(key);
  }

  /** Keys waiting for a worker (not processing, not delayed). */
  len(): number {
    return this.#waiting.size;
  }

  /** Keys waiting for a deadline (addAfter, addRateLimited). */
  delayedLen(): number {
    return this.#deadlines.size;
  }

  isProcessing(key: string): boolean {
    return this.#processing.has(key);
  }

  shuttingDown(): boolean {
    return this.#shuttingDown;
  }

  /**
   * Stops accepting keys and drops delayed ones. Keys already queued are still handed out;
   * get() resolves to undefined once the queue is empty.
   */
  shutDown(): void {
    this.#shuttingDown = true;
    this.#cancelTimer?.();
    this.#cancelTimer = undefined;
    this.#timerAt = undefined;
    this.#deadlines.clear();
    this.#heap = [];
    if (this.len() === 0) {
      for (const waiter of this.#getters.splice(0)) waiter(undefined);
    }
  }

  /**
   * shutDown(), then waits until no key is processing. Resolves to false if that takes
   * longer than `timeoutMs`.
   */
  shutDownWithDrain(timeoutMs = 30_000): Promise<boolean> {
    this.shutDown();
    if (this.#processing.size === 0) return Promise.resolve(true);
    return new Promise((resolve) => {
      const cancel = this.#clock.schedule(() => {
        const i = this.#drainWaiters.indexOf(drained);
        if (i >= 0) this.#drainWaiters.splice(i, 1);
        resolve(false);
      }, timeoutMs);
      const drained = (): void => {
        cancel();
        resolve(true);
      };
      this.#drainWaiters.push(drained);
    });
  }

  #enqueue(key: string, lane: 0 | 1): void {
    const getter = this.#getters.shift();
    if (getter) {
      this.#start(key);
      getter(key);
      return;
    }
    this.#push(key, lane);
    this.#metrics?.depth(this.len());
  }

  #push(key: string, lane: 0 | 1): void {
    const seq = this.#laneSeq++;
    this.#waiting.set(key, { lane, seq });
    this.#lanes[lane].entries.push({ key, seq });
  }

  #take(): string {
    for (const lane of this.#lanes) {
      while (lane.head < lane.entries.length) {
        const entry = lane.entries[lane.head] as { key: string; seq: number };
        lane.head++;
        // Compact now and then so the array does not grow without bound.
        if (lane.head > 1024 && lane.head * 2 > lane.entries.length) {
          lane.entries = lane.entries.slice(lane.head);
          lane.head = 0;
        }
        if (this.#waiting.get(entry.key)?.seq !== entry.seq) continue; // moved up
        this.#waiting.delete(entry.key);
        this.#metrics?.depth(this.len());
        this.#start(entry.key);
        return entry.key;
      }
    }
    throw new Error('take() on an empty queue');
  }

  #start(key: string): void {
    const now = this.#clock.now();
    this.#processing.add(key);
    this.#dirty.delete(key);
    const queued = this.#queuedAt.get(key);
    this.#queuedAt.delete(key);
    if (queued !== undefined) this.#metrics?.queueDuration((now - queued) / 1000);
    this.#startedAt.set(key, now);
  }

  // --- delayed adds ---

  #armTimer(): void {
    const next = this.#peekLive();
    if (next === undefined) {
      this.#cancelTimer?.();
      this.#cancelTimer = undefined;
      this.#timerAt = undefined;
      return;
    }
    if (this.#timerAt === next.readyAt) return;
    this.#cancelTimer?.();
    this.#timerAt = next.readyAt;
    this.#cancelTimer = this.#clock.schedule(() => this.#fire(), next.readyAt - this.#clock.now());
  }

  #fire(): void {
    this.#cancelTimer = undefined;
    this.#timerAt = undefined;
    const now = this.#clock.now();
    for (let next = this.#peekLive(); next && next.readyAt <= now; next = this.#peekLive()) {
      this.#heapPop();
      this.#deadlines.delete(next.key);
      this.add(next.key);
    }
    this.#armTimer();
  }

  /** The earliest entry that is still the key's current deadline, dropping stale ones. */
  #peekLive(): Waiting | undefined {
    for (let top = this.#heap[0]; top !== undefined; top = this.#heap[0]) {
      if (this.#deadlines.get(top.key) === top.readyAt) return top;
      this.#heapPop();
    }
    return undefined;
  }

  #heapPush(entry: Waiting): void {
    const heap = this.#heap;
    heap.push(entry);
    let i = heap.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!before(heap[i] as Waiting, heap[parent] as Waiting)) break;
      swap(heap, i, parent);
      i = parent;
    }
  }

  #heapPop(): void {
    const heap = this.#heap;
    const last = heap.pop();
    if (last === undefined || heap.length === 0) return;
    heap[0] = last;
    let i = 0;
    for (;;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let min = i;
      if (l < heap.length && before(heap[l] as Waiting, heap[min] as Waiting)) min = l;
      if (r < heap.length && before(heap[r] as Waiting, heap[min] as Waiting)) min = r;
      if (min === i) return;
      swap(heap, i, min);
      i = min;
    }
  }
}

function before(a: Waiting, b: Waiting): boolean {
  return a.readyAt < b.readyAt || (a.readyAt === b.readyAt && a.seq < b.seq);
}

function swap(heap: Waiting[], i: number, j: number): void {
  const t = heap[i] as Waiting;
  heap[i] = heap[j] as Waiting;
  heap[j] = t;
}

import assert from 'node:assert/strict';
import fc from 'fast-check';
import { ItemExponentialBackoff, TokenBucket } from '../../src/controller/rate-limiter.ts';
import { runWorkers } from '../../src/controller/worker-pool.ts';
import { WorkQueue, type WorkQueueMetrics } from '../../src/controller/workqueue.ts';
import { FakeClock } from '../support/fake-clock.ts';

const tick = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

async function until(condition: () => boolean, timeoutMs = 2000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await tick();
  }
}

/** Drains everything currently queued, returning the keys in the order handed out. */
async function drain(queue: WorkQueue): Promise<string[]> {
  const keys: string[] = [];
  while (queue.len() > 0) {
    const key = await queue.get();
    assert.ok(key !== undefined);
    keys.push(key);
    queue.done(key);
  }
  return keys;
}

describe('WorkQueue', () => {
  it('hands out a key added many times once', async () => {
    const queue = new WorkQueue();
    queue.add('a');
    queue.add('b');
    queue.add('a');
    queue.add('a');
    assert.equal(queue.len(), 2);
    assert.deepEqual(await drain(queue), ['a', 'b']);
  });

  it('re-queues a key added while it was processing, only after done()', async () => {
    const queue = new WorkQueue();
    queue.add('a');
    const key = await queue.get();
    assert.equal(key, 'a');

    queue.add('a');
    queue.add('a');
    assert.equal(queue.len(), 0, 'a processing key is not handed out again');

    queue.done('a');
    assert.equal(queue.len(), 1);
    assert.equal(await queue.get(), 'a');
    queue.done('a');
    assert.equal(queue.len(), 0);
  });

  it('hands out urgent keys first, moving a waiting key up, each key once', async () => {
    const queue = new WorkQueue();
    for (const key of ['ns-1', 'ns-2', 'ns-3', 'ns-4']) queue.add(key);
    queue.add('sa-9', { urgent: true });
    queue.add('ns-3', { urgent: true }); // already waiting: moves up, not doubled
    queue.add('ns-1'); // a plain add leaves it where it is
    assert.equal(queue.len(), 5);
    assert.deepEqual(await drain(queue), ['sa-9', 'ns-3', 'ns-1', 'ns-2', 'ns-4']);

    // Processing, then added as urgent: after done() it goes back ahead of the others.
    queue.add('a');
    queue.add('b');
    assert.equal(await queue.get(), 'a');
    queue.add('a', { urgent: true });
    queue.add('a');
    queue.done('a');
    assert.deepEqual(await drain(queue), ['a', 'b']);
    // And a plain re-add after that is plain again.
    queue.add('c');
    assert.equal(await queue.get(), 'c');
    queue.add('c');
    queue.add('d');
    queue.done('c');
    assert.deepEqual(await drain(queue), ['d', 'c']);
  });

  it('wakes a waiting get() when a key arrives', async () => {
    const queue = new WorkQueue();
    const next = queue.get();
    queue.add('x');
    assert.equal(await next, 'x');
    assert.ok(queue.isProcessing('x'));
  });

  it('resolves a waiting get() with undefined when its signal aborts', async () => {
    const queue = new WorkQueue();
    const abort = new AbortController();
    const next = queue.get(abort.signal);
    abort.abort();
    assert.equal(await next, undefined);
    queue.add('x');
    assert.equal(queue.len(), 1, 'the aborted getter does not swallow the key');
  });

  it('never processes a key concurrently and never loses an add (random schedules)', async () => {
    const key = fc.constantFrom('a', 'b', 'c');
    const op = fc.oneof(
      fc.record({ op: fc.constant('add' as const), key, urgent: fc.boolean() }),
      fc.record({ op: fc.constant('get' as const), worker: fc.nat(3) }),
      fc.record({ op: fc.constant('done' as const), worker: fc.nat(3) }),
    );
    await fc.assert(
      fc.asyncProperty(fc.array(op, { maxLength: 60 }), async (ops) => {
        const queue = new WorkQueue();
        // What each of 4 workers holds: a key, 'waiting' inside get(), or nothing.
        const held: Array<string | 'waiting' | undefined> = [
          undefined,
          undefined,
          undefined,
          undefined,
        ];
        const lastAdd = new Map<string, number>();
        const lastStart = new Map<string, number>();
        let step = 0;

        const startGet = (w: number): void => {
          held[w] = 'waiting';
          void queue.get().then((k) => {
            if (k === undefined) {
              held[w] = undefined;
              return;
            }
            assert.ok(!held.includes(k), `${k} handed to two workers at once`);
            held[w] = k;
            lastStart.set(k, step++);
          });
        };
        const finish = (w: number): void => {
          const k = held[w];
          if (k === undefined || k === 'waiting') return;
          held[w] = undefined;
          queue.done(k);
        };

        for (const o of ops) {
          if (o.op === 'add') {
            queue.add(o.key, { urgent: o.urgent });
            lastAdd.set(o.key, step++);
          } else if (o.op === 'get') {
            if (held[o.worker] === undefined) startGet(o.worker);
          } else {
            finish(o.worker);
          }
          await tick();
        }
        // Let all workers run to completion.
        for (let rounds = 0; rounds < 100; rounds++) {
          for (let w = 0; w < held.length; w++) {
            finish(w);
            if (held[w] === undefined && queue.len() > 0) startGet(w);
          }
          await tick();
          if (queue.len() === 0 && held.every((h) => h === undefined || h === 'waiting')) break;
        }
        queue.shutDown();
        await tick();
        assert.ok(
          held.every((h) => h === undefined),
          'waiters released on shutdown',
        );
        for (const [k, added] of lastAdd) {
          const started = lastStart.get(k);
          assert.ok(started !== undefined && started > added, `add of ${k} at ${added} lost`);
        }
      }),
      { numRuns: 300 },
    );
  });

  describe('addAfter', () => {
    it('adds keys in deadline order once their time comes', async () => {
      const clock = new FakeClock();
      const queue = new WorkQueue({ clock });
      queue.addAfter('slow', 300);
      queue.addAfter('fast', 100);
      queue.addAfter('mid', 200);
      assert.equal(queue.len(), 0);
      assert.equal(queue.delayedLen(), 3);

      clock.advance(99);
      assert.equal(queue.len(), 0);
      clock.advance(1);
      assert.deepEqual(await drain(queue), ['fast']);
      clock.advance(250);
      assert.deepEqual(await drain(queue), ['mid', 'slow']);
      assert.equal(clock.pending(), 0, 'no timer left behind');
    });

    it('keeps the earliest deadline when a key is delayed twice', async () => {
      const clock = new FakeClock();
      const queue = new WorkQueue({ clock });
      queue.addAfter('k', 500);
      queue.addAfter('k', 100);
      queue.addAfter('k', 900);
      assert.equal(queue.delayedLen(), 1);
      clock.advance(100);
      assert.deepEqual(await drain(queue), ['k']);
      clock.advance(1000);
      assert.equal(queue.len(), 0, 'the superseded deadlines do not fire');
    });

    it('an immediate add does not cancel a scheduled one', async () => {
      const clock = new FakeClock();
      const queue = new WorkQueue({ clock });
      queue.addAfter('k', 100);
      queue.add('k');
      assert.deepEqual(await drain(queue), ['k']);
      clock.advance(100);
      assert.deepEqual(await drain(queue), ['k']);
    });

    it('adds at once for a zero or negative delay', () => {
      const queue = new WorkQueue({ clock: new FakeClock() });
      queue.addAfter('k', 0);
      queue.addAfter('j', -5);
      assert.equal(queue.len(), 2);
    });
  });

  describe('rate limiting', () => {
    it('backs a key off exponentially up to the cap, and forget() resets it', () => {
      const backoff = new ItemExponentialBackoff(5, 1000);
      const delays = Array.from({ length: 10 }, () => backoff.when('k'));
      assert.deepEqual(delays, [5, 10, 20, 40, 80, 160, 320, 640, 1000, 1000]);
      assert.equal(backoff.numRequeues('k'), 10);
      assert.equal(backoff.when('other'), 5, 'keys back off independently');
      backoff.forget('k');
      assert.equal(backoff.numRequeues('k'), 0);
      assert.equal(backoff.when('k'), 5);
    });

    it('caps a very long failure streak without overflowing', () => {
      const backoff = new ItemExponentialBackoff(5, 1_000_000);
      let last = 0;
      for (let i = 0; i < 2000; i++) last = backoff.when('k');
      assert.equal(last, 1_000_000);
    });

    it('limits the overall rate with a token bucket after the burst', () => {
      const clock = new FakeClock();
      const bucket = new TokenBucket(10, 3, clock);
      assert.deepEqual(
        [bucket.when('a'), bucket.when('b'), bucket.when('c'), bucket.when('d'), bucket.when('e')],
        [0, 0, 0, 100, 200],
      );
      clock.advance(1000);
      // 10 tokens refilled minus the 2 owed, capped at the burst of 3.
      assert.deepEqual([bucket.when('f'), bucket.when('g'), bucket.when('h')], [0, 0, 0]);
    });

    it('addRateLimited delays by the per-key backoff; numRequeues counts; forget resets', async () => {
      const clock = new FakeClock();
      const queue = new WorkQueue({ clock, baseDelayMs: 10, maxDelayMs: 1000 });
      queue.addRateLimited('k');
      assert.equal(queue.numRequeues('k'), 1);
      clock.advance(9);
      assert.equal(queue.len(), 0);
      clock.advance(1);
      assert.deepEqual(await drain(queue), ['k']);

      queue.addRateLimited('k');
      clock.advance(19);
      assert.equal(queue.len(), 0);
      clock.advance(1);
      assert.deepEqual(await drain(queue), ['k']);
      assert.equal(queue.numRequeues('k'), 2);

      queue.forget('k');
      assert.equal(queue.numRequeues('k'), 0);
      queue.addRateLimited('k');
      clock.advance(10);
      assert.deepEqual(await drain(queue), ['k']);
    });

    it('uses the larger of backoff and bucket delay', () => {
      const clock = new FakeClock();
      const queue = new WorkQueue({ clock, baseDelayMs: 1, maxDelayMs: 1, qps: 1, burst: 1 });
      queue.addRateLimited('a');
      queue.addRateLimited('b');
      clock.advance(1);
      assert.equal(queue.len(), 1, 'a passes on the burst; b waits for a token');
      clock.advance(999);
      assert.equal(queue.len(), 2);
    });
  });

  describe('metrics', () => {
    it('reports depth, adds, durations and retries', async () => {
      const clock = new FakeClock();
      const seen = {
        depth: [] as number[],
        adds: 0,
        queue: [] as number[],
        work: [] as number[],
        retries: 0,
      };
      const metrics: WorkQueueMetrics = {
        depth: (n) => seen.depth.push(n),
        add: () => seen.adds++,
        queueDuration: (s) => seen.queue.push(s),
        workDuration: (s) => seen.work.push(s),
        retry: () => seen.retries++,
      };
      const queue = new WorkQueue({ clock, metrics });
      queue.add('a');
      queue.add('a');
      clock.advance(2000);
      const key = await queue.get();
      clock.advance(500);
      queue.done(key as string);
      queue.addRateLimited('a');

      assert.equal(seen.adds, 1, 'a de-duplicated add is not counted');
      assert.deepEqual(seen.depth, [1, 0]);
      assert.deepEqual(seen.queue, [2]);
      assert.deepEqual(seen.work, [0.5]);
      assert.equal(seen.retries, 1);
    });
  });

  describe('shutdown', () => {
    it('releases waiting getters and ignores new keys', async () => {
      const clock = new FakeClock();
      const queue = new WorkQueue({ clock });
      const waiting = queue.get();
      queue.addAfter('later', 100);
      queue.shutDown();
      assert.equal(await waiting, undefined);
      assert.equal(clock.pending(), 0, 'the delay timer is cleared');
      queue.add('x');
      queue.addRateLimited('y');
      assert.equal(queue.len(), 0);
      assert.equal(await queue.get(), undefined);
    });

    it('still hands out keys queued before shutdown, then undefined', async () => {
      const queue = new WorkQueue();
      queue.add('a');
      queue.shutDown();
      assert.equal(await queue.get(), 'a');
      queue.done('a');
      assert.equal(await queue.get(), undefined);
    });

    it('shutDownWithDrain waits for keys in processing', async () => {
      const clock = new FakeClock();
      const queue = new WorkQueue({ clock });
      queue.add('a');
      queue.add('b');
      const a = (await queue.get()) as string;
      const b = (await queue.get()) as string;
      let drained: boolean | undefined;
      const draining = queue.shutDownWithDrain(5000).then((ok) => {
        drained = ok;
      });
      queue.done(a);
      await tick();
      assert.equal(drained, undefined, 'b is still processing');
      queue.done(b);
      await draining;
      assert.equal(drained, true);
      assert.equal(clock.pending(), 0, 'the drain timeout is cleared');
    });

    it('shutDownWithDrain gives up after its timeout', async () => {
      const clock = new FakeClock();
      const queue = new WorkQueue({ clock });
      queue.add('stuck');
      await queue.get();
      const draining = queue.shutDownWithDrain(1000);
      clock.advance(1000);
      assert.equal(await draining, false);
    });
  });
});

describe('runWorkers', () => {
  /** A handler whose calls stay in flight until the test releases them. */
  function gatedHandler() {
    const inFlight = new Map<string, () => void>();
    let maxInFlight = 0;
    const calls: string[] = [];
    const handler = (key: string): Promise<undefined> => {
      calls.push(key);
      return new Promise((resolve) => {
        inFlight.set(key, () => {
          inFlight.delete(key);
          resolve(undefined);
        });
        maxInFlight = Math.max(maxInFlight, inFlight.size);
      });
    };
    return {
      handler,
      inFlight,
      calls,
      maxInFlight: () => maxInFlight,
      releaseAll: () => {
        for (const release of [...inFlight.values()]) release();
      },
    };
  }

  it('runs at most `concurrency` handlers at once and processes every key', async () => {
    const queue = new WorkQueue();
    const gate = gatedHandler();
    const stop = runWorkers(queue, 3, gate.handler);
    for (let i = 0; i < 20; i++) queue.add(`k${i}`);

    await until(() => gate.inFlight.size === 3);
    await tick();
    assert.equal(gate.inFlight.size, 3, 'no fourth handler starts');
    while (gate.calls.length < 20 || gate.inFlight.size > 0) {
      gate.releaseAll();
      await tick();
    }
    assert.equal(gate.maxInFlight(), 3);
    assert.deepEqual(new Set(gate.calls).size, 20);
    await stop();
  });

  it('retries a failing key with backoff and forgets it after success', async () => {
    const queue = new WorkQueue({ baseDelayMs: 1, maxDelayMs: 10 });
    let attempts = 0;
    let succeeded = false;
    const stop = runWorkers(queue, 2, async () => {
      attempts++;
      if (attempts < 3) throw new Error('transient');
      succeeded = true;
      return undefined;
    });
    queue.add('k');
    await until(() => succeeded);
    assert.equal(attempts, 3);
    assert.equal(queue.numRequeues('k'), 0, 'success forgets the backoff');
    await stop();
  });

  it('requeues after requeueAfterMs', async () => {
    const queue = new WorkQueue();
    const times: number[] = [];
    const stop = runWorkers(queue, 1, async () => {
      times.push(Date.now());
      return times.length === 1 ? { requeueAfterMs: 30 } : {};
    });
    queue.add('k');
    await until(() => times.length === 2);
    assert.ok((times[1] as number) - (times[0] as number) >= 25);
    assert.equal(queue.delayedLen(), 0);
    await stop();
  });

  it('keeps the schedule an error carries: the earlier of it and the backoff wins', async () => {
    // A backoff far in the future: only the schedule can bring the key back soon.
    const queue = new WorkQueue({ baseDelayMs: 60_000, maxDelayMs: 60_000 });
    const times: number[] = [];
    const stop = runWorkers(queue, 1, async () => {
      times.push(Date.now());
      if (times.length === 1) {
        throw Object.assign(new Error('one namespace failed'), { requeueAfterMs: 30 });
      }
      return {};
    });
    queue.add('k');
    await until(() => times.length === 2);
    assert.ok((times[1] as number) - (times[0] as number) < 30_000, 'not after the backoff');
    await stop();
  });

  it('stop() waits for handlers in flight and takes no new keys', async () => {
    const queue = new WorkQueue();
    const gate = gatedHandler();
    const stop = runWorkers(queue, 2, gate.handler);
    queue.add('a');
    await until(() => gate.inFlight.size === 1);

    let stopped = false;
    const stopping = stop().then(() => {
      stopped = true;
    });
    await tick();
    assert.equal(stopped, false, 'a is still in flight');
    queue.add('b');
    gate.releaseAll();
    await stopping;
    assert.deepEqual(gate.calls, ['a']);
    assert.equal(queue.len(), 1, 'b stays queued for whoever runs next');
  });
});

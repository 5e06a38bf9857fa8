// A new credential's gathering window (gatherKeys, ADR 0014 "Namespace-major writes") must be
// quiet for real: time in which the event loop could deliver the watch events that queue the
// next credentials. After a stall (GC, a long synchronous step) libuv runs every expired timer
// in one timers phase, before the poll phase delivers the I/O that waited meanwhile; a window
// that closed there closed without the keys that I/O carries. Here the I/O is a message from a
// worker thread (delivered in the poll phase, like a watch's socket data), posted during a
// stall that the test controls: no timing luck, only conditions.
import assert from 'node:assert/strict';
import { Worker } from 'node:worker_threads';
import { systemClock } from '../../src/clock.ts';
import { type Batching, gatherKeys } from '../../src/controller/worker-pool.ts';
import { WorkQueue } from '../../src/controller/workqueue.ts';
import { FakeClock } from '../support/fake-clock.ts';

const tick = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

async function until(condition: () => boolean, timeoutMs = 2000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await tick();
  }
}

function batching(quietMs: number, maxWaitMs: number, maxKeys = 10): Batching {
  return {
    accepts: () => true,
    gathers: (key) => key.startsWith('new'),
    maxKeys,
    quietMs,
    maxWaitMs,
    handler: async (keys) => keys.map(() => ({ status: 'fulfilled', value: undefined })),
  };
}

// Waits until flags[0] is set, posts one message, then sets flags[1]: the main thread can
// block (a stall) until the message is on its way.
const POSTER = `
const { parentPort, workerData } = require('node:worker_threads');
const flags = new Int32Array(workerData);
Atomics.wait(flags, 0, 0);
parentPort.postMessage('created');
Atomics.store(flags, 1, 1);
Atomics.notify(flags, 1);
`;

/**
 * Gathers from 'new-1' with the system clock, the window opened at the start of a stall in the
 * check phase (a setImmediate callback: where a long synchronous step or a GC pause blocks the
 * loop after the poll phase, as in the handling of a watch's data). The worker posts (its
 * handler queues 'new-2', as a watch event of a credential just created does) during the
 * stall, which lasts until the window's first sleep has been due for `overdueMs`. The next
 * iteration's timers phase then runs that sleep before its poll phase delivers the message.
 * (A stall inside a timer callback would not show it: Node 24 runs a timer that fell due
 * during another timer's callback only in the next iteration, after the poll phase.)
 */
async function gatherAcrossStall(
  quietMs: number,
  overdueMs: number,
): Promise<{ keys: string[]; delivered: boolean }> {
  const flags = new Int32Array(new SharedArrayBuffer(8));
  const worker = new Worker(POSTER, { eval: true, workerData: flags.buffer });
  try {
    await new Promise((resolve) => worker.once('online', resolve));
    const queue = new WorkQueue();
    let delivered = false;
    worker.on('message', () => {
      delivered = true;
      queue.add('new-2');
    });
    queue.add('new-1');
    const gathered = await new Promise<Promise<string[]>>((resolve) =>
      setImmediate(() => {
        const first = queue.tryGet() as string;
        // Runs up to its first await: the window's sleep is scheduled when this returns.
        resolve(gatherKeys(queue, first, batching(quietMs, 1_000), systemClock));
        const opened = performance.now();
        Atomics.store(flags, 0, 1);
        Atomics.notify(flags, 0);
        assert.notEqual(Atomics.wait(flags, 1, 0, 5_000), 'timed-out', 'the worker posted');
        while (performance.now() < opened + quietMs + overdueMs) {
          // the stall: the loop runs nothing
        }
      }),
    );
    const keys = await gathered;
    await until(() => delivered);
    return { keys, delivered };
  } finally {
    await worker.terminate();
  }
}

describe('gatherKeys across event-loop stalls', () => {
  it('a stall longer than the quiet period does not close the window: the events it held back join', async () => {
    const { keys } = await gatherAcrossStall(50, 100);
    assert.deepEqual(
      keys,
      ['new-1', 'new-2'],
      'the credential whose event waited behind the stall joins the batch',
    );
  });

  it('a sleep that falls due during a short stall looks at the I/O that came meanwhile before closing', async () => {
    // The stall ends 10 ms after the sleep was due: barely late, but the message is waiting.
    const { keys } = await gatherAcrossStall(100, 10);
    assert.deepEqual(keys, ['new-1', 'new-2'], 'the poll phase runs before the window closes');
  });

  it('a sleep that overshot by more than half the quiet period is not quiet; a little late is', async () => {
    const clock = new FakeClock();
    const queue = new WorkQueue({ clock });
    queue.add('new-1');
    let done: string[] | undefined;
    void gatherKeys(queue, queue.tryGet() as string, batching(200, 2_000), clock).then((keys) => {
      done = keys;
    });
    await tick();
    clock.advance(200 + 150); // stalled: nothing came, but nothing could
    await tick();
    assert.equal(done, undefined, 'a stalled window gathers on');
    queue.add('new-2');
    clock.advance(200);
    await tick();
    assert.equal(done, undefined, 'a new one came: waits another quiet period');
    clock.advance(200 + 50); // a little late: still quiet
    await until(() => done !== undefined);
    assert.deepEqual(done, ['new-1', 'new-2']);
  });

  it('maxWaitMs counts the loop’s time, not the stalls’; the wall clock bounds it at twice that', async () => {
    const clock = new FakeClock();
    const queue = new WorkQueue({ clock });
    queue.add('new-0');
    let done: string[] | undefined;
    const opened = clock.now();
    void gatherKeys(queue, queue.tryGet() as string, batching(200, 2_000, 64), clock).then(
      (keys) => {
        done = keys;
      },
    );
    // Each sleep overshoots by 50 ms (still quiet) and a new key comes each time: the 2 s of
    // loop time allow ten sleeps although they take 2.5 s.
    for (let i = 1; done === undefined && i < 50; i++) {
      await tick();
      queue.add(`new-${i}`);
      clock.advance(250);
      await tick();
    }
    await until(() => done !== undefined);
    assert.equal(done?.length, 11, 'ten sleeps of 200 ms of loop time');
    assert.equal(clock.now() - opened, 2_500);

    // Every sleep stalled by 800 ms, nothing new: gathers on, but for 4 s of wall clock at most.
    const queue2 = new WorkQueue({ clock });
    queue2.add('new-a');
    let done2: string[] | undefined;
    const opened2 = clock.now();
    void gatherKeys(queue2, queue2.tryGet() as string, batching(200, 2_000), clock).then((keys) => {
      done2 = keys;
    });
    let sleeps = 0;
    for (;;) {
      await until(() => done2 !== undefined || clock.pending() > 0);
      if (done2 !== undefined) break;
      clock.advance(1_000);
      sleeps++;
    }
    assert.deepEqual(done2, ['new-a']);
    assert.equal(sleeps, 4, 'four stalled sleeps: 800 ms of loop time, 4 s of wall clock');
    assert.equal(clock.now() - opened2, 4_000);
  });
});

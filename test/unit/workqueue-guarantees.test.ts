// The work queue's promises as a controller relies on them: urgent work jumps the line even
// while its key is processing, delayed keys come out in deadline order (FIFO on ties), nothing
// is accepted once it shuts down, and the queue-duration metric measures each wait anew.
import assert from 'node:assert/strict';
import { WorkQueue, type WorkQueueMetrics } from '../../src/controller/workqueue.ts';
import { FakeClock } from '../support/fake-clock.ts';

async function take(queue: WorkQueue): Promise<string> {
  const key = await queue.get();
  assert.ok(key !== undefined, 'a key');
  return key;
}

describe('work queue guarantees', () => {
  it('a key made urgent while processing is handed out first once done', async () => {
    const queue = new WorkQueue({ clock: new FakeClock() });
    queue.add('a');
    assert.equal(await take(queue), 'a');
    queue.add('b');
    queue.add('a');
    queue.add('a', { urgent: true });
    queue.done('a');
    assert.equal(await take(queue), 'a', 'urgent: before b');
    assert.equal(await take(queue), 'b');
  });

  it('adding a waiting key again keeps its place; only an urgent add moves it up', async () => {
    const queue = new WorkQueue({ clock: new FakeClock() });
    queue.add('b');
    queue.add('a');
    queue.add('a');
    assert.equal(await take(queue), 'b');
    assert.equal(await take(queue), 'a');
  });

  it('an urgent add of a key already urgent does not make its next run urgent', async () => {
    const queue = new WorkQueue({ clock: new FakeClock() });
    queue.add('a', { urgent: true });
    queue.add('a', { urgent: true });
    assert.equal(await take(queue), 'a');
    queue.add('a');
    queue.add('b');
    queue.done('a');
    assert.equal(await take(queue), 'b', 'a was added as normal work this time');
    assert.equal(await take(queue), 'a');
  });

  it('many keys delayed to the same instant come out in the order they were added', async () => {
    // A burst of retries with one backoff (a hundred namespaces failing alike) is served in
    // the order it failed, not reshuffled by the timer's internals.
    const clock = new FakeClock();
    const queue = new WorkQueue({ clock });
    const keys = Array.from({ length: 12 }, (_, i) => `ns-${i}`);
    for (const key of keys) queue.addAfter(key, 100);
    clock.advance(100);
    const order: string[] = [];
    while (queue.len() > 0) {
      const key = await take(queue);
      order.push(key);
      queue.done(key);
    }
    assert.deepEqual(order, keys);
  });

  it('delayed keys come out in deadline order, first added first on a tie', async () => {
    const clock = new FakeClock();
    const queue = new WorkQueue({ clock });
    const deadlines: Array<[string, number]> = [
      ['k50', 50],
      ['k10', 10],
      ['k40', 40],
      ['k20a', 20],
      ['k30', 30],
      ['k60', 60],
      ['k5', 5],
      ['k20b', 20],
      ['k45', 45],
    ];
    for (const [key, ms] of deadlines) queue.addAfter(key, ms);
    const order: string[] = [];
    for (let t = 0; t < 60; t += 1) {
      clock.advance(1);
      while (queue.len() > 0) {
        const key = await take(queue);
        order.push(key);
        queue.done(key);
      }
    }
    assert.deepEqual(order, ['k5', 'k10', 'k20a', 'k20b', 'k30', 'k40', 'k45', 'k50', 'k60']);
  });

  it('after shutDown nothing is accepted: no delayed key, no retry counted', () => {
    const clock = new FakeClock();
    const queue = new WorkQueue({ clock });
    queue.addAfter('pending', 100);
    queue.shutDown();
    assert.equal(queue.delayedLen(), 0, 'delayed keys dropped');
    queue.addAfter('late', 100);
    queue.addRateLimited('late');
    assert.equal(queue.delayedLen(), 0);
    assert.equal(queue.numRequeues('late'), 0);
  });

  it('shutDownWithDrain shuts down, and resolves at once when nothing is processing', async () => {
    const queue = new WorkQueue({ clock: new FakeClock() });
    assert.equal(await queue.shutDownWithDrain(1000), true);
    assert.equal(queue.shuttingDown(), true);
  });

  it('the queue duration is measured from each add, not the first one ever', async () => {
    const clock = new FakeClock();
    const waits: number[] = [];
    const metrics: WorkQueueMetrics = {
      depth: () => {},
      add: () => {},
      queueDuration: (seconds) => waits.push(seconds),
      workDuration: () => {},
      retry: () => {},
    };
    const queue = new WorkQueue({ clock, metrics });
    queue.add('a');
    clock.advance(500);
    queue.done(await take(queue));
    clock.advance(10_000);
    queue.add('a');
    clock.advance(200);
    queue.done(await take(queue));
    assert.deepEqual(waits, [0.5, 0.2]);
  });
});

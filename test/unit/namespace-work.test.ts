// The fast path's queue by namespace (NamespaceWork): every credential due in a namespace is
// handed to one sync, a credential that becomes due while its namespace syncs is not lost,
// and one that failed stays due for the namespace's retry.
import assert from 'node:assert/strict';
import { NamespaceWork } from '../../src/controller/namespace-work.ts';
import { runWorkers } from '../../src/controller/worker-pool.ts';
import { WorkQueue } from '../../src/controller/workqueue.ts';

async function until(condition: () => boolean, timeoutMs = 2000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((resolve) => setImmediate(resolve));
  }
}

describe('NamespaceWork', () => {
  it('hands every credential due in a namespace to one sync, once', async () => {
    const work = new NamespaceWork(new WorkQueue());
    work.add('a', 'team-1');
    work.add('b', 'team-2');
    work.add('c', 'team-1', { urgent: true });
    work.add('a', 'team-1');
    assert.equal(work.queue.len(), 2, 'one key per namespace');
    assert.equal(await work.queue.get(), 'team-1', 'urgent: added urgent once, ahead');
    assert.deepEqual(work.take('team-1'), ['a', 'c']);
    assert.deepEqual(work.take('team-1'), [], 'taken: no longer due');
    assert.equal(work.size, 1);
  });

  it('syncs again a namespace whose credential became due during its sync, and retries a failed credential with backoff', async () => {
    const work = new NamespaceWork(new WorkQueue({ baseDelayMs: 5 }));
    const syncs: string[][] = [];
    let release: () => void = () => {};
    const held = new Promise<void>((resolve) => {
      release = resolve;
    });
    let failures = 2;
    const stop = runWorkers(work.queue, 4, async (namespace) => {
      const credentials = work.take(namespace);
      syncs.push(credentials);
      if (syncs.length === 1) await held;
      if (failures > 0 && credentials.includes('b')) {
        failures -= 1;
        work.retry(namespace, ['b']);
        throw new Error('b failed');
      }
      return undefined;
    });
    try {
      work.add('a', 'team-1');
      work.add('b', 'team-1');
      await until(() => syncs.length === 1);
      // Due while team-1 syncs: not handed to a second worker at once, not lost.
      work.add('c', 'team-1');
      await new Promise((resolve) => setImmediate(resolve));
      assert.equal(syncs.length, 1, 'never two syncs of one namespace at once');
      release();
      // b failed: due again, with c (the namespace was due anyway); failed again: synced
      // again only by the namespace's backoff.
      await until(() => syncs.length === 3);
      assert.deepEqual(syncs, [['a', 'b'], ['c', 'b'], ['b']]);
      await until(() => work.queue.len() === 0 && !work.queue.isProcessing('team-1'));
      assert.equal(work.size, 0, 'nothing left due');
    } finally {
      work.queue.shutDown();
      await stop();
    }
  });
});

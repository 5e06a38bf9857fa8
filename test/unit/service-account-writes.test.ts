import assert from 'node:assert/strict';
import type { V1ServiceAccount } from '@kubernetes/client-node';
import { KubeApiError } from '../../src/kube/rest.ts';
import { ServiceAccountWrites } from '../../src/kube/service-accounts.ts';
import { InMemoryCluster } from '../support/in-memory-cluster.ts';

const adds = (name: string) => (sa: V1ServiceAccount) =>
  sa.imagePullSecrets?.some((e) => e.name === name)
    ? undefined
    : { ...sa, imagePullSecrets: [...(sa.imagePullSecrets ?? []), { name }] };

const names = (sa: V1ServiceAccount | undefined) => (sa?.imagePullSecrets ?? []).map((e) => e.name);

const serviceAccountCalls = (cluster: InMemoryCluster) =>
  cluster.calls.filter((c) => c.resource === 'serviceaccounts').map((c) => `${c.verb} ${c.key}`);

describe('ServiceAccountWrites: one write per ServiceAccount for edits that arrive together', () => {
  it('puts edits of several credentials made at once in one write, each applied', async () => {
    const cluster = new InMemoryCluster();
    const sa = cluster.addServiceAccount('t', 'default', [{ name: 'theirs' }]);
    const writes = new ServiceAccountWrites(cluster);
    const results = await Promise.all(['a', 'b', 'c'].map((n) => writes.update(sa, adds(n))));
    assert.deepEqual(serviceAccountCalls(cluster), ['update t/default']);
    assert.deepEqual(names(cluster.accounts.get('t/default')), ['theirs', 'a', 'b', 'c']);
    assert.deepEqual(
      results.map((r) => (r.kind === 'written' ? `written merged=${r.merged}` : r.kind)),
      ['written merged=false', 'written merged=true', 'written merged=true'],
    );
  });

  it('writes different ServiceAccounts separately', async () => {
    const cluster = new InMemoryCluster();
    const one = cluster.addServiceAccount('t', 'default');
    const two = cluster.addServiceAccount('t', 'builder');
    const writes = new ServiceAccountWrites(cluster);
    await Promise.all([writes.update(one, adds('a')), writes.update(two, adds('a'))]);
    assert.deepEqual(serviceAccountCalls(cluster).sort(), ['update t/builder', 'update t/default']);
  });

  it('sends an edit that arrives during a write next, on what that write returned (no 409, no read)', async () => {
    const cluster = new InMemoryCluster();
    const sa = cluster.addServiceAccount('t', 'default');
    let release: () => void = () => {};
    const gate = new Promise<void>((r) => {
      release = r;
    });
    const slow = {
      readServiceAccount: cluster.readServiceAccount.bind(cluster),
      replaceServiceAccount: async (next: V1ServiceAccount) => {
        await gate;
        return cluster.replaceServiceAccount(next);
      },
    };
    const writes = new ServiceAccountWrites(slow);
    const first = writes.update(sa, adds('a'));
    await new Promise((r) => setImmediate(r));
    await new Promise((r) => setImmediate(r));
    // The first write is in flight; these two see the stale cached object.
    const later = [writes.update(sa, adds('b')), writes.update(sa, adds('c'))];
    release();
    await Promise.all([first, ...later]);
    assert.deepEqual(serviceAccountCalls(cluster), ['update t/default', 'update t/default']);
    assert.deepEqual(names(cluster.accounts.get('t/default')), ['a', 'b', 'c']);
  });

  it('answers unchanged to an edit with nothing to do while the others are written', async () => {
    const cluster = new InMemoryCluster();
    const sa = cluster.addServiceAccount('t', 'default', [{ name: 'a' }]);
    const writes = new ServiceAccountWrites(cluster);
    const [a, b] = await Promise.all([writes.update(sa, adds('a')), writes.update(sa, adds('b'))]);
    assert.deepEqual(a, { kind: 'unchanged' });
    assert.equal(b.kind === 'written' && b.merged, false);
    assert.deepEqual(names(cluster.accounts.get('t/default')), ['a', 'b']);
  });

  it('re-applies every edit of the write after a 409 from another writer', async () => {
    const cluster = new InMemoryCluster();
    const stale = cluster.addServiceAccount('t', 'default');
    cluster.accounts.set('t/default', {
      ...stale,
      metadata: { ...stale.metadata, resourceVersion: '999' },
      imagePullSecrets: [{ name: 'someone' }],
    });
    const writes = new ServiceAccountWrites(cluster);
    await Promise.all([writes.update(stale, adds('a')), writes.update(stale, adds('b'))]);
    assert.deepEqual(names(cluster.accounts.get('t/default')), ['someone', 'a', 'b']);
    assert.deepEqual(serviceAccountCalls(cluster), [
      'update t/default',
      'get t/default',
      'update t/default',
    ]);
  });

  it('fails every edit of a failed write, and the next edit is written afresh', async () => {
    const cluster = new InMemoryCluster();
    const sa = cluster.addServiceAccount('t', 'default');
    cluster.failNext((c) => c.verb === 'update', new KubeApiError(500, 'InternalError', 'etcd'));
    const writes = new ServiceAccountWrites(cluster);
    const failed = await Promise.allSettled([
      writes.update(sa, adds('a')),
      writes.update(sa, adds('b')),
    ]);
    assert.deepEqual(
      failed.map((r) => r.status),
      ['rejected', 'rejected'],
    );
    const again = await writes.update(sa, adds('a'));
    assert.equal(again.kind, 'written');
    assert.deepEqual(names(cluster.accounts.get('t/default')), ['a']);
  });

  it('says gone to every edit of a ServiceAccount deleted under it', async () => {
    const cluster = new InMemoryCluster();
    const sa = cluster.addServiceAccount('t', 'default');
    cluster.accounts.delete('t/default');
    const writes = new ServiceAccountWrites(cluster);
    const results = await Promise.all([writes.update(sa, adds('a')), writes.update(sa, adds('b'))]);
    assert.deepEqual(results, [{ kind: 'gone' }, { kind: 'gone' }]);
  });
});

describe('ServiceAccountWrites: what a tenant (or a lost leadership) does meanwhile', () => {
  it('re-adds an entry a tenant removed right after our write, from the cached object that shows it', async () => {
    const cluster = new InMemoryCluster();
    const sa = cluster.addServiceAccount('t', 'default');
    const writes = new ServiceAccountWrites({
      readServiceAccount: cluster.readServiceAccount.bind(cluster),
      replaceServiceAccount: async (next: V1ServiceAccount) => {
        const written = await cluster.replaceServiceAccount(next);
        if (names(written).includes('a') && !tenantDone) {
          tenantDone = true;
          // The tenant removes our entry at once; the watch brings that version to the cache
          // before our PUT's answer is processed, and our reconcile asks to add it back.
          const removed = await cluster.replaceServiceAccount({ ...written, imagePullSecrets: [] });
          again = writes.update(removed, adds('a'));
        }
        return written;
      },
    });
    let tenantDone = false;
    let again: Promise<unknown> | undefined;
    await writes.update(sa, adds('a'));
    await again;
    assert.deepEqual(names(cluster.accounts.get('t/default')), ['a']);
  });

  it('rejects queued edits and writes nothing once leadership is lost', async () => {
    const cluster = new InMemoryCluster();
    const sa = cluster.addServiceAccount('t', 'default');
    let release: () => void = () => {};
    const gate = new Promise<void>((r) => {
      release = r;
    });
    const leadership = new AbortController();
    const writes = new ServiceAccountWrites(
      {
        readServiceAccount: cluster.readServiceAccount.bind(cluster),
        replaceServiceAccount: async (next: V1ServiceAccount) => {
          await gate;
          return cluster.replaceServiceAccount(next);
        },
      },
      leadership.signal,
    );
    const first = writes.update(sa, adds('a'));
    await new Promise((r) => setImmediate(r));
    await new Promise((r) => setImmediate(r));
    const queued = [writes.update(sa, adds('b')), writes.update(sa, adds('c'))];
    leadership.abort(new Error('leadership lost'));
    const settled = await Promise.allSettled(queued);
    assert.deepEqual(
      settled.map((s) => s.status),
      ['rejected', 'rejected'],
    );
    release();
    await first.catch(() => undefined);
    assert.equal(names(cluster.accounts.get('t/default')).includes('b'), false);
    // And after: refused at once, nothing sent.
    const calls = cluster.calls.length;
    await assert.rejects(writes.update(sa, adds('d')));
    assert.equal(cluster.calls.length, calls);
  });

  it("stops with the client's own leadership signal (the leader's KubeApi)", async () => {
    const cluster = new InMemoryCluster();
    const sa = cluster.addServiceAccount('t', 'default');
    const leadership = new AbortController();
    const writes = new ServiceAccountWrites({
      readServiceAccount: cluster.readServiceAccount.bind(cluster),
      replaceServiceAccount: cluster.replaceServiceAccount.bind(cluster),
      abortSignal: leadership.signal,
    });
    leadership.abort();
    await assert.rejects(writes.update(sa, adds('a')));
    assert.deepEqual(names(cluster.accounts.get('t/default')), []);
  });
});

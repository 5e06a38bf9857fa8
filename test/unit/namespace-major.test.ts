// Namespace-major writes (ADR 0014; issue #20 scenario 2): full reconciles due together are
// gathered by the worker pool (WorkQueue.tryGet, gatherKeys) and fanned out together by the
// reconciler (reconcileTogether): one write per ServiceAccount for all their entries. And a
// ServiceAccount event queues no fast path for a credential whose full reconcile covers it.
import assert from 'node:assert/strict';
import type { RegistryCredentialSpec } from '../../src/api/types.ts';
import { FastPathFirst } from '../../src/controller/fast-path-first.ts';
import { Reconciler } from '../../src/controller/reconciler.ts';
import { type Batching, gatherKeys, runWorkers } from '../../src/controller/worker-pool.ts';
import { WorkQueue } from '../../src/controller/workqueue.ts';
import { TokenCache } from '../../src/credentials/token-cache.ts';
import { silentLogger } from '../../src/observability/logger.ts';
import { fixture, fullOf, managedSecret, nsOf, sa } from '../support/event-mapping-fixture.ts';
import { FakeClock } from '../support/fake-clock.ts';
import { InMemoryCluster } from '../support/in-memory-cluster.ts';

const tick = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

async function until(condition: () => boolean, timeoutMs = 2000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await tick();
  }
}

function batching(
  isNew: (key: string) => boolean,
  handler: Batching['handler'] = async (keys) =>
    keys.map(() => ({ status: 'fulfilled', value: undefined })),
  maxKeys = 10,
): Batching {
  return {
    accepts: (key) => !key.startsWith('*'),
    gathers: isNew,
    maxKeys,
    quietMs: 200,
    maxWaitMs: 2_000,
    handler,
  };
}

describe('WorkQueue.tryGet', () => {
  it('hands out the first waiting key it accepts (urgent lane first), once, as processing', async () => {
    const queue = new WorkQueue({ clock: new FakeClock() });
    queue.add('a');
    queue.add('*skip');
    queue.add('b');
    queue.add('c', { urgent: true });
    assert.equal(
      queue.tryGet((k) => k !== 'c'),
      'a',
    );
    assert.equal(queue.tryGet(), 'c', 'urgent lane first');
    assert.equal(
      queue.tryGet((k) => !k.startsWith('*')),
      'b',
    );
    assert.equal(
      queue.tryGet((k) => !k.startsWith('*')),
      undefined,
    );
    assert.ok(queue.isProcessing('a') && queue.isProcessing('b') && queue.isProcessing('c'));
    assert.equal(queue.len(), 1);
    assert.equal(await queue.get(), '*skip', 'get() skips what tryGet took');
    // Added while processing: dirty, back in the queue once done.
    queue.add('a');
    assert.equal(queue.isDirty('a'), true);
    queue.done('a');
    assert.equal(queue.tryGet(), 'a');
    queue.done('a');
    assert.equal(queue.isDirty('a'), false);
  });
});

describe('gatherKeys', () => {
  it('takes every ready key it accepts, without waiting, for a key that does not gather (a rotation)', async () => {
    const clock = new FakeClock();
    const queue = new WorkQueue({ clock });
    for (const k of ['b', '*orphans', 'c']) queue.add(k);
    const first = queue.tryGet() as string;
    const keys = await gatherKeys(
      queue,
      first,
      batching(() => false),
      clock,
    );
    assert.deepEqual(keys, ['b', 'c']);
    assert.equal(clock.pending(), 0, 'no timer: a rotation is not delayed');
  });

  it('for a new credential, waits until no new one came for the quiet period', async () => {
    const clock = new FakeClock();
    const queue = new WorkQueue({ clock });
    queue.add('new-1');
    const first = queue.tryGet() as string;
    let done: string[] | undefined;
    void gatherKeys(
      queue,
      first,
      batching((k) => k.startsWith('new')),
      clock,
    ).then((keys) => {
      done = keys;
    });
    await tick();
    queue.add('new-2');
    clock.advance(200);
    await tick();
    assert.equal(done, undefined, 'a new one came: waits another quiet period');
    queue.add('old-1'); // due too, but not new: taken, does not extend the wait
    clock.advance(200);
    await until(() => done !== undefined);
    assert.deepEqual(done, ['new-1', 'new-2', 'old-1']);
  });

  it('stops waiting after maxWaitMs however many keep coming, and at maxKeys', async () => {
    const clock = new FakeClock();
    const queue = new WorkQueue({ clock });
    queue.add('new-0');
    let done: string[] | undefined;
    void gatherKeys(
      queue,
      queue.tryGet() as string,
      batching(() => true, undefined, 100),
      clock,
    ).then((keys) => {
      done = keys;
    });
    for (let i = 1; done === undefined && i < 50; i++) {
      await tick();
      queue.add(`new-${i}`);
      clock.advance(200);
      await tick();
    }
    await until(() => done !== undefined);
    assert.equal(done?.length, 11, 'ten quiet periods of 200 ms fit in 2 s');

    const queue2 = new WorkQueue({ clock });
    for (let i = 0; i < 5; i++) queue2.add(`new-${i}`);
    const keys = await gatherKeys(
      queue2,
      queue2.tryGet() as string,
      batching(() => true, undefined, 3),
      clock,
    );
    assert.deepEqual(keys, ['new-0', 'new-1', 'new-2'], 'at most maxKeys, no wait when full');
    assert.equal(queue2.len(), 2);
  });
});

describe('runWorkers with batching', () => {
  it('hands keys due together, those other workers took included, to one call, and settles each on its own result', async () => {
    const clock = new FakeClock();
    const queue = new WorkQueue({ clock, baseDelayMs: 5 });
    const calls: string[][] = [];
    const alone: string[] = [];
    const stop = runWorkers(
      queue,
      3,
      async (key) => {
        alone.push(key);
        return {};
      },
      {
        clock,
        batching: batching(
          (k) => k.startsWith('new'),
          async (keys) => {
            calls.push([...keys]);
            return keys.map((k) =>
              k === 'new-bad'
                ? { status: 'rejected', reason: new Error('boom') }
                : { status: 'fulfilled', value: k === 'new-2' ? { requeueAfterMs: 1000 } : {} },
            );
          },
        ),
      },
    );
    queue.add('new-1');
    await tick();
    // Idle workers take these: they join the batch being gathered.
    queue.add('new-2');
    queue.add('new-bad');
    queue.add('*orphans'); // not batched: handled alone
    await tick();
    await tick();
    clock.advance(200);
    await tick();
    clock.advance(200);
    await until(() => calls.length === 1 && !queue.isProcessing('new-1'));
    assert.deepEqual(calls, [['new-1', 'new-2', 'new-bad']]);
    assert.deepEqual(alone, ['*orphans']);
    for (const k of ['new-1', 'new-2', 'new-bad']) assert.equal(queue.isProcessing(k), false);
    assert.equal(queue.numRequeues('new-bad'), 1, 'its error: rate-limited retry');
    assert.equal(queue.numRequeues('new-1'), 0);
    assert.equal(queue.delayedLen(), 2, 'new-2 requeued after 1 s, new-bad after its backoff');
    await stop();
  });
});

/** Makes `view.fullReconcileCovers` answer from the returned set of `credential/namespace`. */
function coverage(view: object): Set<string> {
  const covered = new Set<string>();
  Object.assign(view, {
    fullReconcileCovers: (credential: string, namespace: string) =>
      covered.has(`${credential}/${namespace}`),
  });
  return covered;
}

describe('ServiceAccount events and full reconciles that cover the namespace', () => {
  it('an update queues no fast path for a credential whose full reconcile covers the namespace; a new ServiceAccount still does', () => {
    const { view, mapping } = fixture();
    const covered = coverage(view);
    const update = () => mapping.serviceAccount({ type: 'update', object: sa('a1', 'default') });
    assert.deepEqual(update(), [nsOf('acme', 'a1')], 'entry missing, nothing covers it');
    covered.add('acme/a1');
    assert.deepEqual(update(), [], 'its full reconcile will write it from the cache');
    assert.deepEqual(
      mapping.serviceAccount({ type: 'add', object: sa('a1', 'builder') }),
      [nsOf('acme', 'a1')],
      'onboarding: a new ServiceAccount keeps its fast path',
    );
  });
});

describe('Secret events and full reconciles that cover the namespace', () => {
  it("a managed Secret replayed or edited queues no fast path where its credential's full reconcile will write it; elsewhere it is restored at once", () => {
    // An informer resync during a rotation of 10,000 replays every Secret not rotated yet
    // (older bytes than the credential's latest): each queued an urgent fast-path sync that
    // the rotation's fan-out was about to make anyway, and a burst of new namespaces waited
    // behind them (bench --scale, onboarding p95 8 s).
    const { view, mapping } = fixture();
    const covered = coverage(view);
    const secret = managedSecret('a1', 'acme');
    view.secrets = [secret];
    const replay = () => mapping.secret({ type: 'update', object: secret, old: secret }, false);
    const deleted = () => mapping.secret({ type: 'delete', object: secret }, false);
    assert.deepEqual(replay(), [nsOf('acme', 'a1')], 'nothing covers it: restored at once');
    // A delete also frees the name: the credentials writing it re-check (a full reconcile).
    assert.deepEqual(deleted(), [nsOf('acme', 'a1'), fullOf('acme')]);
    covered.add('acme/a1');
    assert.deepEqual(replay(), [], 'its full reconcile writes it from the cache');
    assert.deepEqual(deleted(), [fullOf('acme')], 'and recreates it');
  });
});

describe('Reconciler.reconcileTogether', () => {
  const OPERATOR_NS = 'regcred-system';
  const b64 = (s: string) => Buffer.from(s, 'utf8').toString('base64');

  function setup(fastPathFirst?: FastPathFirst) {
    const cluster = new InMemoryCluster();
    cluster.addNamespace(OPERATOR_NS);
    cluster.addSecret({
      metadata: { name: 'src', namespace: OPERATOR_NS, labels: { 'regcred.dev/source': 'true' } },
      type: 'Opaque',
      data: { username: b64('robot'), password: b64('s3cret') },
    });
    const reconciler = new Reconciler({
      view: cluster,
      api: cluster,
      events: { record: async () => {} },
      log: silentLogger,
      policy: { operatorNamespace: OPERATOR_NS, allowedSourceNamespaces: new Set([OPERATOR_NS]) },
      fanoutConcurrency: 4,
      workers: 2,
      tokens: new TokenCache(),
      now: () => new Date('2026-06-01T00:00:00Z'),
      ...(fastPathFirst ? { fastPathFirst } : {}),
    });
    const spec = (label: string, extra: Partial<RegistryCredentialSpec> = {}) => ({
      secretName: label,
      namespaceSelector: { matchLabels: { [label]: 'y' } },
      registries: [{ server: 'registry.example.com', basic: { secretRef: { name: 'src' } } }],
      ...extra,
    });
    return { cluster, reconciler, spec };
  }

  it('writes each ServiceAccount once with every credential’s entry, keeping a tenant’s, and reports each credential alone', async () => {
    const { cluster, reconciler, spec } = setup();
    cluster.addNamespace('n1', { a: 'y', b: 'y', c: 'y' });
    cluster.addServiceAccount('n1', 'default', [{ name: 'tenant-own' }]);
    cluster.addNamespace('n2', { a: 'y', c: 'y' });
    cluster.addServiceAccount('n2', 'default');
    cluster.addServiceAccount('n2', 'builder');
    cluster.addNamespace('n3', { b: 'y' });
    cluster.addServiceAccount('n3', 'default');
    cluster.addCredential('a', spec('a'));
    cluster.addCredential('b', spec('b'));
    cluster.addCredential('c', spec('c', { serviceAccounts: ['*'] }));
    // b's Secret name is taken in n3 by someone else: a conflict for b alone.
    cluster.addSecret({ metadata: { name: 'b', namespace: 'n3' }, type: 'Opaque' });

    const results = await reconciler.reconcileTogether(['a', 'b', 'c']);

    assert.deepEqual(
      results.map((r) => r.status),
      ['fulfilled', 'fulfilled', 'fulfilled'],
    );
    const saWrites = cluster.writes().filter((w) => w.includes('serviceaccounts'));
    assert.deepEqual(saWrites.sort(), [
      'update serviceaccounts n1/default',
      'update serviceaccounts n2/builder',
      'update serviceaccounts n2/default',
    ]);
    const entries = (key: string) =>
      (cluster.accounts.get(key)?.imagePullSecrets ?? []).map((e) => e.name);
    assert.deepEqual(entries('n1/default'), ['tenant-own', 'a', 'b', 'c']);
    assert.deepEqual(entries('n2/default'), ['a', 'c']);
    assert.deepEqual(entries('n2/builder'), ['c'], 'only c selects every ServiceAccount');
    assert.deepEqual(entries('n3/default'), [], 'no entry without its Secret');
    const status = (name: string) => cluster.credentialObjects.get(name)?.status;
    assert.equal(status('a')?.syncedNamespaces, 2);
    assert.equal(status('c')?.syncedNamespaces, 2);
    assert.equal(status('b')?.targetNamespaces, 2);
    assert.equal(status('b')?.syncedNamespaces, 1);
    assert.deepEqual(
      status('b')?.failedNamespaces?.map((f) => f.name),
      ['n3'],
    );
    assert.ok(
      results[1]?.status === 'fulfilled' && results[1].value.requeueAfterMs !== undefined,
      'the conflict is rechecked later',
    );

    // Replayed together: nothing to write.
    const before = cluster.calls.length;
    await reconciler.reconcileTogether(['a', 'b', 'c']);
    assert.deepEqual(cluster.writes().slice(before), []);
  });

  it('a credential that fails before its fan-out fails alone', async () => {
    const { cluster, reconciler, spec } = setup();
    cluster.addNamespace('n1', { a: 'y', b: 'y' });
    cluster.addServiceAccount('n1', 'default');
    cluster.addCredential('a', spec('a'));
    cluster.addCredential('b', spec('b'));
    const patch = cluster.setCredentialFinalizers.bind(cluster);
    cluster.setCredentialFinalizers = async (cred, finalizers) => {
      if (cred.metadata.name === 'b') throw new Error('finalizer write refused');
      return patch(cred, finalizers);
    };

    const results = await reconciler.reconcileTogether(['a', 'b']);

    assert.equal(results[0]?.status, 'fulfilled');
    assert.equal(results[1]?.status, 'rejected');
    assert.deepEqual(
      (cluster.accounts.get('n1/default')?.imagePullSecrets ?? []).map((e) => e.name),
      ['a'],
    );
  });

  it('a credential due while another fans out joins it where it has not started: one ServiceAccount write there for both', async () => {
    const { cluster, reconciler, spec } = setup();
    const namespaces = Array.from({ length: 10 }, (_, i) => `n${String(i).padStart(2, '0')}`);
    for (const ns of namespaces) {
      cluster.addNamespace(ns, { a: 'y', b: 'y' });
      cluster.addServiceAccount(ns, 'default', [{ name: 'tenant-own' }]);
    }
    cluster.addCredential('a', spec('a'));
    cluster.addCredential('b', spec('b'));
    // b's Secret name is someone else's in n05, one of the namespaces it joins a for.
    cluster.addSecret({ metadata: { name: 'b', namespace: 'n05' }, type: 'Opaque' });
    // a's Secret creates are held: its fan-out (4 namespaces at once) stops at n00-n03.
    const held: Array<() => void> = [];
    let holding = true;
    const create = cluster.createSecret.bind(cluster);
    cluster.createSecret = async (secret) => {
      if (holding && secret.metadata?.name === 'a') {
        await new Promise<void>((resolve) => held.push(resolve));
      }
      return create(secret);
    };
    const first = reconciler.reconcileTogether(['a']);
    await until(() => held.length === 4);
    // b became due meanwhile (its watch event came later than a's).
    const second = reconciler.reconcileTogether(['b']);
    // b writes the four namespaces a has started on its own, and nothing else while a waits
    // (the in-memory API answers without timers: 50 turns of the loop without a call is idle).
    await until(() =>
      namespaces
        .slice(0, 4)
        .every((ns) =>
          (cluster.accounts.get(`${ns}/default`)?.imagePullSecrets ?? []).some(
            (e) => e.name === 'b',
          ),
        ),
    );
    for (let calls = -1, still = 0; still < 50; still++) {
      if (cluster.calls.length !== calls) [calls, still] = [cluster.calls.length, 0];
      await tick();
    }
    assert.equal(held.length, 4, 'a still waits');
    holding = false;
    for (const resolve of held.splice(0)) resolve();
    const results = [...(await first), ...(await second)];

    assert.deepEqual(
      results.map((r) => r.status),
      ['fulfilled', 'fulfilled'],
    );
    const saWrites = (ns: string) =>
      cluster.writes().filter((w) => w === `update serviceaccounts ${ns}/default`).length;
    for (const ns of namespaces.slice(0, 4)) assert.equal(saWrites(ns), 2, `${ns}: b, then a`);
    for (const ns of namespaces.slice(4)) {
      assert.equal(saWrites(ns), 1, `${ns}: one write with both entries`);
    }
    for (const ns of namespaces) {
      assert.deepEqual(
        (cluster.accounts.get(`${ns}/default`)?.imagePullSecrets ?? []).map((e) => e.name).sort(),
        ns === 'n05' ? ['a', 'tenant-own'] : ['a', 'b', 'tenant-own'],
      );
    }
    const status = (name: string) => cluster.credentialObjects.get(name)?.status;
    assert.equal(status('a')?.syncedNamespaces, 10);
    assert.equal(status('b')?.syncedNamespaces, 9, 'b reports the namespaces a wrote for it');
    assert.deepEqual(
      status('b')?.failedNamespaces?.map((f) => f.name),
      ['n05'],
      'and its conflict in one of them',
    );
    assert.equal(reconciler.covers('b', 'n09'), false);
  });

  it('a fan-out syncs at most two namespaces at once while the fast path has a backlog, all of them again once it is gone', async () => {
    let backlog = 3;
    const gate = new FastPathFirst(() => backlog);
    const { cluster, reconciler, spec } = setup(gate);
    const namespaces = Array.from({ length: 8 }, (_, i) => `n${i}`);
    for (const ns of namespaces) {
      cluster.addNamespace(ns, { a: 'y' });
      cluster.addServiceAccount(ns, 'default');
    }
    cluster.addCredential('a', spec('a'));
    // Every Secret create is held: the creates in flight are the namespaces being synced.
    const held: Array<() => void> = [];
    const create = cluster.createSecret.bind(cluster);
    cluster.createSecret = async (secret) => {
      await new Promise<void>((resolve) => held.push(resolve));
      return create(secret);
    };
    const release = () => {
      for (const resolve of held.splice(0)) resolve();
    };
    const running = reconciler.reconcileTogether(['a']);
    await until(() => held.length === 2);
    for (let still = 0; still < 50; still++) await tick();
    assert.equal(held.length, 2, 'two namespaces at once (fan-out concurrency 4) with a backlog');
    assert.equal(gate.waiting, 2, 'the other two the fan-out started wait for their turn');
    release();
    await until(() => held.length === 2);
    assert.equal(cluster.writes().filter((w) => w.startsWith('create secrets')).length, 2);
    // The fast path's workers took what was waiting.
    backlog = 0;
    gate.changed();
    await until(() => held.length === 4);
    for (let still = 0; still < 50; still++) await tick();
    assert.equal(held.length, 4, 'the fan-out concurrency again');
    while (!cluster.credentialObjects.get('a')?.status?.syncedNamespaces) {
      release();
      await tick();
    }
    const [result] = await running;
    assert.equal(result?.status, 'fulfilled');
    assert.equal(cluster.credentialObjects.get('a')?.status?.syncedNamespaces, 8);
    assert.equal(gate.running, 0);
  });

  it('covers a namespace while preparing and until its fan-out starts it', async () => {
    const { cluster, reconciler, spec } = setup();
    cluster.addNamespace('n1', { a: 'y' });
    cluster.addServiceAccount('n1', 'default');
    cluster.addCredential('a', spec('a'));
    assert.equal(reconciler.covers('a', 'n1'), false);
    const seen: boolean[] = [];
    const create = cluster.createSecret.bind(cluster);
    cluster.createSecret = async (secret) => {
      seen.push(reconciler.covers('a', 'n1'));
      return create(secret);
    };
    const running = reconciler.reconcileTogether(['a']);
    assert.equal(reconciler.covers('a', 'n1'), true, 'preparing');
    await running;
    assert.deepEqual(seen, [false], 'its fan-out started n1: an event now needs the fast path');
    assert.equal(reconciler.covers('a', 'n1'), false);
  });
});

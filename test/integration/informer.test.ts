import assert from 'node:assert/strict';
import { CoreV1Api, type V1ConfigMap, type V1Secret } from '@kubernetes/client-node';
import { MANAGED_BY_LABEL, MANAGED_BY_VALUE } from '../../src/api/types.ts';
import { Informer, type InformerEvent, type InformerOptions } from '../../src/kube/informer.ts';
import {
  type KubeObject,
  kubeListWatch,
  type ListOptions,
  type ListPage,
  type ListWatch,
  type WatchHandle,
  type WatchOptions,
} from '../../src/kube/list-watch.ts';
import { KubeRest } from '../../src/kube/rest.ts';
import { createSecretInformers } from '../../src/kube/secret-informers.ts';
import { uniqueName } from '../support/names.ts';
import { waitUntil } from '../support/wait.ts';
import { cluster } from './hooks.ts';

/**
 * Wraps the real ListWatch to count calls and to play a flaky network: cut() ends the open
 * watches as a server timeout would and holds new ones until resume(); cut(error) ends them with
 * that error instead (a reset connection). `expireNextWatch` answers the next watch that resumes
 * from a resourceVersion with the 410 Gone event kube-apiserver sends for one older than its
 * watch cache holds (a fresh API server's cache still holds every event, so a real one cannot
 * be had quickly);
 * `dropSendInitialEvents` strips that parameter from watch-lists (the server then refuses
 * resourceVersionMatch on a watch with 422, as one before v1.27 does).
 */
class TappedListWatch implements ListWatch {
  readonly inner: ListWatch;
  readonly lists: ListOptions[] = [];
  readonly watches: WatchOptions[] = [];
  expireNextWatch = false;
  dropSendInitialEvents = false;
  #cutWith: unknown;
  #held: Promise<void> | undefined;
  #release: () => void = () => {};
  readonly #open = new Set<{ handle?: WatchHandle; cut: boolean }>();

  constructor(inner: ListWatch) {
    this.inner = inner;
  }

  list<T>(path: string, opts?: ListOptions): Promise<ListPage<T>> {
    this.lists.push(opts ?? {});
    return this.inner.list<T>(path, opts);
  }

  async watch(
    path: string,
    opts: WatchOptions,
    onEvent: (type: string, obj: unknown) => void,
    onDone: (err?: unknown) => void,
  ): Promise<WatchHandle> {
    this.watches.push(opts);
    await this.#held;
    if (this.expireNextWatch && opts.resourceVersion) {
      this.expireNextWatch = false;
      let done = false;
      const finish = (err?: unknown) => {
        if (done) return;
        done = true;
        onDone(err);
      };
      setImmediate(() => {
        onEvent('ERROR', {
          kind: 'Status',
          apiVersion: 'v1',
          metadata: {},
          status: 'Failure',
          message: `too old resource version: ${opts.resourceVersion} (${Number(opts.resourceVersion) + 100})`,
          reason: 'Expired',
          code: 410,
        });
        finish();
      });
      return { abort: () => finish() };
    }
    if (this.dropSendInitialEvents) opts = { ...opts, sendInitialEvents: undefined };
    const entry: { handle?: WatchHandle; cut: boolean } = { cut: false };
    this.#open.add(entry);
    entry.handle = await this.inner.watch(path, opts, onEvent, (err) => {
      this.#open.delete(entry);
      onDone(entry.cut ? this.#cutWith : err);
    });
    return entry.handle;
  }

  /** Full lists: first pages of a LIST, and watch-lists. */
  get relists(): number {
    return (
      this.lists.filter((l) => !l.continueToken).length +
      this.watches.filter((w) => w.sendInitialEvents).length
    );
  }

  cut(error?: unknown): void {
    this.#cutWith = error;
    this.#held = new Promise((resolve) => {
      this.#release = resolve;
    });
    for (const entry of this.#open) {
      entry.cut = true;
      entry.handle?.abort();
    }
  }

  resume(): void {
    this.#held = undefined;
    this.#release();
  }
}

function recordEvents<T extends KubeObject>(informer: Informer<T>): string[] {
  const events: string[] = [];
  informer.events$.subscribe((e: InformerEvent<T>) => {
    events.push(`${e.type}:${e.object.metadata?.name}`);
  });
  return events;
}

/** kube-apiserver's counters whose name starts with `prefix`, by their full series. */
async function apiServerCounters(prefix: string): Promise<Map<string, number>> {
  const response = await new KubeRest(cluster.kc).open({ method: 'GET', path: '/metrics' });
  const counters = new Map<string, number>();
  for (const line of (await response.body.text()).split('\n')) {
    if (!line.startsWith(prefix)) continue;
    const space = line.lastIndexOf(' ');
    counters.set(line.slice(0, space), Number(line.slice(space + 1)));
  }
  return counters;
}

/** How much the series of `name` with every label in `labels` grew from `before` to `after`. */
function grew(
  before: Map<string, number>,
  after: Map<string, number>,
  name: string,
  labels: string[],
): number {
  let sum = 0;
  for (const [series, value] of after) {
    if (!series.startsWith(`${name}{`) || !labels.every((l) => series.includes(l))) continue;
    sum += value - (before.get(series) ?? 0);
  }
  return sum;
}

async function createInBatches(count: number, create: (i: number) => Promise<unknown>) {
  const batch = 25;
  for (let start = 0; start < count; start += batch) {
    const n = Math.min(batch, count - start);
    await Promise.all(Array.from({ length: n }, (_, j) => create(start + j)));
  }
}

describe('Informer against a real API server', () => {
  let core: CoreV1Api;
  const namespaces: string[] = [];
  const informers: Array<{ stop(): Promise<void> }> = [];

  before(() => {
    core = cluster.kc.makeApiClient(CoreV1Api);
  });

  afterEach(async () => {
    await Promise.all(informers.splice(0).map((informer) => informer.stop()));
  });

  after(async () => {
    await Promise.all(
      namespaces.map((name) => core.deleteNamespace({ name }).catch(() => undefined)),
    );
  });

  async function namespace(prefix: string): Promise<string> {
    const name = uniqueName(prefix);
    await core.createNamespace({ body: { metadata: { name } } });
    namespaces.push(name);
    return name;
  }

  function configMap(ns: string, name: string, data: Record<string, string> = {}, labels = {}) {
    return core.createNamespacedConfigMap({
      namespace: ns,
      body: { metadata: { name, labels }, data },
    });
  }

  function configMapInformer(
    ns: string,
    extra: Partial<InformerOptions<V1ConfigMap>> = {},
  ): { informer: Informer<V1ConfigMap>; tap: TappedListWatch } {
    const tap = new TappedListWatch(kubeListWatch(cluster.kc));
    const informer = new Informer<V1ConfigMap>(tap, {
      path: `/api/v1/namespaces/${ns}/configmaps`,
      ...extra,
    });
    informers.push(informer);
    return { informer, tap };
  }

  it('fills its cache from one watch-list, streamed from the watch cache, before it reports synced', async function () {
    this.timeout(300_000);
    const ns = await namespace('inf-bulk');
    await createInBatches(600, (i) => configMap(ns, `cm-${String(i).padStart(3, '0')}`));

    const { informer, tap } = configMapInformer(ns);
    let cachedAtSync = -1;
    void informer.synced.then(() => {
      cachedAtSync = informer.list().length;
    });
    const before = await apiServerCounters('');
    informer.start();
    assert.equal(informer.hasSynced(), false);
    await informer.synced;
    const after = await apiServerCounters('');

    // 600 of ours plus kube-root-ca.crt, published by kube-controller-manager.
    assert.ok(cachedAtSync >= 600, `only ${cachedAtSync} objects cached when synced resolved`);
    for (let i = 0; i < 600; i++) {
      const name = `cm-${String(i).padStart(3, '0')}`;
      assert.ok(informer.get(`${ns}/${name}`), `${name} is cached`);
    }
    assert.equal(informer.byNamespace(ns).length, informer.list().length);
    assert.equal(tap.lists.length, 0, 'no LIST');
    assert.equal(tap.watches.length, 1, 'one request: the watch-list goes on as the watch');
    assert.equal(tap.watches[0]?.sendInitialEvents, true);
    // The API server served it as a watch-list (it times those), and read no ConfigMap
    // collection, neither from etcd nor from its cache's LIST path.
    const configmaps = 'resource="configmaps"';
    assert.ok(
      grew(before, after, 'apiserver_watch_list_duration_seconds_count', [configmaps]) >= 1,
    );
    assert.equal(
      grew(before, after, 'etcd_requests_total', [configmaps, 'operation="listWithCount"']),
      0,
      'no LIST from etcd',
    );
    assert.equal(grew(before, after, 'apiserver_storage_list_total', [configmaps]), 0);
    assert.deepEqual(informer.health(), {
      synced: true,
      healthy: true,
      lastError: undefined,
      brokenSince: undefined,
    });
  });

  it('lists in pages of 500 where the server refuses a watch-list (422)', async function () {
    this.timeout(300_000);
    const ns = await namespace('inf-pages');
    await createInBatches(600, (i) => configMap(ns, `cm-${String(i).padStart(3, '0')}`));

    const { informer, tap } = configMapInformer(ns);
    tap.dropSendInitialEvents = true;
    informer.start();
    await informer.synced;

    assert.ok(informer.list().length >= 600);
    await waitUntil('the watch', () => tap.watches.length === 2);
    assert.equal(tap.watches[0]?.resourceVersionMatch, 'NotOlderThan', 'a watch-list was asked');
    assert.equal(tap.lists.length, 2, 'then two pages of at most 500');
    assert.equal(tap.lists[0]?.limit, 500);
    assert.ok(tap.lists[1]?.continueToken, 'the second page continues the first');
    assert.equal(tap.watches.length, 2, 'the refused watch-list, then the watch');
    assert.equal(tap.watches[1]?.resourceVersion, informer.resourceVersion);
    assert.equal(informer.health().lastError, undefined, 'a refusal is not a failure');
  });

  it('relists with a watch-list after 410 Gone, and converges on what changed meanwhile', async () => {
    const ns = await namespace('inf-gone');
    await configMap(ns, 'changes');
    await configMap(ns, 'goes-away');
    await configMap(ns, 'stays');
    const { informer, tap } = configMapInformer(ns);
    const events = recordEvents(informer);
    informer.start();
    await informer.synced;
    await configMap(ns, 'before-cut');
    await waitUntil('the watch to deliver', () => events.includes('add:before-cut'));

    tap.cut();
    await configMap(ns, 'born-while-down');
    await core.patchNamespacedConfigMap({
      namespace: ns,
      name: 'changes',
      body: [{ op: 'add', path: '/data', value: { k: 'v' } }],
    });
    await core.deleteNamespacedConfigMap({ namespace: ns, name: 'goes-away' });
    tap.expireNextWatch = true;
    tap.resume();

    await waitUntil('the relist diff', () =>
      ['add:born-while-down', 'update:changes', 'delete:goes-away'].every((e) =>
        events.includes(e),
      ),
    );
    const watchLists = tap.watches.filter((w) => w.sendInitialEvents);
    assert.equal(watchLists.length, 2, 'the first watch-list, and one after 410');
    assert.equal(watchLists[1]?.resourceVersion, undefined, 'from the latest state');
    assert.equal(tap.lists.length, 0);
    const listed = await core.listNamespacedConfigMap({ namespace: ns });
    assert.deepEqual(
      informer
        .list()
        .map((cm) => `${cm.metadata?.name}@${cm.metadata?.resourceVersion}`)
        .sort(),
      listed.items.map((cm) => `${cm.metadata?.name}@${cm.metadata?.resourceVersion}`).sort(),
      'the cache is what the server holds',
    );
    assert.equal(events.filter((e) => e === 'add:stays').length, 1, 'unchanged: no event');
    assert.ok(informer.health().healthy);
  });

  it('delivers add, update and delete as they happen', async () => {
    const ns = await namespace('inf-events');
    const { informer } = configMapInformer(ns);
    const events: Array<InformerEvent<V1ConfigMap>> = [];
    informer.events$.subscribe((e) => {
      if (e.object.metadata?.name === 'app-config') events.push(e);
    });
    informer.start();
    await informer.synced;

    await configMap(ns, 'app-config', { level: 'info' });
    await waitUntil('the add event', () => events.length === 1);
    await core.patchNamespacedConfigMap({
      namespace: ns,
      name: 'app-config',
      body: [{ op: 'replace', path: '/data/level', value: 'debug' }],
    });
    await waitUntil('the update event', () => events.length === 2);
    await core.deleteNamespacedConfigMap({ namespace: ns, name: 'app-config' });
    await waitUntil('the delete event', () => events.length === 3);

    assert.deepEqual(
      events.map((e) => e.type),
      ['add', 'update', 'delete'],
    );
    assert.equal(events[1]?.old?.data?.level, 'info');
    assert.equal(events[1]?.object.data?.level, 'debug');
    assert.equal(informer.get(`${ns}/app-config`), undefined);
  });

  it('catches up on changes made while its watch was down, resuming from its resourceVersion', async () => {
    const ns = await namespace('inf-resume');
    await configMap(ns, 'changes');
    await configMap(ns, 'goes-away');
    const { informer, tap } = configMapInformer(ns);
    const events = recordEvents(informer);
    informer.start();
    await informer.synced;
    await configMap(ns, 'before-cut');
    await waitUntil('the watch to deliver', () => events.includes('add:before-cut'));
    const relistsBefore = tap.relists;

    tap.cut();
    await configMap(ns, 'born-while-down');
    await core.patchNamespacedConfigMap({
      namespace: ns,
      name: 'changes',
      body: [{ op: 'add', path: '/data', value: { k: 'v' } }],
    });
    await core.deleteNamespacedConfigMap({ namespace: ns, name: 'goes-away' });
    assert.equal(informer.get(`${ns}/born-while-down`), undefined, 'nothing seen while cut');

    tap.resume();
    await waitUntil('the missed changes', () =>
      ['add:born-while-down', 'update:changes', 'delete:goes-away'].every((e) =>
        events.includes(e),
      ),
    );
    assert.equal(tap.relists, relistsBefore, 'resumed by watch, without a relist');
    assert.deepEqual(informer.get(`${ns}/changes`)?.data, { k: 'v' });
  });

  it('watches again from its resourceVersion after a watch error, catching up without a LIST', async () => {
    const ns = await namespace('inf-rewatch');
    await configMap(ns, 'changes');
    await configMap(ns, 'goes-away');
    const { informer, tap } = configMapInformer(ns, { backoff: { initialMs: 100, maxMs: 500 } });
    const events = recordEvents(informer);
    informer.start();
    await informer.synced;
    await configMap(ns, 'before-error');
    await waitUntil('the watch to deliver', () => events.includes('add:before-error'));

    // The connection resets: the watch ends with an error, not a clean end.
    tap.cut(Object.assign(new Error('read ECONNRESET'), { code: 'ECONNRESET' }));
    await configMap(ns, 'born-while-down');
    await core.patchNamespacedConfigMap({
      namespace: ns,
      name: 'changes',
      body: [{ op: 'add', path: '/data', value: { k: 'v' } }],
    });
    await core.deleteNamespacedConfigMap({ namespace: ns, name: 'goes-away' });
    tap.resume();
    await waitUntil('the missed changes', () =>
      ['add:born-while-down', 'update:changes', 'delete:goes-away'].every((e) =>
        events.includes(e),
      ),
    );
    assert.equal(tap.relists, 1, 'a watch error costs a watch, not a LIST');
    assert.ok(tap.watches.length >= 2);
  });

  it('resyncs by replaying its cache to subscribers, without a LIST or a new watch', async () => {
    const ns = await namespace('inf-resync');
    await configMap(ns, 'one');
    await configMap(ns, 'two');
    const { informer, tap } = configMapInformer(ns, { resyncIntervalMs: 300 });
    const replays: string[] = [];
    informer.events$.subscribe((e) => {
      if (e.type === 'update' && e.old === e.object) replays.push(e.object.metadata?.name ?? '');
    });
    informer.start();
    await informer.synced;
    await waitUntil('two resyncs', () => replays.filter((name) => name === 'one').length >= 2);
    assert.deepEqual(replays.filter((name) => name !== 'kube-root-ca.crt').sort(), [
      'one',
      'one',
      'two',
      'two',
    ]);
    assert.equal(tap.relists, 1, 'a resync asks the API server nothing');
    assert.equal(tap.watches.length, 1);
  });

  it('sees only the objects its label selector matches', async () => {
    const ns = await namespace('inf-labels');
    await configMap(ns, 'mine-1', {}, { team: 'a' });
    await configMap(ns, 'theirs', {}, { team: 'b' });
    const { informer } = configMapInformer(ns, { labelSelector: 'team=a' });
    const events = recordEvents(informer);
    informer.start();
    await informer.synced;
    assert.deepEqual(
      informer.list().map((cm) => cm.metadata?.name),
      ['mine-1'],
    );

    await configMap(ns, 'mine-2', {}, { team: 'a' });
    await configMap(ns, 'theirs-2', {}, { team: 'b' });
    await core.patchNamespacedConfigMap({
      namespace: ns,
      name: 'mine-1',
      body: [{ op: 'replace', path: '/metadata/labels/team', value: 'b' }],
    });
    await waitUntil(
      'mine-2 added and mine-1 gone',
      () => events.includes('add:mine-2') && events.includes('delete:mine-1'),
    );
    assert.deepEqual(
      informer.list().map((cm) => cm.metadata?.name),
      ['mine-2'],
    );
    assert.ok(!events.some((e) => e.endsWith(':theirs') || e.endsWith(':theirs-2')));
  });

  it('strips managedFields by default, and applies a custom transform', async () => {
    const ns = await namespace('inf-transform');
    await configMap(ns, 'big', { payload: 'x'.repeat(1000) });
    const raw = await core.readNamespacedConfigMap({ namespace: ns, name: 'big' });
    assert.ok(raw.metadata?.managedFields?.length, 'the server does record managedFields');

    const { informer: plain } = configMapInformer(ns);
    const { informer: slim } = configMapInformer(ns, {
      transform: (cm) => ({
        metadata: {
          name: cm.metadata?.name,
          namespace: cm.metadata?.namespace,
          resourceVersion: cm.metadata?.resourceVersion,
        },
      }),
    });
    plain.start();
    slim.start();
    await Promise.all([plain.synced, slim.synced]);
    await configMap(ns, 'later', { a: 'b' });
    await waitUntil('both informers see the new object', () =>
      [plain, slim].every((informer) => informer.get(`${ns}/later`) !== undefined),
    );

    for (const name of ['big', 'later']) {
      assert.equal(plain.get(`${ns}/${name}`)?.metadata?.managedFields, undefined);
      assert.ok(plain.get(`${ns}/${name}`)?.data, 'the default keeps data');
      assert.equal(slim.get(`${ns}/${name}`)?.data, undefined, 'the custom transform drops data');
    }
  });

  it('reads source-namespace Secrets and labelled managed Secrets as one cache', async () => {
    const source = await namespace('inf-src');
    const tenant = await namespace('inf-tenant');
    // Managed Secrets are pull Secrets: the managed informer selects that type as well.
    const secret = (ns: string, name: string, labels: Record<string, string> = {}) =>
      core.createNamespacedSecret({
        namespace: ns,
        body: labels[MANAGED_BY_LABEL]
          ? {
              metadata: { name, labels },
              type: 'kubernetes.io/dockerconfigjson',
              stringData: { '.dockerconfigjson': '{"auths":{}}' },
            }
          : { metadata: { name, labels }, stringData: { token: 'not-a-real-token' } },
      });
    await secret(source, 'registry-login');
    await secret(tenant, 'pull', { [MANAGED_BY_LABEL]: MANAGED_BY_VALUE });
    await secret(tenant, 'unrelated');

    const secrets = createSecretInformers(cluster.kc, { sourceNamespaces: [source] });
    informers.push(secrets);
    const events: string[] = [];
    secrets.events$.subscribe((e: InformerEvent<V1Secret>) =>
      events.push(`${e.type}:${e.object.metadata?.namespace}/${e.object.metadata?.name}`),
    );
    secrets.start();
    await secrets.synced;

    assert.ok(secrets.get(`${source}/registry-login`));
    assert.ok(secrets.get(`${tenant}/pull`));
    assert.equal(secrets.get(`${tenant}/unrelated`), undefined, 'unmanaged Secrets stay uncached');
    assert.deepEqual(
      secrets.byNamespace(tenant).map((s) => s.metadata?.name),
      ['pull'],
    );

    await secret(tenant, 'pull-2', { [MANAGED_BY_LABEL]: MANAGED_BY_VALUE });
    await secret(tenant, 'unrelated-2');
    await waitUntil('the new managed Secret', () => events.includes(`add:${tenant}/pull-2`));
    assert.ok(!events.includes(`add:${tenant}/unrelated-2`));
    assert.equal(secrets.health().healthy, true);
  });

  it('notices a frozen API server through its silence watchdog, and recovers', async function () {
    this.timeout(180_000);
    const ns = await namespace('inf-frozen');
    const { informer, tap } = configMapInformer(ns, {
      silenceTimeoutMs: 1000,
      backoff: { initialMs: 200, maxMs: 1000 },
    });
    const events = recordEvents(informer);
    informer.start();
    await informer.synced;
    await waitUntil('a watch', () => tap.watches.length === 1);

    const plane = cluster.controlPlane;
    plane.signalApiServer('SIGSTOP');
    try {
      await waitUntil(
        'the watchdog to report the hung server',
        () => /did not connect/.test(informer.health().lastError ?? ''),
        { timeoutMs: 30_000 },
      );
      assert.ok(tap.watches.length >= 2, 'the silent watch was restarted');
    } finally {
      plane.signalApiServer('SIGCONT');
    }
    await configMap(ns, 'after-thaw');
    await waitUntil('the add after the thaw', () => events.includes('add:after-thaw'), {
      timeoutMs: 90_000,
    });
    await waitUntil('healthy', () => !informer.health().lastError, { timeoutMs: 30_000 });
    assert.equal(tap.relists, 1, 'the watches that failed resumed from the resourceVersion');
  });

  it('keeps serving its cache across an API server restart, then catches up', async function () {
    this.timeout(180_000);
    const ns = await namespace('inf-restart');
    await configMap(ns, 'before');
    const { informer } = configMapInformer(ns, { backoff: { initialMs: 200, maxMs: 1000 } });
    const events = recordEvents(informer);
    informer.start();
    await informer.synced;

    await cluster.controlPlane.restartApiServer();
    assert.ok(informer.get(`${ns}/before`), 'the cache is still served while reconnecting');
    await configMap(ns, 'after');
    await waitUntil('the add after the restart', () => events.includes('add:after'), {
      timeoutMs: 60_000,
    });
    await waitUntil('healthy', () => informer.health().healthy && !informer.health().lastError);
  });
});

import assert from 'node:assert/strict';
import type { V1ManagedFieldsEntry } from '@kubernetes/client-node';
import { KubeApiError } from '../../src/kube/api.ts';
import { Informer, type InformerEvent } from '../../src/kube/informer.ts';
import {
  INITIAL_EVENTS_END_ANNOTATION,
  type ListOptions,
  type ListPage,
  type ListWatch,
  listAll,
  type WatchHandle,
  type WatchOptions,
} from '../../src/kube/list-watch.ts';

interface Obj {
  metadata: {
    name: string;
    namespace: string;
    resourceVersion?: string;
    managedFields?: V1ManagedFieldsEntry[];
    labels?: Record<string, string>;
  };
  data?: Record<string, string>;
}

interface Watcher {
  opts: WatchOptions;
  onEvent: (type: string, obj: unknown) => void;
  onDone: (err?: unknown) => void;
  open: boolean;
}

/**
 * An API server in memory: objects with resourceVersions, an event log that watches replay
 * from a resourceVersion, compaction (410 for older ones), pagination, watch-lists (the state
 * as ADDED events, then the bookmark that ends them, then the changes), and failure switches.
 */
class FakeServer implements ListWatch {
  rv = 1;
  readonly objects = new Map<string, Obj>();
  readonly log: Array<{ rv: number; type: string; obj: Obj }> = [];
  compactedBefore = 0;
  readonly watchers: Watcher[] = [];
  listCalls: ListOptions[] = [];
  /** Watch-lists asked for (watches with sendInitialEvents). */
  watchLists = 0;
  /** While false, a watch-list is refused as an API server before v1.27 refuses it (422). */
  watchList = true;
  /** Lists and watch-lists that fail (503). */
  failLists = 0;
  /** Watches from a resourceVersion that are refused (403). */
  failWatches = 0;
  /** While false, watches stay connected but deliver nothing. */
  deliver = true;
  listGate: Promise<void> | undefined;

  put(name: string, data: Record<string, string> = {}, namespace = 'ns'): Obj {
    const key = `${namespace}/${name}`;
    const type = this.objects.has(key) ? 'MODIFIED' : 'ADDED';
    const obj: Obj = {
      metadata: {
        name,
        namespace,
        resourceVersion: String(++this.rv),
        managedFields: [{ manager: 'test' }],
      },
      data,
    };
    this.objects.set(key, obj);
    this.#emit(type, obj);
    return obj;
  }

  remove(name: string, namespace = 'ns'): void {
    const key = `${namespace}/${name}`;
    const old = this.objects.get(key);
    if (!old) return;
    this.objects.delete(key);
    this.#emit('DELETED', {
      ...old,
      metadata: { ...old.metadata, resourceVersion: String(++this.rv) },
    });
  }

  /** Sends a raw event to every open watch, outside the log (e.g. a replayed MODIFIED). */
  send(type: string, obj: unknown): void {
    for (const w of this.watchers) if (w.open) setImmediate(() => w.open && w.onEvent(type, obj));
  }

  bookmark(): void {
    this.send('BOOKMARK', { metadata: { resourceVersion: String(this.rv) } });
  }

  /** Ends every open watch the way a server timeout does. */
  closeWatches(err?: unknown): void {
    for (const w of this.watchers) {
      if (!w.open) continue;
      w.open = false;
      w.onDone(err);
    }
  }

  openWatches(): Watcher[] {
    return this.watchers.filter((w) => w.open);
  }

  /** Full lists: first pages of a LIST, and watch-lists. */
  get relists(): number {
    return this.listCalls.filter((c) => !c.continueToken).length + this.watchLists;
  }

  /** The watches that resumed from a resourceVersion (not watch-lists). */
  resumeWatches(): Watcher[] {
    return this.watchers.filter((w) => !w.opts.sendInitialEvents);
  }

  async list<T>(_path: string, opts: ListOptions = {}): Promise<ListPage<T>> {
    this.listCalls.push(opts);
    await this.listGate;
    await new Promise((r) => setImmediate(r));
    if (this.failLists > 0) {
      this.failLists--;
      throw new KubeApiError(503, 'ServiceUnavailable', 'list failed');
    }
    const all = [...this.objects.values()]
      .filter((o) => matches(o, opts.labelSelector))
      .sort((a, b) => a.metadata.name.localeCompare(b.metadata.name));
    const offset = opts.continueToken ? Number(opts.continueToken) : 0;
    const end = opts.limit ? offset + opts.limit : all.length;
    return {
      items: structuredClone(all.slice(offset, end)) as T[],
      resourceVersion: String(this.rv),
      continueToken: end < all.length ? String(end) : undefined,
    };
  }

  async watch(
    _path: string,
    opts: WatchOptions,
    onEvent: (type: string, obj: unknown) => void,
    onDone: (err?: unknown) => void,
  ): Promise<WatchHandle> {
    const w: Watcher = { opts, onEvent, onDone, open: true };
    await new Promise((r) => setImmediate(r));
    if (opts.sendInitialEvents) return this.#watchList(w);
    if (this.failWatches > 0) {
      this.failWatches--;
      w.open = false;
      onDone(Object.assign(new Error('Forbidden'), { statusCode: 403 }));
      return { abort() {} };
    }
    this.watchers.push(w);
    const from = Number(opts.resourceVersion ?? 0);
    if (from < this.compactedBefore) {
      setImmediate(() => {
        if (!w.open) return;
        w.onEvent('ERROR', { kind: 'Status', code: 410, reason: 'Expired', message: 'too old' });
      });
    } else if (this.deliver) {
      for (const e of this.log) if (e.rv > from) this.#deliver(w, e.type, e.obj);
    }
    return {
      abort: () => {
        if (!w.open) return;
        w.open = false;
        setImmediate(() => onDone(new DOMException('aborted', 'AbortError')));
      },
    };
  }

  async #watchList(w: Watcher): Promise<WatchHandle> {
    const refuse = (err: unknown): WatchHandle => {
      w.open = false;
      w.onDone(err);
      return { abort() {} };
    };
    if (!this.watchList) {
      return refuse(
        new KubeApiError(422, 'Invalid', 'resourceVersionMatch is forbidden for watch'),
      );
    }
    assert.equal(w.opts.resourceVersionMatch, 'NotOlderThan');
    assert.equal(w.opts.allowWatchBookmarks, true);
    this.watchLists++;
    await this.listGate;
    if (this.failLists > 0) {
      this.failLists--;
      return refuse(new KubeApiError(503, 'ServiceUnavailable', 'list failed'));
    }
    this.watchers.push(w);
    const state = [...this.objects.values()].sort((a, b) =>
      a.metadata.name.localeCompare(b.metadata.name),
    );
    for (const obj of state) this.#deliver(w, 'ADDED', obj);
    const end = {
      metadata: {
        resourceVersion: String(this.rv),
        annotations: { [INITIAL_EVENTS_END_ANNOTATION]: 'true' },
      },
    };
    setImmediate(() => w.open && w.onEvent('BOOKMARK', end));
    return {
      abort: () => {
        if (!w.open) return;
        w.open = false;
        setImmediate(() => w.onDone(new DOMException('aborted', 'AbortError')));
      },
    };
  }

  #emit(type: string, obj: Obj): void {
    this.log.push({ rv: this.rv, type, obj: structuredClone(obj) });
    if (!this.deliver) return;
    for (const w of this.watchers) if (w.open) this.#deliver(w, type, obj);
  }

  #deliver(w: Watcher, type: string, obj: Obj): void {
    const copy = structuredClone(obj);
    if (!matches(copy, w.opts.labelSelector)) return;
    setImmediate(() => w.open && w.onEvent(type, copy));
  }
}

function matches(obj: Obj, selector: string | undefined): boolean {
  if (!selector) return true;
  const [k, v] = selector.split('=');
  return obj.metadata.labels?.[k as string] === v;
}

async function until(what: string, condition: () => boolean, timeoutMs = 3000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 2));
  }
}

const fast = {
  backoff: { initialMs: 2, maxMs: 10 },
  random: () => 0.5,
};

function record(informer: Informer<Obj>): Array<{ type: string; name: string; rv?: string }> {
  const events: Array<{ type: string; name: string; rv?: string }> = [];
  informer.events$.subscribe((e: InformerEvent<Obj>) =>
    events.push({
      type: e.type,
      name: e.object.metadata.name,
      rv: e.object.metadata.resourceVersion,
    }),
  );
  return events;
}

describe('Informer (fake API server)', () => {
  let informer: Informer<Obj> | undefined;
  afterEach(async () => {
    await informer?.stop();
    informer = undefined;
  });

  it('fills its cache from a watch-list and reports synced at the bookmark that ends it', async () => {
    const server = new FakeServer();
    for (let i = 0; i < 5; i++) server.put(`o${i}`);
    let openGate = (): void => {};
    server.listGate = new Promise((r) => {
      openGate = r;
    });
    informer = new Informer<Obj>(server, { path: '/x', ...fast });
    const inf = informer;
    const events = record(inf);
    let cachedAtSync = -1;
    void inf.synced.then(() => {
      cachedAtSync = inf.list().length;
    });
    inf.start();
    await until('the watch-list', () => server.watchLists === 1);
    assert.equal(inf.hasSynced(), false);

    openGate();
    await inf.synced;
    assert.equal(cachedAtSync, 5, 'every object cached when synced resolved');
    assert.equal(server.listCalls.length, 0, 'no LIST');
    const [watch] = server.watchers;
    assert.equal(watch?.opts.sendInitialEvents, true);
    assert.equal(watch?.opts.resourceVersion, undefined, 'the latest state (a consistent read)');
    assert.equal(inf.resourceVersion, String(server.rv), "the bookmark's resourceVersion");
    assert.equal(inf.get('ns/o1')?.metadata.managedFields, undefined, 'transformed');
    assert.equal(events.length, 5);

    // The same stream goes on as the watch.
    server.put('later');
    await until('add later', () => events.length === 6);
    assert.equal(server.watchers.length, 1);
    assert.equal(server.relists, 1);
  });

  it('applies nothing from a watch-list that breaks before its bookmark, and lists again', async () => {
    const server = new FakeServer();
    server.put('a');
    server.put('b');
    // The stream breaks after its first event.
    const breaking: ListWatch = {
      list: server.list.bind(server),
      watch: async (path, opts, onEvent, onDone) => {
        if (!opts.sendInitialEvents || server.watchLists > 0) {
          return server.watch(path, opts, onEvent, onDone);
        }
        server.watchLists++;
        setImmediate(() => {
          onEvent('ADDED', structuredClone(server.objects.get('ns/a')));
          onDone(new KubeApiError(0, 'BadResponse', 'watch /x: it ended inside a line'));
        });
        return { abort() {} };
      },
    };
    informer = new Informer<Obj>(breaking, { path: '/x', ...fast });
    const events = record(informer);
    informer.start();
    await informer.synced;
    assert.equal(server.relists, 2, 'a second watch-list');
    assert.deepEqual(events.map((e) => `${e.type}:${e.name}`).sort(), ['add:a', 'add:b']);
  });

  it('backs off when every watch-list is followed at once by 410 Gone', async () => {
    const server = new FakeServer();
    server.put('a');
    const expiring: ListWatch = {
      list: server.list.bind(server),
      watch: (path, opts, onEvent, onDone) =>
        server.watch(
          path,
          opts,
          (type, obj) => {
            onEvent(type, obj);
            if (type === 'BOOKMARK') {
              onEvent('ERROR', {
                kind: 'Status',
                code: 410,
                reason: 'Expired',
                message: 'too old',
              });
            }
          },
          onDone,
        ),
    };
    informer = new Informer<Obj>(expiring, { path: '/x', ...fast });
    informer.start();
    await informer.synced;
    await until('a relist after a backoff', () =>
      /expired again right after a list/.test(informer?.health().lastError ?? ''),
    );
    assert.ok(server.watchLists >= 2);
  });

  it('lists in pages where the server refuses a watch-list (422), from then on', async () => {
    const server = new FakeServer();
    server.watchList = false;
    for (let i = 0; i < 5; i++) server.put(`o${i}`);
    informer = new Informer<Obj>(server, { path: '/x', pageSize: 2, ...fast });
    informer.start();
    await informer.synced;
    assert.equal(informer.list().length, 5);
    assert.deepEqual(
      server.listCalls.map((c) => c.continueToken),
      [undefined, '2', '4'],
    );
    assert.equal(informer.health().lastError, undefined, 'a refusal is not a failure');

    // A 410 later relists in pages too, without asking for a watch-list again.
    server.put('tick');
    await until('tick', () => informer?.get('ns/tick') !== undefined);
    server.deliver = false;
    server.closeWatches();
    server.put('new');
    server.compactedBefore = server.rv + 1;
    server.deliver = true;
    await until('the relist', () => informer?.get('ns/new') !== undefined);
    assert.equal(server.listCalls.filter((c) => !c.continueToken).length, 2);
    assert.equal(
      server.watchers.filter((w) => w.opts.sendInitialEvents).length,
      0,
      'asked once, refused, never again',
    );
  });

  it('reports synced only after the whole paginated list is cached', async () => {
    const server = new FakeServer();
    for (let i = 0; i < 5; i++) server.put(`o${i}`);
    let openGate = (): void => {};
    server.listGate = new Promise((r) => {
      openGate = r;
    });
    informer = new Informer<Obj>(server, { path: '/x', pageSize: 2, watchList: false, ...fast });
    informer.start();
    await until('the first list call', () => server.listCalls.length === 1);
    assert.equal(informer.hasSynced(), false);
    assert.equal(informer.health().synced, false);

    openGate();
    await informer.synced;
    assert.equal(informer.list().length, 5);
    assert.equal(server.listCalls.length, 3, '5 objects in pages of 2');
    assert.deepEqual(
      server.listCalls.map((c) => c.continueToken),
      [undefined, '2', '4'],
    );
    assert.ok(informer.hasSynced());
  });

  it('emits add, update and delete after the cache holds them', async () => {
    const server = new FakeServer();
    informer = new Informer<Obj>(server, { path: '/x', ...fast });
    const inf = informer;
    const seen: string[] = [];
    inf.events$.subscribe((e) => {
      const cached = inf.get(`ns/${e.object.metadata.name}`);
      if (e.type === 'delete') assert.equal(cached, undefined);
      else assert.equal(cached, e.object);
      seen.push(`${e.type}:${e.object.metadata.name}:${e.old?.metadata.resourceVersion ?? ''}`);
    });
    inf.start();
    await inf.synced;
    await until('a watch', () => server.openWatches().length === 1);

    const created = server.put('a', { v: '1' });
    await until('add', () => seen.length === 1);
    server.put('a', { v: '2' });
    await until('update', () => seen.length === 2);
    server.remove('a');
    await until('delete', () => seen.length === 3);
    const createdRv = created.metadata.resourceVersion;
    assert.deepEqual(seen, [
      'add:a:',
      `update:a:${createdRv}`,
      `delete:a:${Number(createdRv) + 1}`,
    ]);
    assert.equal(inf.list().length, 0);
  });

  it('does not emit an update whose resourceVersion did not change', async () => {
    const server = new FakeServer();
    const a = server.put('a');
    informer = new Informer<Obj>(server, { path: '/x', ...fast });
    const events = record(informer);
    informer.start();
    await informer.synced;
    await until('a watch', () => server.openWatches().length === 1);
    server.send('MODIFIED', structuredClone(a));
    server.put('b');
    await until('the add of b', () => events.length === 2);
    assert.deepEqual(
      events.map((e) => `${e.type}:${e.name}`),
      ['add:a', 'add:b'],
    );
  });

  it('strips managedFields by default and applies a custom transform', async () => {
    const server = new FakeServer();
    server.put('a', { secret: 'x' });
    const plain = new Informer<Obj>(server, { path: '/x', ...fast });
    const slim = new Informer<Obj>(server, {
      path: '/x',
      ...fast,
      transform: (o) => ({ metadata: o.metadata }),
    });
    plain.start();
    slim.start();
    await Promise.all([plain.synced, slim.synced]);
    assert.equal(plain.get('ns/a')?.metadata.managedFields, undefined);
    assert.deepEqual(plain.get('ns/a')?.data, { secret: 'x' });
    assert.equal(slim.get('ns/a')?.data, undefined);
    await Promise.all([plain.stop(), slim.stop()]);
  });

  it('indexes by namespace', async () => {
    const server = new FakeServer();
    server.put('a', {}, 'one');
    server.put('b', {}, 'one');
    server.put('c', {}, 'two');
    informer = new Informer<Obj>(server, { path: '/x', ...fast });
    informer.start();
    await informer.synced;
    await until('a watch', () => server.openWatches().length === 1);
    assert.deepEqual(
      informer
        .byNamespace('one')
        .map((o) => o.metadata.name)
        .sort(),
      ['a', 'b'],
    );
    server.remove('a', 'one');
    server.put('d', {}, 'two');
    await until('both changes', () => informer?.byNamespace('two').length === 2);
    assert.deepEqual(
      informer.byNamespace('one').map((o) => o.metadata.name),
      ['b'],
    );
    assert.deepEqual(informer.byNamespace('none'), []);
  });

  it('resumes a closed watch from the last resourceVersion, without relisting', async () => {
    const server = new FakeServer();
    informer = new Informer<Obj>(server, { path: '/x', ...fast });
    const events = record(informer);
    informer.start();
    await informer.synced;
    await until('a watch', () => server.openWatches().length === 1);
    server.put('a');
    await until('add a', () => events.length === 1);

    server.deliver = false;
    server.closeWatches();
    server.put('b'); // happens while no watch is open
    server.deliver = true;
    await until('add b', () => events.length === 2);
    assert.equal(server.relists, 1);
    assert.equal(server.watchers[1]?.opts.resourceVersion, events[0]?.rv);
  });

  it('relists on 410 Gone and emits exactly what changed meanwhile', async () => {
    const server = new FakeServer();
    server.put('keep');
    server.put('change');
    server.put('drop');
    informer = new Informer<Obj>(server, { path: '/x', ...fast });
    const events = record(informer);
    informer.start();
    await informer.synced;
    await until('a watch', () => server.openWatches().length === 1);
    server.put('tick'); // the watch delivers something, so it has "worked"
    await until('add tick', () => events.length === 4);

    server.deliver = false;
    server.closeWatches();
    server.put('change', { v: '2' });
    server.remove('drop');
    server.put('new');
    server.compactedBefore = server.rv + 1;
    server.deliver = true;

    await until('the relist diff', () => events.length === 7);
    assert.deepEqual(
      events
        .slice(4)
        .map((e) => `${e.type}:${e.name}`)
        .sort(),
      ['add:new', 'delete:drop', 'update:change'],
    );
    assert.equal(server.relists, 2, 'the initial watch-list and one after 410');
    assert.equal(server.watchers.at(-1)?.opts.sendInitialEvents, true);
    assert.equal(server.watchers.at(-1)?.opts.resourceVersion, undefined);
    assert.deepEqual(
      informer
        .list()
        .map((o) => o.metadata.name)
        .sort(),
      ['change', 'keep', 'new', 'tick'],
    );
    assert.ok(informer.health().healthy);
  });

  it('retries failures with backoff, turns unhealthy after its budget, and heals', async () => {
    const server = new FakeServer();
    server.put('a');
    server.failLists = Number.POSITIVE_INFINITY;
    informer = new Informer<Obj>(server, { path: '/x', ...fast, unhealthyAfterMs: 30 });
    informer.start();
    await until('several attempts', () => server.relists >= 3);
    await until('unhealthy', () => informer?.health().healthy === false);
    const broken = informer.health();
    assert.equal(broken.synced, false);
    assert.match(broken.lastError ?? '', /list failed/);
    assert.ok(broken.brokenSince instanceof Date);

    server.failLists = 0;
    await informer.synced;
    await until('a watch', () => server.openWatches().length === 1);
    await until('healthy again', () => informer?.health().healthy === true);
    assert.equal(informer.health().brokenSince, undefined);
    assert.equal(informer.get('ns/a')?.metadata.name, 'a');
  });

  it('watches again from the same resourceVersion after a refused watch (e.g. 403), without relisting', async () => {
    const server = new FakeServer();
    server.put('a');
    informer = new Informer<Obj>(server, { path: '/x', ...fast });
    const events = record(informer);
    informer.start();
    await informer.synced;
    await until('the watch-list', () => server.openWatches().length === 1);
    server.failWatches = 2;
    server.closeWatches();
    await until('a watch that stays open', () => server.resumeWatches().length === 1);
    assert.equal(server.relists, 1, 'a refused watch is retried, not relisted');
    assert.equal(server.resumeWatches()[0]?.opts.resourceVersion, informer.resourceVersion);
    server.put('b');
    await until('add b', () => events.length === 2);
  });

  it('watches again from the last resourceVersion after a watch error, without relisting, and misses nothing', async () => {
    const server = new FakeServer();
    server.put('a');
    informer = new Informer<Obj>(server, { path: '/x', ...fast });
    const events = record(informer);
    informer.start();
    await informer.synced;
    await until('a watch', () => server.openWatches().length === 1);
    server.put('b');
    await until('add b', () => events.length === 2);
    const resumeFrom = informer.resourceVersion;

    server.deliver = false;
    // A broken stream: the connection reset, or a line that is not an event.
    server.closeWatches(new KubeApiError(0, 'BadResponse', 'watch /x: it ended inside a line'));
    server.put('c'); // while no watch is open
    server.remove('a');
    server.deliver = true;
    await until('add c and delete a', () => events.length === 4);
    assert.deepEqual(
      events.slice(2).map((e) => `${e.type}:${e.name}`),
      ['add:c', 'delete:a'],
    );
    assert.equal(server.relists, 1, 'no LIST after a watch error');
    assert.equal(server.watchers[1]?.opts.resourceVersion, resumeFrom);
  });

  it('relists when the server cannot serve the resourceVersion (too large)', async () => {
    const server = new FakeServer();
    server.put('a');
    informer = new Informer<Obj>(server, { path: '/x', ...fast });
    const events = record(informer);
    informer.start();
    await informer.synced;
    await until('a watch', () => server.openWatches().length === 1);
    server.put('tick'); // the watch works, so one expiry relists at once
    await until('add tick', () => events.length === 2);
    server.deliver = false;
    server.put('b');
    server.send('ERROR', {
      kind: 'Status',
      code: 504,
      reason: 'Timeout',
      message: 'Too large resource version: 99, current: 5',
      details: { causes: [{ reason: 'ResourceVersionTooLarge', message: 'Too large' }] },
    });
    server.deliver = true;
    await until('the relist', () => server.relists === 2);
    await until('add b from the relist', () => events.length === 3);
    assert.equal(events[2]?.name, 'b');
  });

  it('restarts a silent watch from the same resourceVersion', async () => {
    const server = new FakeServer();
    informer = new Informer<Obj>(server, { path: '/x', ...fast, silenceTimeoutMs: 20 });
    informer.start();
    await until('three watches', () => server.watchers.length >= 3);
    assert.equal(server.relists, 1);
    assert.equal(server.openWatches().length <= 1, true, 'old watches are aborted');
    const rvs = new Set(server.resumeWatches().map((w) => w.opts.resourceVersion));
    assert.deepEqual([...rvs], [informer.resourceVersion]);
  });

  it('counts a watch that never connects (a hung server) as a failure', async () => {
    const server = new FakeServer();
    const hung: ListWatch = {
      list: server.list.bind(server),
      watch: () => new Promise<WatchHandle>(() => {}),
    };
    informer = new Informer<Obj>(hung, {
      path: '/x',
      ...fast,
      watchList: false,
      silenceTimeoutMs: 10,
      unhealthyAfterMs: 40,
    });
    informer.start();
    await until('unhealthy', () => informer?.health().healthy === false);
    assert.match(informer.health().lastError ?? '', /did not connect within 10 ms/);
    assert.equal(server.listCalls.length, 1, 'a hung watch is retried, not relisted');
  });

  it('bookmarks move the resume point and keep a watch from going silent', async () => {
    const server = new FakeServer();
    informer = new Informer<Obj>(server, { path: '/x', ...fast, silenceTimeoutMs: 60 });
    informer.start();
    await informer.synced;
    await until('a watch', () => server.openWatches().length === 1);
    server.rv += 10; // the collection's resourceVersion moves on elsewhere
    for (let i = 0; i < 6; i++) {
      server.bookmark();
      await new Promise((r) => setTimeout(r, 20));
    }
    assert.equal(server.watchers.length, 1, 'no restart while bookmarks arrive');
    assert.equal(informer.resourceVersion, String(server.rv));
  });

  it('resyncs by replaying its cache as updates, without a request to the API server', async () => {
    const server = new FakeServer();
    server.put('a');
    server.put('b');
    informer = new Informer<Obj>(server, { path: '/x', ...fast, resyncIntervalMs: 40 });
    const inf = informer;
    const replays: string[] = [];
    inf.events$.subscribe((e) => {
      if (e.type === 'update' && e.old === e.object) replays.push(e.object.metadata.name);
    });
    inf.start();
    await inf.synced;
    await until('a watch', () => server.openWatches().length === 1);
    await until('two resyncs', () => replays.length >= 4);
    assert.deepEqual(replays.slice(0, 4).sort(), ['a', 'a', 'b', 'b']);
    assert.equal(server.relists, 1, 'a resync does not LIST');
    assert.equal(server.watchers.length, 1, 'nor restart the watch');
    assert.equal(inf.get('ns/a'), inf.get('ns/a'), 'the cache is untouched');
  });

  it('stop() aborts the watch, completes events$ and leaves no work behind', async () => {
    const server = new FakeServer();
    informer = new Informer<Obj>(server, { path: '/x', ...fast });
    let completed = false;
    informer.events$.subscribe({ complete: () => (completed = true) });
    informer.start();
    await informer.synced;
    await until('a watch', () => server.openWatches().length === 1);
    await informer.stop();
    assert.equal(server.openWatches().length, 0);
    assert.ok(completed);
    assert.throws(() => informer?.start(), /stopped/);
  });

  it('rejects synced when stopped before the first list lands', async () => {
    const server = new FakeServer();
    server.failLists = Number.POSITIVE_INFINITY;
    informer = new Informer<Obj>(server, { path: '/x', ...fast });
    informer.start();
    await until('a list attempt', () => server.relists >= 1);
    await informer.stop();
    await assert.rejects(informer.synced, /stopped before it synced/);
  });
});

describe('listAll', () => {
  it('starts over unpaginated when a continue token expires', async () => {
    const server = new FakeServer();
    for (let i = 0; i < 5; i++) server.put(`o${i}`);
    const lw: ListWatch = {
      list: async <T>(path: string, opts: ListOptions = {}) => {
        if (opts.continueToken === '4') throw new KubeApiError(410, 'Expired', 'too old');
        return server.list<T>(path, opts);
      },
      watch: server.watch.bind(server),
    };
    const result = await listAll<Obj>(lw, '/x', { pageSize: 2, resourceVersion: '7' });
    assert.equal(result.items.length, 5);
    const calls = server.listCalls;
    assert.deepEqual(
      calls.map((c) => [c.limit, c.continueToken, c.resourceVersion]),
      [
        [2, undefined, '7'],
        [2, '2', undefined],
        [undefined, undefined, '7'],
      ],
    );
  });

  it('sizes pages by weight: small objects a full page at a time, large ones alone, each page transformed as it arrives', async () => {
    const server = new FakeServer();
    for (let i = 0; i < 20; i++) server.put(`a${String(i).padStart(2, '0')}`, { v: 'x' }); // small
    for (let i = 0; i < 8; i++) server.put(`z${i}`, { v: 'x'.repeat(1_000_000) }); // 1 MB each
    const transformed: number[] = [];
    const result = await listAll<Obj>(server, '/x', {
      pageSize: 8,
      pageBytes: 1_500_000,
      weigh: (o) => (o.data?.v?.length ?? 0) + 512,
      transform: (o) => {
        transformed.push(server.listCalls.length);
        return { ...o, data: { v: String(o.data?.v?.length) } };
      },
    });
    assert.equal(result.items.length, 28);
    const limits = server.listCalls.map((c) => c.limit);
    // 8 small, 8 small, 4 small + 4 large (average 500 kB: 2 next), then one at a time.
    assert.deepEqual(limits, [8, 8, 8, 2, 1, 1]);
    assert.deepEqual(
      [...new Set(transformed)],
      [1, 2, 3, 4, 5, 6],
      'each page transformed before the next request',
    );
    assert.ok(
      result.items.every((o) => (o.data?.v?.length ?? 0) < 10),
      'every item transformed',
    );
  });
});

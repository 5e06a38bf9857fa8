// Over 400 lines on purpose: list, watch, backoff, resync and the silence watchdog share one
// loop and its state (resourceVersion, health); split, each piece would reach into the others.
// An informer that heals, with client-go's reflector semantics. client-node's makeInformer stops
// on most errors and resolves start() before its cache is filled; this one never gives up:
//
//   list: a watch-list (sendInitialEvents: the state streamed as events, ended by a bookmark),
//     or a paginated LIST where the server refuses it → replace the cache, emitting the
//     difference → synced
//   → watch from the list's resourceVersion, with bookmarks and a randomized server timeout
//     (after a watch-list, the same stream goes on as that watch)
//       watch ended cleanly / went silent → watch again from the last resourceVersion seen
//       watch failed (refused, unreachable, broken stream) → wait (jittered exponential
//         backoff), then watch again from the last resourceVersion seen
//       410 Gone, or a resourceVersion the server cannot serve → list again
//       a LIST that fails → wait (backoff), then list again
//   resync timer → replay the cache to subscribers (no request to the API server)
//
// A list of every object is the most expensive request an informer makes, so it is made only
// when the watch cannot resume: a re-watch from the last resourceVersion delivers everything
// that changed meanwhile. It is a watch-list, as client-go's reflector does since v1.35
// (WatchListClient): kube-apiserver (WatchList, on by default since v1.34) streams the
// collection from its watch cache, one object per event, after waiting until the cache is as
// fresh as etcd (a consistent read, without reading the collection from etcd). A paginated
// LIST is served from the watch cache too since v1.34 (ListFromCacheSnapshot), but each page
// makes the cache collect every key after the continue key before it filters: a label-selected
// LIST in pages of 25 (the managed Secrets) reads the whole Secret collection once per page
// (2,000 managed among 102,000 Secrets: 81 pages, 2.3-3.7 s of API server CPU; as a watch-list
// 0.13-0.2 s). Memory stays bounded as with pages: each event is one object, transformed as it
// arrives. A server that refuses the parameters (before v1.27, or WatchList off) gets the
// paginated LIST instead.
//
// Events are emitted after the cache holds the change; an update whose resourceVersion did not
// change (a relist replaying the same object) is not emitted. A resync emits an `update` whose
// `old` is the very same object (`e.old === e.object`). Cached objects are shared: never
// mutate them. Subscribers must not throw (rxjs rethrows asynchronously, which ends the
// process). Nothing here logs an object, only paths, counts and resourceVersions.
import type { KubeConfig, V1Status } from '@kubernetes/client-node';
import { type Observable, Subject } from 'rxjs';
import { type Clock, sleep, systemClock } from '../clock.ts';
import { type Logger, silentLogger } from '../observability/logger.ts';
import { safeMessage } from '../observability/redact.ts';
import { KubeApiError } from './api.ts';
import {
  INITIAL_EVENTS_END_ANNOTATION,
  isExpired,
  type KubeObject,
  kubeListWatch,
  type ListWatch,
  listAll,
  statusCodeOf,
  type WatchEventType,
} from './list-watch.ts';

export type { KubeObject } from './list-watch.ts';

export type InformerLogger = Pick<Logger, 'debug' | 'info' | 'warn' | 'error'>;

export interface InformerEvent<T> {
  type: 'add' | 'update' | 'delete';
  /** The object now (for delete: its last state). */
  object: T;
  /** The cached object it replaced (update, delete). */
  old?: T;
}

export interface InformerHealth {
  /** The first full list has landed. */
  synced: boolean;
  /** False once the informer has been failing without a break for longer than the budget. */
  healthy: boolean;
  lastError?: string;
  brokenSince?: Date;
}

/** The read side of an informer, also implemented by unions of informers. */
export interface ObjectCache<T> {
  /** By `namespace/name`, or `name` for cluster-scoped objects. */
  get(key: string): T | undefined;
  list(): T[];
  byNamespace(namespace: string): T[];
  hasSynced(): boolean;
}

export interface InformerOptions<T extends KubeObject> {
  /** Collection path, e.g. /api/v1/namespaces/X/secrets or /apis/regcred.dev/v1alpha1/registrycredentials. */
  path: string;
  labelSelector?: string;
  fieldSelector?: string;
  /** Applied to every object before caching, to keep caches small (default: stripManagedFields). */
  transform?: (obj: T) => T;
  /** Names the informer in logs (default: the path). */
  name?: string;
  logger?: InformerLogger;
  /**
   * Lists with a watch-list (default true); false, or a server that refuses it, lists in pages.
   */
  watchList?: boolean;
  /** LIST page size, where it lists in pages (default 500). */
  pageSize?: number;
  /** Sizes LIST pages by weight (see ListAllOptions.weigh): for objects that may be large. */
  weigh?: (obj: T) => number;
  /** Server-side watch timeout, chosen at random in [min, max] seconds (default 300..600). */
  watchTimeoutSeconds?: { min: number; max: number };
  /**
   * Resync period, jittered by ±10% (default 10 min; 0 disables): every cached object is
   * replayed to subscribers as an update (client-go's resync), so level-triggered consumers
   * re-check it. The API server is not asked.
   */
  resyncIntervalMs?: number;
  /** Restart a watch that delivered no event or bookmark for this long (default 150 s). */
  silenceTimeoutMs?: number;
  /** Retry backoff after a failure: initial and maximum delay (default 1 s .. 30 s), jittered. */
  backoff?: { initialMs: number; maxMs: number };
  /** health().healthy turns false after failing continuously for this long (default 60 s). */
  unhealthyAfterMs?: number;
  clock?: Clock;
  /** Source of randomness for jitter (tests pin it). */
  random?: () => number;
}

/** The default transform: managedFields are large and never read by the operator. */
export function stripManagedFields<T extends KubeObject>(obj: T): T {
  if (obj.metadata?.managedFields) delete obj.metadata.managedFields;
  return obj;
}

/** `namespace/name`, or `name` for cluster-scoped objects (client-go's MetaNamespaceKeyFunc). */
export function objectKey(obj: KubeObject): string {
  const name = obj.metadata?.name ?? '';
  const namespace = obj.metadata?.namespace;
  return namespace ? `${namespace}/${name}` : name;
}

type WatchEnd =
  | { kind: 'stopped' }
  | { kind: 'closed' }
  | { kind: 'silent' }
  | { kind: 'expired' }
  | { kind: 'failed'; error: unknown }
  /** A watch-list the server will not serve (see refusesWatchList). */
  | { kind: 'refused'; error: unknown };

/** A watch that ends cleanly sooner than this without any event counts as a failure. */
const MIN_CLEAN_WATCH_MS = 1000;

export class Informer<T extends KubeObject> implements ObjectCache<T> {
  readonly name: string;
  /** Cache changes, delivered after the cache holds them. Completes on stop(). */
  readonly events$: Observable<InformerEvent<T>>;
  /** Resolves once the first full list has landed; rejects if stopped before that. */
  readonly synced: Promise<void>;

  readonly #lw: ListWatch;
  readonly #path: string;
  readonly #labelSelector: string | undefined;
  readonly #fieldSelector: string | undefined;
  readonly #transform: (obj: T) => T;
  readonly #log: InformerLogger;
  readonly #pageSize: number;
  #watchList: boolean;
  readonly #weigh: ((obj: T) => number) | undefined;
  readonly #watchTimeout: { min: number; max: number };
  readonly #resyncIntervalMs: number;
  readonly #silenceTimeoutMs: number;
  readonly #backoff: { initialMs: number; maxMs: number };
  readonly #unhealthyAfterMs: number;
  readonly #clock: Clock;
  readonly #random: () => number;

  readonly #events = new Subject<InformerEvent<T>>();
  #cache = new Map<string, T>();
  #byNamespace = new Map<string, Map<string, T>>();
  #resourceVersion: string | undefined;
  /** The cache must be (re)filled: at start, after 410 Gone, after a failed list. */
  #needList = true;
  #synced = false;
  #resolveSynced: () => void = () => {};
  #rejectSynced: (err: Error) => void = () => {};

  #stopping: AbortController | undefined;
  #cancelResync: (() => void) | undefined;
  #running: Promise<void> | undefined;
  #stopped = false;
  #failures = 0;
  #expiredInARow = 0;
  #brokenSince: number | undefined;
  #lastError: string | undefined;

  /** `source`: the cluster's KubeConfig, or a ListWatch (tests, wrappers). */
  constructor(source: KubeConfig | ListWatch, opts: InformerOptions<T>) {
    this.#silenceTimeoutMs = opts.silenceTimeoutMs ?? 150_000;
    // The transport's idle cut-off must not fire before the silence watchdog does.
    this.#lw = isListWatch(source)
      ? source
      : kubeListWatch(source, { watchIdleTimeoutMs: this.#silenceTimeoutMs + 30_000 });
    this.#path = opts.path;
    this.name = opts.name ?? opts.path;
    this.#labelSelector = opts.labelSelector;
    this.#fieldSelector = opts.fieldSelector;
    this.#transform = opts.transform ?? stripManagedFields;
    this.#log = opts.logger ?? silentLogger;
    this.#pageSize = opts.pageSize ?? 500;
    this.#watchList = opts.watchList ?? true;
    this.#weigh = opts.weigh;
    this.#watchTimeout = opts.watchTimeoutSeconds ?? { min: 300, max: 600 };
    this.#resyncIntervalMs = opts.resyncIntervalMs ?? 10 * 60_000;
    this.#backoff = opts.backoff ?? { initialMs: 1000, maxMs: 30_000 };
    this.#unhealthyAfterMs = opts.unhealthyAfterMs ?? 60_000;
    this.#clock = opts.clock ?? systemClock;
    this.#random = opts.random ?? Math.random;
    this.events$ = this.#events.asObservable();
    this.synced = new Promise<void>((resolve, reject) => {
      this.#resolveSynced = resolve;
      this.#rejectSynced = reject;
    });
    // Nobody may be awaiting it when stop() rejects it.
    this.synced.catch(() => {});
  }

  start(): void {
    if (this.#stopped) throw new Error(`informer ${this.name} was stopped; make a new one`);
    if (this.#running) return;
    this.#stopping = new AbortController();
    this.#running = this.#run(this.#stopping.signal);
    this.#scheduleResync();
  }

  /** Aborts the watch, clears timers, completes events$. */
  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    this.#stopping?.abort();
    this.#cancelResync?.();
    await this.#running;
    if (!this.#synced)
      this.#rejectSynced(new Error(`informer ${this.name} stopped before it synced`));
    this.#events.complete();
  }

  hasSynced(): boolean {
    return this.#synced;
  }

  health(): InformerHealth {
    const broken = this.#brokenSince;
    return {
      synced: this.#synced,
      healthy: broken === undefined || this.#clock.now() - broken <= this.#unhealthyAfterMs,
      lastError: this.#lastError,
      brokenSince: broken === undefined ? undefined : new Date(broken),
    };
  }

  get(key: string): T | undefined {
    return this.#cache.get(key);
  }

  list(): T[] {
    return [...this.#cache.values()];
  }

  byNamespace(namespace: string): T[] {
    const index = this.#byNamespace.get(namespace);
    return index ? [...index.values()] : [];
  }

  /** The resourceVersion the next watch resumes from. */
  get resourceVersion(): string | undefined {
    return this.#resourceVersion;
  }

  // --- the loop ---

  async #run(signal: AbortSignal): Promise<void> {
    while (!signal.aborted) {
      if (this.#needList && !this.#watchList) {
        try {
          await this.#listAndReplace(signal);
        } catch (err) {
          if (signal.aborted) return;
          await this.#failed(err, 'list failed; listing again', signal);
          continue;
        }
      }
      const listing = this.#needList;
      const end = await this.#watch(signal, listing);
      if (listing && this.#needList) {
        // The watch-list ended before its initial events did: nothing was applied.
        if (end.kind === 'stopped' || signal.aborted) return;
        if (end.kind === 'refused') {
          this.#watchList = false;
          this.#log.info(
            'the API server does not stream lists (sendInitialEvents); listing in pages',
            {
              informer: this.name,
              error: messageOf(end.error),
            },
          );
          continue;
        }
        await this.#failed(
          end.kind === 'failed'
            ? end.error
            : new Error(`watch-list ended (${end.kind}) before its initial events`),
          'watch-list failed; listing again',
          signal,
        );
        continue;
      }
      switch (end.kind) {
        case 'stopped':
          return;
        case 'closed':
        case 'refused':
          break;
        case 'silent':
          // Debug only: on a quiet cluster no bookmark comes (the resourceVersion never moves).
          this.#log.debug('watch went silent; restarting it', {
            informer: this.name,
            silenceMs: this.#silenceTimeoutMs,
          });
          break;
        case 'expired':
          this.#needList = true;
          // A second expiry without any event in between means relisting does not help:
          // back off instead of hammering the server with lists.
          if (++this.#expiredInARow > 1) {
            await this.#failed(
              new Error('the watch expired again right after a list'),
              'relisting after a backoff',
              signal,
            );
          } else {
            this.#log.info('resourceVersion expired; relisting', { informer: this.name });
          }
          break;
        case 'failed':
          if (signal.aborted) return;
          // The resourceVersion is still good: what changed meanwhile comes with the next
          // watch, so no LIST is needed.
          await this.#failed(end.error, 'watch failed; watching again', signal);
          break;
      }
    }
  }

  /** Records a failure and waits out the backoff (or until stopped). */
  async #failed(err: unknown, what: string, signal: AbortSignal): Promise<void> {
    this.#failures++;
    this.#brokenSince ??= this.#clock.now();
    this.#lastError = messageOf(err);
    const delayMs = this.#backoffDelay();
    this.#log.warn(what, {
      informer: this.name,
      error: this.#lastError,
      attempt: this.#failures,
      retryInMs: Math.round(delayMs),
      resourceVersion: this.#resourceVersion,
    });
    await sleep(delayMs, signal, this.#clock);
  }

  #scheduleResync(): void {
    if (this.#resyncIntervalMs <= 0 || this.#stopped) return;
    const delayMs = this.#resyncIntervalMs * (0.9 + 0.2 * this.#random());
    this.#cancelResync = this.#clock.schedule(() => {
      this.#resync();
      this.#scheduleResync();
    }, delayMs);
  }

  /** Replays the cache as updates (old === object); nothing is read from the API server. */
  #resync(): void {
    if (!this.#synced || this.#stopped) return;
    const objects = [...this.#cache.values()];
    this.#log.debug('resync', { informer: this.name, objects: objects.length });
    for (const obj of objects) {
      if (this.#stopped) return;
      this.#events.next({ type: 'update', object: obj, old: obj });
    }
  }

  #backoffDelay(): number {
    const { initialMs, maxMs } = this.#backoff;
    const ceiling = Math.min(maxMs, initialMs * 2 ** Math.min(this.#failures - 1, 30));
    // Between half and all of the ceiling, never under the initial delay.
    return Math.max(initialMs, ceiling * (0.5 + 0.5 * this.#random()));
  }

  #recovered(): void {
    this.#failures = 0;
    this.#expiredInARow = 0;
    this.#brokenSince = undefined;
    this.#lastError = undefined;
  }

  async #listAndReplace(signal: AbortSignal): Promise<void> {
    const started = this.#clock.now();
    const result = await listAll<T>(this.#lw, this.#path, {
      labelSelector: this.#labelSelector,
      fieldSelector: this.#fieldSelector,
      pageSize: this.#pageSize,
      transform: this.#transform,
      ...(this.#weigh ? { weigh: this.#weigh } : {}),
      signal,
    });
    if (signal.aborted) return;
    const next = new Map<string, T>();
    for (const obj of result.items) next.set(objectKey(obj), obj);
    this.#replace(next, result.resourceVersion, { via: 'list', pages: result.pages, started });
  }

  /**
   * Makes `next` the cache as of `resourceVersion` (a list's, or a watch-list's bookmark) and
   * emits the difference.
   */
  #replace(
    next: Map<string, T>,
    resourceVersion: string,
    how: { via: 'list' | 'watch-list'; pages: number; started: number },
  ): void {
    const events: InformerEvent<T>[] = [];
    for (const [key, obj] of next) {
      const old = this.#cache.get(key);
      if (!old) {
        events.push({ type: 'add', object: obj });
      } else if (resourceVersionOf(old) === resourceVersionOf(obj)) {
        next.set(key, old); // unchanged: keep the cached object, emit nothing
      } else {
        events.push({ type: 'update', object: obj, old });
      }
    }
    for (const [key, old] of this.#cache) {
      if (!next.has(key)) events.push({ type: 'delete', object: old, old });
    }

    this.#cache = next;
    this.#byNamespace = new Map();
    for (const [key, obj] of next) this.#index(key, obj);
    this.#resourceVersion = resourceVersion;
    this.#needList = false;
    const listed = {
      informer: this.name,
      objects: next.size,
      via: how.via,
      ...(how.via === 'list' ? { pages: how.pages } : {}),
      durationMs: Math.round(this.#clock.now() - how.started),
    };
    this.#log.debug('listed', { ...listed, changes: events.length, resourceVersion });

    if (!this.#synced) {
      this.#synced = true;
      this.#log.info('informer synced', listed);
      this.#resolveSynced();
    }
    for (const event of events) this.#events.next(event);
  }

  /**
   * One watch, until it ends for one of WatchEnd's reasons: from the last resourceVersion, or,
   * `listing`, a watch-list that fills the cache first (its initial events are gathered aside
   * and replace the cache at the bookmark that ends them; then the stream goes on as a watch).
   */
  #watch(signal: AbortSignal, listing: boolean): Promise<WatchEnd> {
    if (signal.aborted) return Promise.resolve({ kind: 'stopped' });
    const { min, max } = this.#watchTimeout;
    const timeoutSeconds = Math.round(min + (max - min) * this.#random());
    const startedAt = this.#clock.now();
    // A watch-list asks for the latest state (a consistent read), as client-go's does after
    // 410 Gone: the resourceVersion it had is either gone or about to be replaced.
    const startedRv = listing ? undefined : this.#resourceVersion;
    // The initial events, until the bookmark that ends them; undefined once applied.
    let initial: Map<string, T> | undefined = listing ? new Map() : undefined;

    return new Promise<WatchEnd>((resolve) => {
      let ended = false;
      let handle: { abort(): void } | undefined;
      let sawEvents = false;
      let recovered = false;
      let connected = false;
      let cancelSilence: (() => void) | undefined;

      const end = (why: WatchEnd): void => {
        if (ended) return;
        ended = true;
        cancelSilence?.();
        signal.removeEventListener('abort', onStop);
        handle?.abort();
        resolve(why);
      };
      const onStop = (): void => end({ kind: 'stopped' });
      const armSilence = (): void => {
        cancelSilence?.();
        cancelSilence = this.#clock.schedule(
          () =>
            // Quiet after connecting is normal on a quiet cluster; never connecting is not (a
            // hung API server) and must count against health.
            end(
              connected
                ? { kind: 'silent' }
                : {
                    kind: 'failed',
                    error: new Error(
                      `watch ${this.#path} did not connect within ${this.#silenceTimeoutMs} ms`,
                    ),
                  },
            ),
          this.#silenceTimeoutMs,
        );
      };
      signal.addEventListener('abort', onStop, { once: true });
      armSilence();

      const onEvent = (type: WatchEventType, raw: unknown): void => {
        if (ended) return;
        // An exception here must not escape into the stream's data handler: it fails the watch.
        try {
          connected = true;
          armSilence();
          if (type === 'ERROR') {
            const status = (raw ?? {}) as V1Status;
            const error = new KubeApiError(
              status.code ?? 0,
              status.reason ?? '',
              safeMessage(`watch ${this.#path}: ${status.message ?? 'error event'}`),
            );
            if (unusableResourceVersion(status)) {
              end({ kind: 'expired' });
            } else if (initial && refusesWatchList(error)) {
              end({ kind: 'refused', error });
            } else {
              end({ kind: 'failed', error });
            }
            return;
          }
          sawEvents = true;
          // A change delivered means the watch works again; a list (the initial events) does
          // not: a watch that expires right after every list must still back off.
          if (!initial && !recovered) {
            recovered = true;
            this.#recovered();
          }
          if (initial) {
            if (this.#gatherInitialEvent(initial, type, raw as T)) {
              const next = initial;
              initial = undefined;
              this.#replace(next, resourceVersionOf(raw as T) ?? '', {
                via: 'watch-list',
                pages: 1,
                started: startedAt,
              });
            }
            return;
          }
          this.#applyWatchEvent(type, raw as T);
        } catch (err) {
          end({ kind: 'failed', error: err });
        }
      };
      const onDone = (err?: unknown): void => {
        if (ended) return;
        if (err === undefined || isTimeoutError(err)) {
          const quick = this.#clock.now() - startedAt < MIN_CLEAN_WATCH_MS;
          end(
            quick && !sawEvents
              ? { kind: 'failed', error: new Error(`watch ${this.#path} closed at once`) }
              : { kind: 'closed' },
          );
        } else if (isExpired(err) || isResourceVersionTooLarge(err)) {
          end({ kind: 'expired' });
        } else if (initial && refusesWatchList(err)) {
          end({ kind: 'refused', error: err });
        } else {
          end({ kind: 'failed', error: err });
        }
      };

      this.#log.debug('watching', {
        informer: this.name,
        resourceVersion: startedRv,
        timeoutSeconds,
      });
      this.#lw
        .watch(
          this.#path,
          {
            resourceVersion: startedRv,
            labelSelector: this.#labelSelector,
            fieldSelector: this.#fieldSelector,
            allowWatchBookmarks: true,
            timeoutSeconds,
            ...(listing ? { sendInitialEvents: true, resourceVersionMatch: 'NotOlderThan' } : {}),
          },
          onEvent,
          onDone,
        )
        .then(
          (h) => {
            handle = h;
            if (ended) {
              h.abort();
            } else {
              // Connected: the informer works again, even before the first event.
              connected = true;
              this.#brokenSince = undefined;
              this.#lastError = undefined;
            }
          },
          (err: unknown) => end({ kind: 'failed', error: err }),
        );
    });
  }

  /**
   * Adds one of a watch-list's initial events to `next`; true at the bookmark that ends them.
   * Other bookmarks carry nothing to resume from yet: the objects' own resourceVersions are
   * not ordered until that bookmark.
   */
  #gatherInitialEvent(next: Map<string, T>, type: WatchEventType, raw: T): boolean {
    if (type === 'BOOKMARK') {
      return raw.metadata?.annotations?.[INITIAL_EVENTS_END_ANNOTATION] === 'true';
    }
    if (type !== 'ADDED' && type !== 'MODIFIED' && type !== 'DELETED') {
      throw new Error(`watch ${this.#path}: unexpected event type ${type}`);
    }
    const obj = this.#transform(raw);
    if (type === 'DELETED') next.delete(objectKey(obj));
    else next.set(objectKey(obj), obj);
    return false;
  }

  #applyWatchEvent(type: WatchEventType, raw: T): void {
    if (type === 'BOOKMARK') {
      const rv = resourceVersionOf(raw);
      if (rv) this.#resourceVersion = rv;
      return;
    }
    if (type !== 'ADDED' && type !== 'MODIFIED' && type !== 'DELETED') {
      throw new Error(`watch ${this.#path}: unexpected event type ${type}`);
    }
    const obj = this.#transform(raw);
    const key = objectKey(obj);
    const rv = resourceVersionOf(obj);
    const old = this.#cache.get(key);
    if (rv) this.#resourceVersion = rv;

    if (type === 'DELETED') {
      if (!old) return;
      this.#cache.delete(key);
      this.#unindex(key, old);
      this.#events.next({ type: 'delete', object: obj, old });
      return;
    }
    if (old && resourceVersionOf(old) === rv) return;
    if (old) this.#unindex(key, old);
    this.#cache.set(key, obj);
    this.#index(key, obj);
    this.#events.next(old ? { type: 'update', object: obj, old } : { type: 'add', object: obj });
  }

  #index(key: string, obj: T): void {
    const namespace = obj.metadata?.namespace ?? '';
    let index = this.#byNamespace.get(namespace);
    if (!index) {
      index = new Map();
      this.#byNamespace.set(namespace, index);
    }
    index.set(key, obj);
  }

  #unindex(key: string, obj: T): void {
    const namespace = obj.metadata?.namespace ?? '';
    const index = this.#byNamespace.get(namespace);
    if (!index) return;
    index.delete(key);
    if (index.size === 0) this.#byNamespace.delete(namespace);
  }
}

/**
 * A watch's resourceVersion the server cannot serve: 410 (older than it keeps), or newer than
 * it has (an API server restored from an older etcd, or behind a lagging watch cache). Only a
 * relist recovers from either.
 */
function unusableResourceVersion(status: V1Status): boolean {
  return (
    status.code === 410 ||
    status.reason === 'Expired' ||
    status.reason === 'Gone' ||
    (status.details?.causes ?? []).some((c) => c.reason === 'ResourceVersionTooLarge') ||
    /too large resource version/i.test(status.message ?? '')
  );
}

/**
 * A watch-list the server will not serve, now or on a retry: it rejects the parameters (400 or
 * 422: an API server before v1.27, or with the WatchList feature off), or its storage cannot
 * stream (etcd without progress notifications). List in pages instead, as client-go does.
 */
function refusesWatchList(err: unknown): boolean {
  const code = statusCodeOf(err);
  if (code === 400 || code === 422) return true;
  const message = err instanceof Error ? err.message : '';
  return /sendInitialEvents|watch stream was requested/i.test(message);
}

/** The same, for a watch refused with an HTTP error (the server answers 504 with a Status). */
function isResourceVersionTooLarge(err: unknown): boolean {
  return err instanceof KubeApiError && /too large resource version/i.test(err.message);
}

function isListWatch(source: KubeConfig | ListWatch): source is ListWatch {
  return typeof (source as Partial<ListWatch>).list === 'function' && 'watch' in source;
}

function resourceVersionOf(obj: KubeObject): string | undefined {
  return obj.metadata?.resourceVersion;
}

/** The transport's idle timeout (a DOMException): the watch simply went quiet. */
function isTimeoutError(err: unknown): boolean {
  return typeof err === 'object' && err !== null && 'name' in err && err.name === 'TimeoutError';
}

function messageOf(err: unknown): string {
  return safeMessage(err instanceof Error ? err.message : String(err));
}

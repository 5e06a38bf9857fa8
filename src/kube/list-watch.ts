// LIST and WATCH of any collection path (/api/v1/namespaces, /apis/<group>/<v>/<plural>, ...),
// the two calls an informer is made of, over rest.ts (the KubeConfig's auth and TLS, undici's
// request()). A watch is one long GET whose body is a JSON object per line.
import type { KubeConfig, V1ObjectMeta } from '@kubernetes/client-node';
import { safeMessage } from '../observability/redact.ts';
import { KubeApiError, KubeRest, statusError } from './rest.ts';

/** What every Kubernetes object has; enough for caching and keying. */
export interface KubeObject {
  apiVersion?: string;
  kind?: string;
  metadata?: V1ObjectMeta;
}

export interface ListOptions {
  labelSelector?: string;
  fieldSelector?: string;
  /** Page size; the server may return fewer and a continue token. */
  limit?: number;
  continueToken?: string;
  resourceVersion?: string;
  resourceVersionMatch?: 'Exact' | 'NotOlderThan';
  signal?: AbortSignal;
}

export interface ListPage<T> {
  items: T[];
  resourceVersion: string;
  /** Set when more pages remain. */
  continueToken?: string;
}

export interface WatchOptions {
  resourceVersion?: string;
  labelSelector?: string;
  fieldSelector?: string;
  allowWatchBookmarks?: boolean;
  /** The server ends the watch cleanly after this long. */
  timeoutSeconds?: number;
  /**
   * A watch-list (KEP-3157): the server first streams the collection's state as ADDED events,
   * from its watch cache, then a BOOKMARK annotated `k8s.io/initial-events-end`, then the
   * changes. Needs `resourceVersionMatch: 'NotOlderThan'` and bookmarks.
   */
  sendInitialEvents?: boolean;
  resourceVersionMatch?: 'NotOlderThan';
}

/** The annotation of the BOOKMARK that ends a watch-list's initial events. */
export const INITIAL_EVENTS_END_ANNOTATION = 'k8s.io/initial-events-end';

/** ADDED, MODIFIED, DELETED, BOOKMARK or ERROR (whose object is a Status). */
export type WatchEventType = string;

export interface WatchHandle {
  abort(): void;
}

export interface ListWatch {
  list<T>(path: string, opts?: ListOptions): Promise<ListPage<T>>;
  /**
   * Starts a watch. `onDone` is called exactly once: with undefined when the stream ends
   * normally, with the error otherwise (an error carrying `statusCode` for an HTTP refusal).
   */
  watch(
    path: string,
    opts: WatchOptions,
    onEvent: (type: WatchEventType, object: unknown) => void,
    onDone: (err?: unknown) => void,
  ): Promise<WatchHandle>;
}

export interface KubeListWatchOptions {
  /** A LIST request (one page) fails after this long (default 60 s). */
  listTimeoutMs?: number;
  /**
   * A watch without data for this long ends, as a quiet watch ends (a TimeoutError). Quiet
   * collections get a bookmark only about once a minute; callers with their own silence
   * watchdog set it above the watchdog (default 180 s).
   */
  watchIdleTimeoutMs?: number;
  /** A WATCH's headers must come within this long (default REQUEST_TIMEOUT_MS, 30 s). */
  requestTimeoutMs?: number;
}

interface RawList {
  metadata?: { resourceVersion?: string; continue?: string };
  items?: unknown[];
}

/** HTTP status of a LIST/WATCH failure (a KubeApiError, or an error carrying statusCode). */
export function statusCodeOf(err: unknown): number | undefined {
  if (err instanceof KubeApiError) return err.code;
  if (err && typeof err === 'object' && 'statusCode' in err) {
    const code = (err as { statusCode: unknown }).statusCode;
    if (typeof code === 'number') return code;
  }
  return undefined;
}

/** A 410: the resourceVersion or continue token is older than the server keeps. */
export function isExpired(err: unknown): boolean {
  return statusCodeOf(err) === 410;
}

export function kubeListWatch(kc: KubeConfig, opts: KubeListWatchOptions = {}): ListWatch {
  const rest = new KubeRest(kc, opts.requestTimeoutMs);
  const idleMs = opts.watchIdleTimeoutMs ?? 180_000;
  const listTimeoutMs = opts.listTimeoutMs ?? 60_000;

  return {
    async list<T>(path: string, o: ListOptions = {}): Promise<ListPage<T>> {
      const list = await rest.send<RawList>(
        {
          method: 'GET',
          path,
          query: {
            labelSelector: o.labelSelector,
            fieldSelector: o.fieldSelector,
            limit: o.limit === undefined ? undefined : String(o.limit),
            continue: o.continueToken,
            resourceVersion: o.resourceVersion,
            resourceVersionMatch: o.resourceVersionMatch,
          },
          timeoutMs: listTimeoutMs,
          ...(o.signal ? { signal: o.signal } : {}),
        },
        `list ${path}`,
      );
      if (!Array.isArray(list.items)) {
        throw new KubeApiError(200, 'BadResponse', `list ${path}: the response is not a list`);
      }
      return {
        items: list.items as T[],
        resourceVersion: list.metadata?.resourceVersion ?? '',
        continueToken: list.metadata?.continue || undefined,
      };
    },

    async watch(path, o, onEvent, onDone) {
      const controller = new AbortController();
      let finished = false;
      // onDone exactly once: at the end of the stream, on an error, or on abort().
      const finish = (err?: unknown): void => {
        if (finished) return;
        finished = true;
        controller.abort();
        onDone(err);
      };
      const handle = { abort: () => finish() };
      try {
        const response = await rest.open({
          method: 'GET',
          path,
          query: {
            watch: 'true',
            resourceVersion: o.resourceVersion,
            labelSelector: o.labelSelector,
            fieldSelector: o.fieldSelector,
            allowWatchBookmarks: o.allowWatchBookmarks ? 'true' : undefined,
            sendInitialEvents: o.sendInitialEvents ? 'true' : undefined,
            resourceVersionMatch: o.resourceVersionMatch,
            timeoutSeconds: o.timeoutSeconds === undefined ? undefined : String(o.timeoutSeconds),
          },
          // Headers at once (a server that accepts and never answers is Unreachable, not
          // quiet); then a pause of idleMs between chunks ends a quiet watch.
          idleMs,
          signal: controller.signal,
        });
        if (response.statusCode !== 200) {
          const text = await response.body.text();
          finish(statusError(response.statusCode, text, `watch ${path}`));
          return handle;
        }
        const body = response.body;
        body.setEncoding('utf8');
        let partial = '';
        // A broken stream ends the watch with an error; the informer starts over from what
        // it has applied, so nothing is lost.
        const broken = (why: string) =>
          finish(new KubeApiError(0, 'BadResponse', `watch ${path}: ${why}`));
        body.on('data', (chunk: string) => {
          if (finished) return;
          let from = 0;
          for (let nl = chunk.indexOf('\n'); nl >= 0; nl = chunk.indexOf('\n', from)) {
            const line = partial + chunk.slice(from, nl);
            partial = '';
            from = nl + 1;
            if (line.length === 0) continue;
            let event: unknown;
            try {
              event = JSON.parse(line);
            } catch {
              broken('a line is not JSON');
              return;
            }
            if (typeof event !== 'object' || event === null || Array.isArray(event)) {
              broken('a line is not a watch event');
              return;
            }
            const { type, object } = event as RawEvent;
            try {
              onEvent(typeof type === 'string' ? type : '', object);
            } catch (err) {
              finish(err);
              return;
            }
            if (finished) return;
          }
          partial += chunk.slice(from);
          if (partial.length > MAX_LINE) broken(`a line is longer than ${MAX_LINE} characters`);
        });
        body.on('end', () => (partial.trim() === '' ? finish() : broken('it ended inside a line')));
        body.on('close', () => finish());
        body.on('error', (err) => finish(idle(err) ? timeoutError(path) : err));
      } catch (err) {
        if (err instanceof KubeApiError) finish(err);
        else {
          const message = err instanceof Error ? err.message : String(err);
          finish(new KubeApiError(0, 'Unreachable', safeMessage(`watch ${path}: ${message}`)));
        }
      }
      return handle;
    },
  };
}

interface RawEvent {
  type?: string;
  object?: unknown;
}

/** A watch event is one object, at most ~1.5 MB in etcd; this only stops a runaway stream. */
const MAX_LINE = 64 * 1024 * 1024;

/** undici's body timeout: the watch was idle for watchIdleTimeoutMs. */
function idle(err: unknown): boolean {
  return (err as { code?: unknown } | null)?.code === 'UND_ERR_BODY_TIMEOUT';
}

/** What callers treat as the normal end of a quiet watch. */
function timeoutError(path: string): Error {
  return new DOMException(`watch ${path} was idle`, 'TimeoutError');
}

export interface ListAllOptions<T = unknown> extends Omit<ListOptions, 'limit' | 'continueToken'> {
  /** Page size (default 500). 0 lists in one request. */
  pageSize?: number;
  /**
   * Applied to each item as its page arrives, so a page's raw objects can be dropped before
   * the next one is read (large objects are never all in memory at once).
   */
  transform?: (item: T) => T;
  /**
   * The bytes an item weighs (e.g. a Secret's data). Given, pages start at 10 items and each
   * next page is sized from the last one's average to hold about `pageBytes` (default 1.5 MiB,
   * so a 1 MiB Secret comes alone), up to `pageSize`: a run of large objects costs one page of
   * at most `pageSize` of them, then they come one at a time.
   */
  weigh?: (item: T) => number;
  pageBytes?: number;
}

export interface ListResult<T> {
  items: T[];
  resourceVersion: string;
  pages: number;
}

/**
 * Lists a whole collection page by page. All pages come from one consistent snapshot; when
 * the snapshot expires midway (410 on a continue token), it starts over with a single
 * unpaginated request, as client-go's pager does.
 */
export async function listAll<T>(
  lw: ListWatch,
  path: string,
  opts: ListAllOptions<T> = {},
): Promise<ListResult<T>> {
  const {
    pageSize = 500,
    transform = (item: T) => item,
    weigh,
    pageBytes = 1536 * 1024,
    ...rest
  } = opts;
  const items: T[] = [];
  let continueToken: string | undefined;
  let pages = 0;
  let limit = weigh && pageSize > 0 ? Math.min(pageSize, 10) : pageSize;
  for (;;) {
    let page: ListPage<T>;
    try {
      // The server refuses a resourceVersion together with a continue token.
      page = await lw.list<T>(
        path,
        continueToken === undefined
          ? { ...rest, limit: limit > 0 ? limit : undefined }
          : {
              ...rest,
              resourceVersion: undefined,
              resourceVersionMatch: undefined,
              limit,
              continueToken,
            },
      );
    } catch (err) {
      if (continueToken === undefined || !isExpired(err)) throw err;
      const full = await lw.list<T>(path, rest);
      return {
        items: full.items.map(transform),
        resourceVersion: full.resourceVersion,
        pages: pages + 1,
      };
    }
    pages++;
    if (weigh && page.items.length > 0) {
      const average = page.items.reduce((sum, item) => sum + weigh(item), 0) / page.items.length;
      limit = Math.max(1, Math.min(pageSize, Math.floor(pageBytes / Math.max(average, 1))));
    }
    for (const item of page.items) items.push(transform(item));
    if (!page.continueToken) return { items, resourceVersion: page.resourceVersion, pages };
    continueToken = page.continueToken;
  }
}

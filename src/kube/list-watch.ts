// LIST and WATCH of any collection path (/api/v1/namespaces, /apis/<group>/<v>/<plural>, ...),
// the two calls an informer is made of. LIST goes through client-node's RequestContext and
// fetch library (the KubeConfig's auth and TLS), WATCH through client-node's Watch.
import {
  HttpMethod,
  IsomorphicFetchHttpLibrary,
  type KubeConfig,
  RequestContext,
  type V1ObjectMeta,
  Watch,
} from '@kubernetes/client-node';
import { safeMessage } from '../observability/redact.ts';
import { KubeApiError } from './api.ts';

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
}

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
   * client-node ends a watch after 30 s without data: quiet collections get a bookmark only
   * about once a minute, so that would cut every quiet watch. Callers with their own silence
   * watchdog raise it above the watchdog (default 180 s).
   */
  watchIdleTimeoutMs?: number;
}

interface RawList {
  metadata?: { resourceVersion?: string; continue?: string };
  items?: unknown[];
}

interface RawStatus {
  kind?: string;
  code?: number;
  reason?: string;
  message?: string;
}

/** HTTP status of a LIST/WATCH failure (KubeApiError, or client-node's watch error). */
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
  const http = new IsomorphicFetchHttpLibrary();
  const watcher = new Watch(kc);
  // See watchIdleTimeoutMs. The field is private in client-node's types; if it ever disappears
  // this is a no-op and a quiet watch simply ends with a TimeoutError, which callers treat as
  // a normal end.
  (watcher as unknown as { requestTimeoutMs: number }).requestTimeoutMs =
    opts.watchIdleTimeoutMs ?? 180_000;
  const listTimeoutMs = opts.listTimeoutMs ?? 60_000;

  return {
    async list<T>(path: string, o: ListOptions = {}): Promise<ListPage<T>> {
      const server = kc.getCurrentCluster()?.server;
      if (!server) throw new KubeApiError(0, 'NoCluster', 'the kubeconfig has no current cluster');
      const url = new URL(server + path);
      const query: Record<string, string | number | undefined> = {
        labelSelector: o.labelSelector,
        fieldSelector: o.fieldSelector,
        limit: o.limit,
        continue: o.continueToken,
        resourceVersion: o.resourceVersion,
        resourceVersionMatch: o.resourceVersionMatch,
      };
      for (const [k, v] of Object.entries(query)) {
        if (v !== undefined && v !== '') url.searchParams.set(k, String(v));
      }
      const ctx = new RequestContext(url.toString(), HttpMethod.GET);
      ctx.setHeaderParam('Accept', 'application/json');
      const timeout = AbortSignal.timeout(listTimeoutMs);
      ctx.setSignal(o.signal ? AbortSignal.any([o.signal, timeout]) : timeout);
      await kc.applySecurityAuthentication(ctx);

      let status: number;
      let body: string;
      try {
        const response = await http.send(ctx).toPromise();
        status = response.httpStatusCode;
        body = await response.body.text();
      } catch (err) {
        const message = err instanceof Error ? err.message : String(err);
        throw new KubeApiError(0, 'Unreachable', safeMessage(`list ${path}: ${message}`));
      }
      if (status < 200 || status > 299) {
        const s = parseJson<RawStatus>(body) ?? {};
        const detail = s.kind === 'Status' && s.message ? s.message : `HTTP ${status}`;
        throw new KubeApiError(status, s.reason ?? '', safeMessage(`list ${path}: ${detail}`));
      }
      const list = parseJson<RawList>(body);
      if (!list || !Array.isArray(list.items)) {
        throw new KubeApiError(status, 'BadResponse', `list ${path}: the response is not a list`);
      }
      return {
        items: list.items as T[],
        resourceVersion: list.metadata?.resourceVersion ?? '',
        continueToken: list.metadata?.continue || undefined,
      };
    },

    async watch(path, o, onEvent, onDone) {
      const controller = await watcher.watch(
        path,
        {
          resourceVersion: o.resourceVersion,
          labelSelector: o.labelSelector || undefined,
          fieldSelector: o.fieldSelector || undefined,
          allowWatchBookmarks: o.allowWatchBookmarks,
          timeoutSeconds: o.timeoutSeconds,
        },
        (type: string, object: unknown) => onEvent(type, object),
        (err: unknown) => onDone(err ?? undefined),
      );
      return { abort: () => controller.abort() };
    },
  };
}

export interface ListAllOptions extends Omit<ListOptions, 'limit' | 'continueToken'> {
  /** Page size (default 500). 0 lists in one request. */
  pageSize?: number;
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
  opts: ListAllOptions = {},
): Promise<ListResult<T>> {
  const { pageSize = 500, ...rest } = opts;
  const items: T[] = [];
  let continueToken: string | undefined;
  let pages = 0;
  for (;;) {
    let page: ListPage<T>;
    try {
      // The server refuses a resourceVersion together with a continue token.
      page = await lw.list<T>(
        path,
        continueToken === undefined
          ? { ...rest, limit: pageSize > 0 ? pageSize : undefined }
          : {
              ...rest,
              resourceVersion: undefined,
              resourceVersionMatch: undefined,
              limit: pageSize,
              continueToken,
            },
      );
    } catch (err) {
      if (continueToken === undefined || !isExpired(err)) throw err;
      const full = await lw.list<T>(path, rest);
      return { items: full.items, resourceVersion: full.resourceVersion, pages: pages + 1 };
    }
    pages++;
    for (const item of page.items) items.push(item);
    if (!page.continueToken) return { items, resourceVersion: page.resourceVersion, pages };
    continueToken = page.continueToken;
  }
}

function parseJson<T>(text: string): T | undefined {
  try {
    return JSON.parse(text) as T;
  } catch {
    return undefined;
  }
}

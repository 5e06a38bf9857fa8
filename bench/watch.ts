// A client-node Watch that starts at a given resourceVersion and resumes from the last one it
// saw when the stream ends, so a measurement never misses an event. Each event is stamped
// with performance.now() as it arrives.
import { type KubeConfig, type V1ObjectMeta, Watch } from '@kubernetes/client-node';

export interface WatchedObject {
  metadata?: V1ObjectMeta;
}

export type WatchEventType = 'ADDED' | 'MODIFIED' | 'DELETED';

export type WatchHandler<T> = (type: WatchEventType, object: T, at: number) => void;

export interface WatchQuery {
  labelSelector?: string;
  fieldSelector?: string;
}

interface RawEvent {
  metadata?: V1ObjectMeta;
  code?: number;
}

export class ResumingWatch<T extends WatchedObject> {
  private readonly watcher: Watch;
  private readonly path: string;
  private readonly query: WatchQuery;
  private readonly onEvent: WatchHandler<T>;
  private readonly relist: () => Promise<string>;
  private resourceVersion = '';
  private controller?: AbortController;
  private stopped = false;
  /** Times the stream had to be restarted from scratch (a 410): events may have been missed. */
  gaps = 0;

  /**
   * `currentResourceVersion` returns the collection's resourceVersion now (a LIST with
   * limit=1): the watch starts there, so it delivers only what changes from then on.
   */
  constructor(
    kc: KubeConfig,
    path: string,
    query: WatchQuery,
    currentResourceVersion: () => Promise<string>,
    onEvent: WatchHandler<T>,
  ) {
    this.watcher = new Watch(kc);
    // client-node cuts a stream idle for 30 s; a benchmark watch may wait longer than that.
    (this.watcher as unknown as { requestTimeoutMs: number }).requestTimeoutMs = 600_000;
    this.path = path;
    this.query = query;
    this.relist = currentResourceVersion;
    this.onEvent = onEvent;
  }

  async start(): Promise<this> {
    this.resourceVersion = await this.relist();
    await this.connect();
    return this;
  }

  stop(): void {
    this.stopped = true;
    this.controller?.abort();
  }

  private async connect(): Promise<void> {
    if (this.stopped) return;
    let expired = false;
    this.controller = await this.watcher.watch(
      this.path,
      {
        ...this.query,
        resourceVersion: this.resourceVersion,
        allowWatchBookmarks: true,
        timeoutSeconds: 1800,
      },
      (type: string, raw: RawEvent) => {
        const at = performance.now();
        if (type === 'ERROR') {
          if (raw.code === 410) expired = true;
          return;
        }
        const rv = raw.metadata?.resourceVersion;
        if (rv) this.resourceVersion = rv;
        if (type === 'ADDED' || type === 'MODIFIED' || type === 'DELETED') {
          this.onEvent(type, raw as T, at);
        }
      },
      (err: unknown) => {
        if (this.stopped) return;
        const code = (err as { statusCode?: number } | null)?.statusCode;
        setTimeout(() => void this.resume(expired || code === 410), 100);
      },
    );
  }

  private async resume(expired: boolean): Promise<void> {
    if (this.stopped) return;
    try {
      if (expired) {
        this.gaps += 1;
        this.resourceVersion = await this.relist();
      }
      await this.connect();
    } catch {
      setTimeout(() => void this.resume(expired), 500);
    }
  }
}

// What we wrote, until the watch catches up. Without it, an event that arrives between our
// write and the watch delivering it would find the old object in the cache and make us write
// again (a wasted request and a 409).

export type OverlayObject = {
  metadata?: { name?: string; namespace?: string; resourceVersion?: string };
};

/** `namespace/name`, or `name` for a cluster-scoped object: the informers' cache key. */
export function overlayKey(obj: OverlayObject): string {
  const ns = obj.metadata?.namespace;
  return ns ? `${ns}/${obj.metadata?.name}` : (obj.metadata?.name ?? '');
}

function resourceVersion(obj: OverlayObject | undefined): number {
  const n = Number(obj?.metadata?.resourceVersion);
  return Number.isFinite(n) ? n : -1;
}

export class WrittenOverlay<T extends OverlayObject> {
  /** Our latest write per key; null for a delete we made. */
  private readonly written = new Map<string, T | null>();

  put(obj: T): void {
    this.written.set(overlayKey(obj), obj);
  }

  remove(key: string): void {
    this.written.set(key, null);
  }

  /**
   * The newer of the cache's object and ours; drops ours once the cache has caught up.
   * `seenThrough` is the resourceVersion the cache has seen everything up to: a write of ours
   * at or before it that the cache does not hold was deleted meanwhile (a relist after a
   * watch gap emits no delete for a key the cache never held), so it is not served any more.
   */
  pick(key: string, cached: T | undefined, seenThrough = -1): T | undefined {
    if (!this.written.has(key)) return cached;
    const mine = this.written.get(key);
    if (mine === null || mine === undefined) {
      if (cached === undefined) this.written.delete(key);
      return undefined;
    }
    if (cached === undefined && seenThrough >= resourceVersion(mine)) {
      this.written.delete(key);
      return undefined;
    }
    if (cached && resourceVersion(cached) >= resourceVersion(mine)) {
      this.written.delete(key);
      return cached;
    }
    return mine;
  }

  /**
   * The watch delivered `obj`: once it reports our write or anything later (a delete included:
   * a DELETED event carries the resourceVersion of the deletion), the cache is the truth. Without
   * this, pick() cannot tell "not seen yet" from "seen, then deleted by someone else", and serves
   * a Secret that no longer exists for as long as the process lives. Returns true when `obj`
   * is our own write coming back (the same resourceVersion, or the delete we made).
   */
  observed(obj: T, type?: 'add' | 'update' | 'delete'): boolean {
    const key = overlayKey(obj);
    const mine = this.written.get(key);
    if (mine === undefined) return false;
    if (mine === null) {
      this.written.delete(key);
      return type === 'delete';
    }
    if (resourceVersion(obj) >= resourceVersion(mine)) this.written.delete(key);
    return type !== 'delete' && resourceVersion(obj) === resourceVersion(mine);
  }

  /** Our pending writes (null: a delete), copied: pick() may drop entries meanwhile. */
  entries(): Array<[string, T | null]> {
    return [...this.written.entries()];
  }

  /** How many writes are still waiting for their watch event (tests, debugging). */
  get size(): number {
    return this.written.size;
  }

  clear(): void {
    this.written.clear();
  }
}

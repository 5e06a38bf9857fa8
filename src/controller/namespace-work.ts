// The fast path's work queue, keyed by namespace: each key carries the RegistryCredentials due
// there, so a worker syncs every credential of a new namespace (or ServiceAccount) at once,
// with one ServiceAccount write for all their entries (NamespaceSync.reconcileNamespaces),
// instead of one worker per credential writing the same ServiceAccount one after the other.
// The WorkQueue keeps its guarantees per namespace: never two syncs of one namespace at once,
// a credential due while its namespace syncs makes the namespace due again, and a failure
// backs off the namespace (with its failed credentials still due).
import type { AddOptions, WorkQueue } from './workqueue.ts';

export class NamespaceWork {
  readonly queue: WorkQueue;
  /** The credentials due in each namespace, in the order they became due. */
  readonly #due = new Map<string, Set<string>>();

  constructor(queue: WorkQueue) {
    this.queue = queue;
  }

  /** `credential` needs a sync of `namespace` (urgent: ahead of non-urgent namespaces). */
  add(credential: string, namespace: string, opts: AddOptions = {}): void {
    if (this.queue.shuttingDown()) return;
    let due = this.#due.get(namespace);
    if (!due) {
      due = new Set();
      this.#due.set(namespace, due);
    }
    due.add(credential);
    this.queue.add(namespace, opts);
  }

  /** The credentials due in `namespace` (the queue handed it out): no longer due. */
  take(namespace: string): string[] {
    const due = this.#due.get(namespace);
    this.#due.delete(namespace);
    return due ? [...due] : [];
  }

  /**
   * Due again, with the namespace's retry (the worker pool re-adds the key with backoff when
   * its handler fails), or sooner if another credential becomes due there meanwhile.
   */
  retry(namespace: string, credentials: readonly string[]): void {
    if (credentials.length === 0) return;
    const due = this.#due.get(namespace) ?? new Set();
    for (const credential of credentials) due.add(credential);
    this.#due.set(namespace, due);
  }

  /** Namespaces with credentials due (for tests and memory checks). */
  get size(): number {
    return this.#due.size;
  }
}

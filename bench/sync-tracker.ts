// What a user would see, namespace by namespace, from watch events: when the Secret first held
// the expected bytes, when the default ServiceAccount first appeared, and when it first
// carried the pull-secret entry. A namespace is synced once everything tracked has happened.
import type { V1Secret, V1ServiceAccount } from '@kubernetes/client-node';
import { hasPullSecret, holdsPassword } from './cluster.ts';
import type { WatchEventType } from './watch.ts';

export interface SyncTrackerOptions {
  secretName: string;
  /** Track the Secret's bytes (fan-out, rotation). */
  password?: string;
  /** Track the default ServiceAccount's entry (fan-out, onboarding). */
  serviceAccounts: boolean;
  /**
   * The ServiceAccounts that must all carry the entry (default: only `default`); latencies
   * are measured from `default` appearing.
   */
  serviceAccountNames?: readonly string[];
}

export class SyncTracker {
  readonly namespaces: ReadonlySet<string>;
  readonly secretAt = new Map<string, number>();
  readonly serviceAccountSeenAt = new Map<string, number>();
  readonly entryAt = new Map<string, number>();
  readonly syncedAt = new Map<string, number>();
  /** Resolves when every namespace is synced. */
  readonly done: Promise<void>;
  private readonly options: SyncTrackerOptions;
  private readonly accountNames: ReadonlySet<string>;
  /** Per namespace, the tracked ServiceAccounts seen carrying the entry. */
  private readonly carrying = new Map<string, Set<string>>();
  private resolveDone: () => void = () => {};

  constructor(namespaces: Iterable<string>, options: SyncTrackerOptions) {
    this.namespaces = new Set(namespaces);
    this.options = options;
    this.accountNames = new Set(options.serviceAccountNames ?? ['default']);
    this.done = new Promise((resolve) => {
      this.resolveDone = resolve;
    });
    if (this.namespaces.size === 0) this.resolveDone();
  }

  get synced(): number {
    return this.syncedAt.size;
  }

  /** The time the last namespace became synced. */
  get lastSyncedAt(): number {
    return Math.max(...this.syncedAt.values());
  }

  onSecret = (type: WatchEventType, secret: V1Secret, at: number): void => {
    const ns = secret.metadata?.namespace ?? '';
    const { password, secretName } = this.options;
    if (type === 'DELETED' || password === undefined || !this.namespaces.has(ns)) return;
    if (secret.metadata?.name !== secretName || this.secretAt.has(ns)) return;
    if (!holdsPassword(secret, password)) return;
    this.secretAt.set(ns, at);
    this.check(ns, at);
  };

  onServiceAccount = (type: WatchEventType, sa: V1ServiceAccount, at: number): void => {
    const ns = sa.metadata?.namespace ?? '';
    if (type === 'DELETED' || !this.options.serviceAccounts || !this.namespaces.has(ns)) return;
    const name = sa.metadata?.name ?? '';
    if (!this.accountNames.has(name)) return;
    if (name === 'default' && !this.serviceAccountSeenAt.has(ns)) {
      this.serviceAccountSeenAt.set(ns, at);
    }
    if (this.entryAt.has(ns) || !hasPullSecret(sa, this.options.secretName)) return;
    let carrying = this.carrying.get(ns);
    if (!carrying) {
      carrying = new Set();
      this.carrying.set(ns, carrying);
    }
    carrying.add(name);
    if (carrying.size < this.accountNames.size) return;
    this.entryAt.set(ns, at);
    this.check(ns, at);
  };

  /** Milliseconds from the ServiceAccount appearing to it carrying the entry, per namespace. */
  entryLatencies(): number[] {
    const latencies: number[] = [];
    for (const [ns, at] of this.entryAt) {
      const seen = this.serviceAccountSeenAt.get(ns);
      if (seen !== undefined) latencies.push(at - seen);
    }
    return latencies;
  }

  private check(ns: string, at: number): void {
    if (this.syncedAt.has(ns)) return;
    if (this.options.password !== undefined && !this.secretAt.has(ns)) return;
    if (this.options.serviceAccounts && !this.entryAt.has(ns)) return;
    this.syncedAt.set(ns, at);
    if (this.syncedAt.size === this.namespaces.size) this.resolveDone();
  }
}

export interface Percentiles {
  count: number;
  p50: number;
  p95: number;
  p99: number;
  max: number;
}

/** Nearest-rank percentiles. */
export function percentiles(values: readonly number[]): Percentiles {
  const sorted = [...values].sort((a, b) => a - b);
  const rank = (p: number): number =>
    sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))] ??
    Number.NaN;
  return {
    count: sorted.length,
    p50: rank(50),
    p95: rank(95),
    p99: rank(99),
    max: sorted[sorted.length - 1] ?? Number.NaN,
  };
}

/** Resolves with true when `promise` settles first, false after `ms`. */
export async function within(promise: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<false>((resolve) => {
    timer = setTimeout(() => resolve(false), ms);
  });
  try {
    return await Promise.race([promise.then(() => true), timeout]);
  } finally {
    clearTimeout(timer);
  }
}

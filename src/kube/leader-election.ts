// Leader election on a coordination.k8s.io Lease with client-go's timings and races: every
// write is conditional on the resourceVersion we read (a 409 means someone else won), expiry is
// judged by our own clock from when we last saw the record change (clocks across nodes may
// disagree), and a leader that cannot renew within the renew deadline gives up before its
// lease can expire and be taken by another replica. Durations are measured on a monotonic clock:
// a wall-clock step (NTP, a VM resumed) must not make a standby take a live lease, nor a leader
// believe it renewed in time. The wall clock only fills the Lease's timestamps.
import {
  ApiException,
  CoordinationV1Api,
  type KubeConfig,
  type V1Lease,
} from '@kubernetes/client-node';
import { type MonotonicClock, monotonicClock } from '../clock.ts';
import type { Logger } from '../observability/logger.ts';
import { requestOptions, toKubeApiError } from './api.ts';

export interface LeaderElectionOptions {
  namespace: string;
  name: string;
  identity: string;
  leaseDurationMs?: number;
  renewDeadlineMs?: number;
  retryPeriodMs?: number;
  log: Logger;
  /**
   * Called once when this replica becomes the leader, with `leadership`: aborted the moment
   * leadership ends (the renew deadline passed, or release()). Pass it to every write.
   */
  onStartedLeading: (leadership: AbortSignal) => void;
  /** Called once when leadership is lost (not on release). The process should exit. */
  onStoppedLeading: () => void;
  onLeaderStatus?: (leading: boolean) => void;
  /** The wall clock, for the Lease's acquireTime and renewTime only. */
  now?: () => Date;
  /** Measures every duration: expiry, the renew deadline, attempt budgets. */
  clock?: MonotonicClock;
}

/** Why the leadership signal aborted. */
export class LeadershipEnded extends Error {
  override name = 'LeadershipEnded';
}

/**
 * metav1.MicroTime wants six fractional digits; client-node would send Date.toISOString()'s
 * three, which the API server rejects. Its serializer passes strings through unchanged.
 */
function microTime(date: Date): Date {
  return date.toISOString().replace(/\.(\d{3})Z$/, '.$1000Z') as unknown as Date;
}

export class LeaderElector {
  private readonly api: CoordinationV1Api;
  private readonly o: Required<Omit<LeaderElectionOptions, 'onLeaderStatus' | 'now' | 'clock'>> &
    Pick<LeaderElectionOptions, 'onLeaderStatus'>;
  private readonly now: () => Date;
  private readonly clock: MonotonicClock;
  private observed?: { holder: string; renewTime: string; resourceVersion: string };
  /** Monotonic time at which this replica last saw the record change. */
  private observedAt = 0;
  private leading = false;
  private stopped = false;
  private timer?: NodeJS.Timeout;
  /** Monotonic time at which the last successful renew was sent. */
  private lastRenew = 0;
  /** Fires at the renew deadline unless a renew succeeds first. */
  private deadlineTimer?: NodeJS.Timeout;
  private leadershipController?: AbortController;
  private current?: V1Lease;

  constructor(kc: KubeConfig, options: LeaderElectionOptions) {
    this.api = kc.makeApiClient(CoordinationV1Api);
    this.o = {
      leaseDurationMs: 15_000,
      renewDeadlineMs: 10_000,
      retryPeriodMs: 2_000,
      ...options,
    };
    this.now = options.now ?? (() => new Date());
    this.clock = options.clock ?? monotonicClock;
    if (this.o.renewDeadlineMs >= this.o.leaseDurationMs) {
      throw new Error('the renew deadline must be shorter than the lease duration');
    }
  }

  get isLeader(): boolean {
    return this.leading;
  }

  /** While leading: aborted when leadership ends. Undefined before the first acquisition. */
  get leadership(): AbortSignal | undefined {
    return this.leadershipController?.signal;
  }

  start(): void {
    this.o.onLeaderStatus?.(false);
    void this.tick();
  }

  private schedule(): void {
    if (this.stopped) return;
    // A little jitter keeps standbys from hitting the API server in lockstep.
    const delay = this.o.retryPeriodMs * (this.leading ? 1 : 1 + Math.random() * 0.2);
    this.timer = setTimeout(() => void this.tick(), delay);
  }

  private async tick(): Promise<void> {
    if (this.stopped) return;
    let renewedAt: number | undefined;
    // Like client-go's renew context: a leader's attempt may last only until its renew
    // deadline, so it gives up in time even when the API server never answers; a standby's
    // attempt is bounded by the same length so a lost answer cannot stall it.
    const startedAt = this.clock.now();
    const budgetMs = this.leading
      ? Math.max(0, this.lastRenew + this.o.renewDeadlineMs - startedAt)
      : this.o.renewDeadlineMs;
    const attempt = new AbortController();
    const timer = setTimeout(
      () => attempt.abort(new Error(`no answer within ${budgetMs} ms`)),
      budgetMs,
    );
    try {
      renewedAt = await this.tryAcquireOrRenew(attempt.signal);
    } catch (error) {
      this.o.log.warn('leader election: lease request failed', {
        lease: `${this.o.namespace}/${this.o.name}`,
        error: attempt.signal.aborted
          ? `no answer within ${budgetMs} ms`
          : toKubeApiError(error, 'lease').message,
      });
    } finally {
      clearTimeout(timer);
    }
    if (this.stopped) return;
    if (renewedAt !== undefined) {
      this.lastRenew = renewedAt;
      this.armRenewDeadline();
      if (!this.leading) {
        this.leading = true;
        this.leadershipController = new AbortController();
        this.o.log.info('became leader', {
          lease: `${this.o.namespace}/${this.o.name}`,
          identity: this.o.identity,
        });
        this.o.onLeaderStatus?.(true);
        this.o.onStartedLeading(this.leadershipController.signal);
      }
    } else if (
      this.leading &&
      (attempt.signal.aborted || this.clock.now() - this.lastRenew >= this.o.renewDeadlineMs)
    ) {
      this.lose();
      return;
    }
    this.schedule();
  }

  /**
   * Leadership ends at the renew deadline itself, not at the next retry tick: a renew that
   * fails fast would otherwise leave up to a retry period of writes past it.
   */
  private armRenewDeadline(): void {
    if (this.deadlineTimer) clearTimeout(this.deadlineTimer);
    const remainingMs = this.lastRenew + this.o.renewDeadlineMs - this.clock.now();
    this.deadlineTimer = setTimeout(
      () => {
        if (this.leading && !this.stopped) this.lose();
      },
      Math.max(0, remainingMs),
    );
    this.deadlineTimer.unref();
  }

  private lose(): void {
    this.leading = false;
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    if (this.deadlineTimer) clearTimeout(this.deadlineTimer);
    this.leadershipController?.abort(
      new LeadershipEnded('lost leadership: the lease was not renewed within the renew deadline'),
    );
    this.o.log.error('lost leadership: could not renew the lease within the renew deadline', {
      lease: `${this.o.namespace}/${this.o.name}`,
    });
    this.o.onLeaderStatus?.(false);
    this.o.onStoppedLeading();
  }

  private holderOf(lease: V1Lease | undefined): string {
    return lease?.spec?.holderIdentity ?? '';
  }

  /**
   * One round of client-go's tryAcquireOrRenew. Resolves with the monotonic time at which the
   * successful write was sent (the server wrote it no earlier, so standbys count their lease
   * duration from later), or undefined when the Lease is someone else's.
   */
  private async tryAcquireOrRenew(signal: AbortSignal): Promise<number | undefined> {
    const options = requestOptions(signal);
    const now = this.now();
    const leaseSeconds = Math.ceil(this.o.leaseDurationMs / 1000);
    const held = this.current;
    if (this.leading && held) {
      // client-go's fast path: the leader renews the Lease it last wrote with one PUT, without
      // reading it first (half the requests of an idle replica); a 409 means it changed, so
      // read it as a standby would.
      const sentAt = this.clock.now();
      const renewed = await this.conditional(() =>
        this.api.replaceNamespacedLease(
          {
            name: this.o.name,
            namespace: this.o.namespace,
            body: {
              ...held,
              spec: {
                ...held.spec,
                holderIdentity: this.o.identity,
                leaseDurationSeconds: leaseSeconds,
                renewTime: microTime(now),
              },
            },
          },
          options,
        ),
      );
      if (renewed) {
        this.remember(renewed);
        return sentAt;
      }
    }
    let lease: V1Lease | undefined;
    try {
      lease = await this.api.readNamespacedLease(
        { name: this.o.name, namespace: this.o.namespace },
        options,
      );
    } catch (error) {
      if (!(error instanceof ApiException && error.code === 404)) throw error;
    }
    if (!lease) {
      const sentAt = this.clock.now();
      const created = await this.conditional(() =>
        this.api.createNamespacedLease(
          {
            namespace: this.o.namespace,
            body: {
              metadata: { name: this.o.name, namespace: this.o.namespace },
              spec: {
                holderIdentity: this.o.identity,
                leaseDurationSeconds: leaseSeconds,
                acquireTime: microTime(now),
                renewTime: microTime(now),
                leaseTransitions: 0,
              },
            },
          },
          options,
        ),
      );
      if (!created) return undefined;
      this.remember(created);
      return sentAt;
    }
    this.observe(lease);
    const holder = this.holderOf(lease);
    const expired =
      this.observedAt + (lease.spec?.leaseDurationSeconds ?? leaseSeconds) * 1000 <=
      this.clock.now();
    if (holder !== '' && holder !== this.o.identity && !expired) return undefined;
    const takingOver = holder !== this.o.identity;
    const sentAt = this.clock.now();
    const updated = await this.conditional(() =>
      this.api.replaceNamespacedLease(
        {
          name: this.o.name,
          namespace: this.o.namespace,
          body: {
            ...lease,
            spec: {
              ...lease.spec,
              holderIdentity: this.o.identity,
              leaseDurationSeconds: leaseSeconds,
              renewTime: microTime(now),
              acquireTime: takingOver ? microTime(now) : lease.spec?.acquireTime,
              leaseTransitions:
                (lease.spec?.leaseTransitions ?? 0) + (takingOver && holder !== '' ? 1 : 0),
            },
          },
        },
        options,
      ),
    );
    if (!updated) return undefined;
    this.remember(updated);
    return sentAt;
  }

  /** Runs a write; undefined when another writer got there first (409). */
  private async conditional(write: () => Promise<V1Lease>): Promise<V1Lease | undefined> {
    try {
      return await write();
    } catch (error) {
      if (error instanceof ApiException && error.code === 409) return undefined;
      throw error;
    }
  }

  private observe(lease: V1Lease): void {
    const record = {
      holder: this.holderOf(lease),
      renewTime: String(lease.spec?.renewTime ?? ''),
      resourceVersion: lease.metadata?.resourceVersion ?? '',
    };
    if (
      !this.observed ||
      this.observed.holder !== record.holder ||
      this.observed.renewTime !== record.renewTime
    ) {
      this.observed = record;
      this.observedAt = this.clock.now();
    }
  }

  private remember(lease: V1Lease): void {
    this.current = lease;
    this.observe(lease);
  }

  /** Stops electing; a leader hands the lease back so a standby takes over at once. */
  async release(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    if (this.deadlineTimer) clearTimeout(this.deadlineTimer);
    const wasLeading = this.leading;
    this.leading = false;
    this.leadershipController?.abort(new LeadershipEnded('released the lease'));
    if (!wasLeading || !this.current) return;
    this.o.onLeaderStatus?.(false);
    // Shutdown must not hang on an unreachable API server: the lease then expires on its own.
    const options = requestOptions(AbortSignal.timeout(this.o.renewDeadlineMs / 2));
    try {
      const lease = await this.api.readNamespacedLease(
        { name: this.o.name, namespace: this.o.namespace },
        options,
      );
      if (this.holderOf(lease) !== this.o.identity) return;
      await this.api.replaceNamespacedLease(
        {
          name: this.o.name,
          namespace: this.o.namespace,
          body: {
            ...lease,
            spec: {
              ...lease.spec,
              holderIdentity: '',
              leaseDurationSeconds: 1,
              renewTime: microTime(this.now()),
            },
          },
        },
        options,
      );
      this.o.log.info('released the lease', { lease: `${this.o.namespace}/${this.o.name}` });
    } catch (error) {
      this.o.log.warn('could not release the lease', {
        error: toKubeApiError(error, 'lease').message,
      });
    }
  }
}

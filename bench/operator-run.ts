// The operator under test: the built dist/main.js in its own process (test/support/operator.ts),
// as the image runs it, with its CPU and memory read from /proc and its /metrics scraped.

import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { allocatorEnv } from '../test/support/deployment.ts';
import { OperatorProcess } from '../test/support/operator.ts';
import { OPERATOR_NAMESPACE } from './cluster.ts';
import {
  operatorRequests,
  operatorWrites,
  parseMetrics,
  type RequestCounts,
  sumOf,
} from './metrics.ts';
import { type ProcessSample, resetPeakRss, sampleProcess } from './process-stats.ts';

export interface BenchOperatorOptions {
  kubeconfigPath: string;
  /** Extra operator flags (--operator-args). */
  args: readonly string[];
  /** NODE_OPTIONS for the operator process (--operator-node-args), e.g. --cpu-prof. */
  nodeOptions?: string;
  /** Flags on node's command line, before the script (--operator-node-flags). */
  nodeFlags?: readonly string[];
}

export interface IdleOptions {
  /** Nothing reconciled and no API request for this long (default 2 s). */
  quietMs?: number;
  /** At least this many reconciles must have completed (default 0). */
  minReconciles?: number;
  timeoutMs?: number;
}

export interface OperatorCounters {
  writes: RequestCounts;
  requests: RequestCounts;
  /** controller_runtime_reconcile_total and the summed reconcile time. */
  reconciles: number;
  reconcileSeconds: number;
  /** nodejs_gc_duration_seconds (prom-client): collections and pause seconds by kind. */
  gc: GcCounts;
}

/** Garbage collections: major (mark-compact) and minor (scavenge) counts, pauses in seconds. */
export interface GcCounts {
  major: number;
  minor: number;
  pauseSeconds: number;
}

const LAG_MAX = 'nodejs_eventloop_lag_max_seconds';

interface Activity {
  depth: number;
  reconciles: number;
  requests: number;
}

export class BenchOperator {
  private readonly child: OperatorProcess;
  readonly pid: number;
  private last?: ProcessSample;
  private lagMaxSeconds = 0;
  private slowScrapes: string[] = [];

  /** performance.now() just before the process was spawned. */
  readonly spawnedAt: number;
  /** Date.now() at the same moment (log lines carry wall-clock timestamps). */
  readonly spawnedWallMs: number;

  private constructor(child: OperatorProcess, pid: number, spawnedAt: number) {
    this.child = child;
    this.pid = pid;
    this.spawnedAt = spawnedAt;
    this.spawnedWallMs = Date.now() - (performance.now() - spawnedAt);
  }

  /**
   * Seconds from spawn to the first log line whose message is `message` (and, when given,
   * whose `field` is `value`), read from the line's timestamp; undefined if none.
   */
  logSecondsAfterSpawn(message: string, field?: string, value?: string): number | undefined {
    for (const line of this.child.logs) {
      if (!line.includes(message)) continue;
      try {
        const entry = JSON.parse(line.slice(line.indexOf('{'))) as Record<string, unknown>;
        if (entry.message !== message) continue;
        if (field !== undefined && entry[field] !== value) continue;
        const at = Date.parse(String(entry.timestamp));
        if (Number.isFinite(at)) return (at - this.spawnedWallMs) / 1000;
      } catch {
        // not a JSON line
      }
    }
    return undefined;
  }

  static async start(options: BenchOperatorOptions): Promise<BenchOperator> {
    // The Deployment's allocator settings; NODE_OPTIONS comes from the options.
    const env: NodeJS.ProcessEnv = { ...allocatorEnv() };
    if (options.nodeOptions !== undefined) env.NODE_OPTIONS = options.nodeOptions;
    const child = new OperatorProcess({
      kubeconfigPath: options.kubeconfigPath,
      namespace: OPERATOR_NAMESPACE,
      fromDist: true,
      // BENCH_OPERATOR_LOG_LEVEL=debug: every reconcile's key and duration (with BENCH_OPERATOR_LOGS).
      logLevel: process.env.BENCH_OPERATOR_LOG_LEVEL === 'debug' ? 'debug' : 'info',
      args: [...options.args],
      nodeFlags: options.nodeFlags,
      env,
    });
    const spawnedAt = performance.now();
    try {
      await child.start();
    } catch (error) {
      await child.kill();
      throw error;
    }
    const pid = child.pid;
    if (pid === undefined) throw new Error('the operator process has no pid');
    return new BenchOperator(child, pid, spawnedAt);
  }

  /** CPU seconds and memory now (the last sample once the process has exited). */
  sample(): ProcessSample {
    try {
      this.last = sampleProcess(this.pid);
    } catch (error) {
      if (!this.last) throw error;
    }
    return this.last;
  }

  /** Starts a new peak-RSS window; false when the kernel refused (peak is then lifetime). */
  resetPeak(): boolean {
    return resetPeakRss(this.pid);
  }

  /**
   * One /metrics scrape. A scrape without an answer within 5 s (OperatorProcess.httpGet) is
   * tried again, twice at most, and noted for the window (`scrapeNotes`): a lost scrape costs
   * the window a note, not the scenario. Each answer's event-loop lag maximum (prom-client's
   * `nodejs_eventloop_lag_max_seconds`, since the scrape before) is kept for the window.
   */
  async metricsText(): Promise<string> {
    for (let attempt = 1; ; attempt++) {
      const started = performance.now();
      try {
        const text = await this.child.metrics();
        const lag = sumOf(parseMetrics(text, new Set([LAG_MAX])), LAG_MAX);
        if (lag > this.lagMaxSeconds) this.lagMaxSeconds = lag;
        return text;
      } catch (error) {
        this.slowScrapes.push(
          `${(error as Error).message} after ${Math.round(performance.now() - started)} ms (attempt ${attempt})`,
        );
        if (attempt === 3) throw error;
      }
    }
  }

  /** Starts counting the event-loop lag maximum and the failed scrapes anew. */
  startScrapeWindow(): void {
    this.lagMaxSeconds = 0;
    this.slowScrapes = [];
  }

  /** What the scrapes since startScrapeWindow saw: notes for the window's result. */
  scrapeNotes(): string[] {
    const notes = [
      `the operator's event-loop lag, the most any scrape reported: ${Math.round(this.lagMaxSeconds * 1000)} ms`,
    ];
    if (this.slowScrapes.length > 0) {
      notes.push(
        `${this.slowScrapes.length} /metrics scrape(s) failed and were retried: ${this.slowScrapes.slice(0, 5).join('; ')}`,
      );
    }
    return notes;
  }

  /** regcred_api_writes_total and regcred_api_requests_total (reads included), one scrape. */
  async counters(): Promise<OperatorCounters> {
    const text = await this.metricsText();
    const samples = parseMetrics(
      text,
      new Set([
        'controller_runtime_reconcile_total',
        'controller_runtime_reconcile_time_seconds_sum',
        'nodejs_gc_duration_seconds_count',
        'nodejs_gc_duration_seconds_sum',
      ]),
    );
    return {
      writes: operatorWrites(text),
      requests: operatorRequests(text),
      reconciles: sumOf(samples, 'controller_runtime_reconcile_total'),
      reconcileSeconds: sumOf(samples, 'controller_runtime_reconcile_time_seconds_sum'),
      gc: {
        major: sumOf(samples, 'nodejs_gc_duration_seconds_count', { kind: 'major' }),
        minor: sumOf(samples, 'nodejs_gc_duration_seconds_count', { kind: 'minor' }),
        pauseSeconds: sumOf(samples, 'nodejs_gc_duration_seconds_sum'),
      },
    };
  }

  private async activity(): Promise<Activity> {
    const samples = parseMetrics(
      await this.metricsText(),
      new Set([
        'workqueue_depth',
        'controller_runtime_reconcile_total',
        'regcred_api_requests_total',
      ]),
    );
    return {
      depth: sumOf(samples, 'workqueue_depth'),
      reconciles: sumOf(samples, 'controller_runtime_reconcile_total'),
      requests: sumOf(samples, 'regcred_api_requests_total'),
    };
  }

  /**
   * Waits until the work queue is empty and neither the reconcile count nor the API request
   * count has moved for `quietMs`. Returns false on timeout.
   */
  async waitIdle({
    quietMs = 2000,
    minReconciles = 0,
    timeoutMs = 120_000,
  }: IdleOptions = {}): Promise<boolean> {
    const deadline = performance.now() + timeoutMs;
    let previous: Activity | undefined;
    let quietSince = performance.now();
    while (performance.now() < deadline) {
      const now = await this.activity();
      const moved =
        previous === undefined ||
        now.reconciles !== previous.reconciles ||
        now.requests !== previous.requests;
      if (moved) quietSince = performance.now();
      previous = now;
      if (
        now.depth === 0 &&
        now.reconciles >= minReconciles &&
        performance.now() - quietSince >= quietMs
      ) {
        return true;
      }
      await new Promise((r) => setTimeout(r, 200));
    }
    return false;
  }

  /** SIGTERM and wait; returns the last sample taken before the signal. */
  async stop(): Promise<ProcessSample> {
    const final = this.sample();
    await this.child.stop();
    // BENCH_OPERATOR_LOGS=<dir>: each operator process's log, for a post-mortem of a run.
    const dir = process.env.BENCH_OPERATOR_LOGS;
    if (dir) {
      mkdirSync(dir, { recursive: true });
      writeFileSync(join(dir, `operator-${this.pid}.log`), `${this.child.logs.join('\n')}\n`);
    }
    return final;
  }

  /** Log lines so far (to count what happened in a window: logsSince(before)). */
  get logCount(): number {
    return this.child.logs.length;
  }

  logsSince(index: number): string[] {
    return this.child.logs.slice(index);
  }

  lastLogs(count = 20): string[] {
    return this.child.logs.slice(-count);
  }
}

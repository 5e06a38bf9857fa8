// What every scenario needs: logging, the operator's launch options, the floor's concurrency,
// and a few shared helpers.
import { randomBytes } from 'node:crypto';
import type { RegistryCredential } from '../src/api/types.ts';
import type { BenchCluster, Log } from './cluster.ts';
import { BenchOperator } from './operator-run.ts';
import { MB, type ProcessSample } from './process-stats.ts';
import type { ScenarioName, ScenarioResult } from './report.ts';

export interface BenchContext {
  log: Log;
  /** Extra operator flags (--operator-args). */
  operatorArgs: readonly string[];
  /** NODE_OPTIONS for the operator (--operator-node-args). */
  operatorNodeOptions?: string;
  /** Flags on the operator's node command line (--operator-node-flags). */
  operatorNodeFlags: readonly string[];
  /** The operator's --fanout-concurrency, which the floor baseline uses too. */
  concurrency: number;
  /**
   * --floor-watches: the fan-out and rotation floors also watch what a cache-based client must
   * (the Secrets they write, every ServiceAccount), into a Map, as the operator's informers do.
   */
  floorWatches?: boolean;
}

export const SOURCE_SECRET = 'bench-basic';
export const SECRET_NAME = 'bench-pull';

export function startOperator(ctx: BenchContext, cluster: BenchCluster): Promise<BenchOperator> {
  return BenchOperator.start({
    kubeconfigPath: cluster.operatorKubeconfigPath,
    args: ctx.operatorArgs,
    nodeOptions: ctx.operatorNodeOptions,
    nodeFlags: ctx.operatorNodeFlags,
  });
}

export function shortId(): string {
  return randomBytes(3).toString('hex');
}

export function newPassword(): string {
  return `pw-${randomBytes(12).toString('hex')}`;
}

/** `<prefix>-00001`, … : sortable, DNS-1123 labels. */
export function namespaceNames(prefix: string, count: number): string[] {
  const width = String(count).length;
  return Array.from({ length: count }, (_, i) => `${prefix}-${String(i).padStart(width, '0')}`);
}

export function seconds(ms: number): number {
  return ms / 1000;
}

export function megabytes(bytes: number): number {
  return bytes / MB;
}

export function cpuBetween(before: ProcessSample, after: ProcessSample): number {
  return after.cpuSeconds - before.cpuSeconds;
}

/** Ready=True for the current generation with every one of `n` targets synced. */
export function readyWithAll(cred: RegistryCredential, n: number): boolean {
  const ready = cred.status?.conditions?.find((c) => c.type === 'Ready');
  return (
    ready?.status === 'True' &&
    ready.observedGeneration === cred.metadata.generation &&
    cred.status?.targetNamespaces === n &&
    cred.status?.syncedNamespaces === n
  );
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** How long to wait for N namespaces to converge before calling it a failure. */
export function convergenceTimeoutMs(n: number): number {
  return 60_000 + 100 * n;
}

/**
 * Runs the scenarios of one group in order; when one throws, it and every later planned
 * scenario are reported as errors (they depend on the state it should have left).
 */
export async function runGroup(
  ctx: BenchContext,
  planned: ReadonlyArray<{ scenario: ScenarioName; n: number }>,
  body: (results: ScenarioResult[]) => Promise<void>,
): Promise<ScenarioResult[]> {
  const results: ScenarioResult[] = [];
  try {
    await body(results);
  } catch (error) {
    const message = error instanceof Error ? (error.stack ?? error.message) : String(error);
    ctx.log(`[bench] error: ${message}`);
    for (const p of planned) {
      if (!results.some((r) => r.scenario === p.scenario && r.n === p.n)) {
        results.push({ ...p, notes: [], error: message.split('\n')[0] ?? message });
      }
    }
  }
  return results;
}

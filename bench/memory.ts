// Scenario 5: operator peak RSS with N targeted namespaces, without and then with many
// unrelated Secrets in other namespaces. Each measured operator is a fresh process that
// starts (lists everything), reconciles (nothing to write), and carries one rotation (N
// Secret writes), so the two runs do the same work and differ only in what the cluster holds.
import { BenchCluster, RUN_LABEL } from './cluster.ts';
import {
  type BenchContext,
  megabytes,
  namespaceNames,
  newPassword,
  runGroup,
  SOURCE_SECRET,
  seconds,
  shortId,
  sleep,
  startOperator,
} from './context.ts';
import { type FanoutRun, measureFanout, measureRotation } from './fanout.ts';
import type { ScenarioResult } from './report.ts';

export interface MemoryPlan {
  n: number;
  unrelatedSecrets: number;
  /** Namespaces the unrelated Secrets are spread over. */
  unrelatedNamespaces: number;
  unrelatedBytes: number;
  /** Fresh processes measured per phase; the median peak counts (GC timing makes peaks noisy). */
  repeats: number;
}

interface Measured {
  peak: number;
  rss: number;
  cpu: number;
}

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1
    ? (sorted[mid] ?? Number.NaN)
    : ((sorted[mid - 1] ?? Number.NaN) + (sorted[mid] ?? Number.NaN)) / 2;
}

const mb = (values: readonly number[]): string =>
  values.map((v) => megabytes(v).toFixed(1)).join(' ');

export async function runMemory(ctx: BenchContext, plan: MemoryPlan): Promise<ScenarioResult[]> {
  const { n } = plan;
  return runGroup(ctx, [{ scenario: 'memory', n }], async (results) => {
    const log = ctx.log;
    const cluster = await BenchCluster.start(log);
    try {
      const runId = `mem${n}-${shortId()}`;
      const run: FanoutRun = {
        runId,
        namespaces: namespaceNames(runId, n),
        credential: `bench-${runId}`,
      };
      log(`[bench] memory N=${n}: creating ${n} namespaces`);
      await cluster.createNamespacesAndWait(run.namespaces, { [RUN_LABEL]: runId });
      let password = newPassword();
      await cluster.createSourceSecret(SOURCE_SECRET, password);

      const fanoutOp = await startOperator(ctx, cluster);
      let fanoutPeak: number;
      try {
        await measureFanout(cluster, fanoutOp, run, password);
      } finally {
        fanoutPeak = (await fanoutOp.stop()).peakRssBytes;
      }

      /** A fresh operator: start, settle, one rotation, settle; its lifetime peak and RSS. */
      const measuredOnce = async (): Promise<Measured> => {
        const op = await startOperator(ctx, cluster);
        try {
          await op.waitIdle({ minReconciles: 1 });
          // The rotation's window resets VmHWM: the start's peak is read before it.
          const startPeak = op.sample().peakRssBytes;
          password = newPassword();
          await measureRotation(cluster, op, run, password);
          await sleep(2000);
          const sample = op.sample();
          return {
            peak: Math.max(startPeak, sample.peakRssBytes),
            rss: sample.rssBytes,
            cpu: sample.cpuSeconds,
          };
        } finally {
          await op.stop();
        }
      };

      const measured = async (): Promise<Measured[]> => {
        const runs: Measured[] = [];
        for (let i = 0; i < plan.repeats; i++) runs.push(await measuredOnce());
        return runs;
      };

      log(`[bench] memory N=${n}: ${plan.repeats} operator runs without unrelated Secrets`);
      const without = await measured();

      log(
        `[bench] memory N=${n}: creating ${plan.unrelatedSecrets} unrelated Secrets of ${plan.unrelatedBytes} bytes in ${plan.unrelatedNamespaces} namespaces`,
      );
      const unrelated = namespaceNames(`unrelated-${shortId()}`, plan.unrelatedNamespaces);
      const setupStarted = performance.now();
      await cluster.createNamespacesAndWait(unrelated, {});
      await cluster.createUnrelatedSecrets(unrelated, plan.unrelatedSecrets, plan.unrelatedBytes);
      const setupMs = performance.now() - setupStarted;

      log(`[bench] memory N=${n}: ${plan.repeats} operator runs with unrelated Secrets`);
      const withUnrelated = await measured();
      const withoutPeak = median(without.map((m) => m.peak));
      const withPeak = median(withUnrelated.map((m) => m.peak));

      results.push({
        scenario: 'memory',
        n,
        operatorPeakRssMB: megabytes(Math.max(fanoutPeak, withoutPeak, withPeak)),
        operatorCpuSeconds: median(withUnrelated.map((m) => m.cpu)),
        details: {
          peakRssFanoutMB: megabytes(fanoutPeak),
          peakRssWithoutMB: megabytes(withoutPeak),
          peakRssWithUnrelatedMB: megabytes(withPeak),
          peakRssWithoutRunsMB: mb(without.map((m) => m.peak)),
          peakRssWithUnrelatedRunsMB: mb(withUnrelated.map((m) => m.peak)),
          rssWithoutRunsMB: mb(without.map((m) => m.rss)),
          rssWithUnrelatedRunsMB: mb(withUnrelated.map((m) => m.rss)),
          unrelatedSecrets: plan.unrelatedSecrets,
          unrelatedNamespaces: plan.unrelatedNamespaces,
          unrelatedSetupSeconds: seconds(setupMs),
        },
        notes: [
          `peak RSS: fan-out process ${megabytes(fanoutPeak).toFixed(1)} MB; fresh process + rotation, median of ${plan.repeats}: ${megabytes(withoutPeak).toFixed(1)} MB without (${mb(without.map((m) => m.peak))}), ${megabytes(withPeak).toFixed(1)} MB with ${plan.unrelatedSecrets} unrelated Secrets (${mb(withUnrelated.map((m) => m.peak))})`,
        ],
      });
    } finally {
      await cluster.stop();
    }
  });
}

// Scenario 2: the RegistryCredential exists; namespaces arrive in a burst. Per namespace, the
// latency from its default ServiceAccount appearing to that ServiceAccount carrying the entry,
// as a watch sees it. The floor is a reactor on the same watch events doing only the writes.
import { BenchCluster, RUN_LABEL } from './cluster.ts';
import {
  type BenchContext,
  convergenceTimeoutMs,
  namespaceNames,
  newPassword,
  runGroup,
  SECRET_NAME,
  SOURCE_SECRET,
  seconds,
  shortId,
  startOperator,
} from './context.ts';
import { closeWindow, openWindow, type Window } from './fanout.ts';
import { FLOOR_SECRET, OnboardingFloor } from './floor.ts';
import { countsDelta, type RequestCounts, withoutHarness } from './metrics.ts';
import type { ScenarioResult } from './report.ts';
import { type Percentiles, percentiles, SyncTracker, within } from './sync-tracker.ts';

/**
 * What a burst costs besides the writes under test: the harness creates the namespaces, and
 * kube-controller-manager adds a default ServiceAccount and a kube-root-ca.crt ConfigMap to
 * each. (It also GETs Secrets in new namespaces: that stays in the counts, and is not the
 * operator's; see operatorRequests for the operator's own.)
 */
function burstHarness(count: number): RequestCounts {
  return {
    'POST namespaces': count,
    'POST serviceaccounts': count,
    'POST configmaps': count,
  };
}

interface Burst {
  wallMs: number;
  createMs: number;
  latency: Percentiles;
}

/** Creates the namespaces as fast as the harness can and waits for every entry. */
async function measureBurst(
  cluster: BenchCluster,
  runId: string,
  namespaces: readonly string[],
  secretName: string,
  floor?: OnboardingFloor,
): Promise<Burst> {
  const tracker = new SyncTracker(namespaces, { secretName, serviceAccounts: true });
  const watches = await Promise.all([
    cluster
      .watchServiceAccounts({ fieldSelector: 'metadata.name=default' }, (type, sa, at) => {
        tracker.onServiceAccount(type, sa, at);
        if (floor && type === 'ADDED') floor.onServiceAccountAdded(sa);
      })
      .start(),
    ...(floor
      ? [
          cluster
            .watchNamespaces({ labelSelector: `${RUN_LABEL}=${runId}` }, (type, ns) => {
              if (type === 'ADDED') floor.onNamespaceAdded(ns.metadata?.name ?? '');
            })
            .start(),
        ]
      : []),
  ]);
  try {
    const started = performance.now();
    const createMs = await cluster.createNamespaces(namespaces, { [RUN_LABEL]: runId });
    const timeoutMs = convergenceTimeoutMs(namespaces.length);
    if (!(await within(tracker.done, timeoutMs))) {
      throw new Error(
        `onboarding of ${namespaces.length}: ${tracker.synced} ServiceAccounts carry ${secretName} after ${timeoutMs / 1000} s${floor?.errors.length ? `; floor errors: ${floor.errors.slice(0, 3).join('; ')}` : ''}`,
      );
    }
    return {
      wallMs: tracker.lastSyncedAt - started,
      createMs,
      latency: percentiles(tracker.entryLatencies()),
    };
  } finally {
    for (const w of watches) w.stop();
  }
}

/** One floor burst in its own namespaces: the reactor does the writes. */
async function floorBurst(
  ctx: BenchContext,
  cluster: BenchCluster,
  count: number,
  password: string,
): Promise<Burst & { requests: RequestCounts }> {
  ctx.log(`[bench] onboarding ${count}: floor baseline (concurrency ${ctx.concurrency})`);
  const runId = `onbf-${shortId()}`;
  const namespaces = namespaceNames(runId, count);
  const reactor = new OnboardingFloor(cluster, namespaces, password, ctx.concurrency);
  await cluster.waitQuiet();
  const before = await cluster.apiRequests();
  const burst = await measureBurst(cluster, runId, namespaces, FLOOR_SECRET, reactor);
  await reactor.idle();
  await cluster.waitQuiet(1000);
  const requests = withoutHarness(countsDelta(await cluster.apiRequests(), before), {
    ...burstHarness(count),
    'LIST serviceaccounts': 1,
    'LIST namespaces': 1,
  });
  return { ...burst, requests };
}

/**
 * The floor bursts twice, before the operator starts and after it stops (each in its own
 * namespaces); the run with the lower p99 is the floor.
 */
export async function runOnboarding(ctx: BenchContext, count: number): Promise<ScenarioResult[]> {
  return runGroup(ctx, [{ scenario: 'onboarding', n: count }], async (results) => {
    const log = ctx.log;
    const cluster = await BenchCluster.start(log);
    try {
      const password = newPassword();
      await cluster.createSourceSecret(SOURCE_SECRET, password);
      const floors = [await floorBurst(ctx, cluster, count, password)];

      const op = await startOperator(ctx, cluster);
      let burst: Burst;
      let window: Window;
      try {
        const runId = `onb-${shortId()}`;
        const credential = `bench-${runId}`;
        await cluster.createCredential(credential, runId, SECRET_NAME, SOURCE_SECRET);
        await op.waitIdle({ minReconciles: 1 });
        log(`[bench] onboarding ${count}: operator`);
        const start = await openWindow(cluster, op);
        burst = await measureBurst(cluster, runId, namespaceNames(runId, count), SECRET_NAME);
        window = await closeWindow(cluster, op, start, burst.wallMs, [], {
          ...burstHarness(count),
          'LIST serviceaccounts': 1,
        });
      } finally {
        await op.stop();
      }
      floors.push(await floorBurst(ctx, cluster, count, password));
      const floor = floors.reduce((best, f) => (f.latency.p99 < best.latency.p99 ? f : best));
      results.push({
        scenario: 'onboarding',
        n: count,
        wallSeconds: seconds(burst.wallMs),
        floorSeconds: seconds(floor.wallMs),
        ratio: burst.wallMs / floor.wallMs,
        latencyMs: burst.latency,
        floorLatencyMs: floor.latency,
        operatorCpuSeconds: window.cpuSeconds,
        clusterCpuSeconds: window.clusterCpuSeconds,
        operatorPeakRssMB: window.peakRssMB,
        apiRequests: window.requests,
        floorApiRequests: floor.requests,
        operatorWrites: window.operatorWrites,
        operatorRequests: window.operatorRequests,
        reconciles: window.reconciles,
        reconcileSeconds: window.reconcileSeconds,
        details: {
          namespaceCreateSeconds: seconds(burst.createMs),
          operatorCpuToIdleSeconds: window.cpuToIdleSeconds.toFixed(2),
          floorNamespaceCreateSeconds: seconds(floor.createMs),
          floorRunsP99Ms: floors.map((f) => f.latency.p99.toFixed(0)).join(' '),
          floorRunsSeconds: floors.map((f) => seconds(f.wallMs).toFixed(3)).join(' '),
        },
        notes: window.notes,
      });
    } finally {
      await cluster.stop();
    }
  });
}

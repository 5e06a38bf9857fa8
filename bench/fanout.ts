// Scenarios 1, 3 and 4 on one control plane: N namespaces exist; the floor baseline writes its
// Secrets and entries, then rotates them; the operator fans a new RegistryCredential out,
// rotates the source password, idles, and is restarted (a relist); the floor runs once more.
import { MANAGED_BY_LABEL, MANAGED_BY_VALUE } from '../src/api/types.ts';
import { BenchCluster, RUN_LABEL } from './cluster.ts';
import {
  type BenchContext,
  convergenceTimeoutMs,
  cpuBetween,
  megabytes,
  namespaceNames,
  newPassword,
  readyWithAll,
  runGroup,
  SECRET_NAME,
  SOURCE_SECRET,
  seconds,
  shortId,
  sleep,
  startOperator,
} from './context.ts';
import {
  FLOOR_LABEL_SELECTOR,
  FLOOR_SECRET,
  type FloorResult,
  fastest,
  floorFanout,
  floorRotation,
} from './floor.ts';
import { countsDelta, type RequestCounts, withoutHarness } from './metrics.ts';
import type { BenchOperator, GcCounts, OperatorCounters } from './operator-run.ts';
import type { ScenarioName, ScenarioResult } from './report.ts';
import { SyncTracker, within } from './sync-tracker.ts';

export interface Window {
  wallMs: number;
  /** apiserver_request_total delta without the harness's own requests. */
  requests: RequestCounts;
  harnessRequests: RequestCounts;
  operatorWrites: RequestCounts;
  /** regcred_api_requests_total delta: the operator's own requests, reads included. */
  operatorRequests: RequestCounts;
  reconciles: number;
  reconcileSeconds: number;
  /** Operator CPU seconds from the start to the end of the wall time (as the floor's). */
  cpuSeconds: number;
  /** ... and until it was idle again (status, Events, its own watch events). */
  cpuToIdleSeconds: number;
  /** cpuSeconds spent on the JavaScript thread (the rest: GC and compiler threads, libuv). */
  mainThreadCpuSeconds: number;
  /** Garbage collections from the start until idle (major ones mark the whole heap). */
  gc: GcCounts;
  /**
   * etcd + kube-apiserver + kube-controller-manager CPU seconds from the start to the end of
   * the wall time, as the floor's are counted (not to idle: that window would add seconds of
   * the control plane's background work).
   */
  clusterCpuSeconds: number;
  /** The same per component, for the progress log. */
  clusterCpuDetail: string;
  peakRssMB: number;
  notes: string[];
}

export interface WindowStart {
  requests: RequestCounts;
  counters: OperatorCounters;
  cpuSeconds: number;
  mainThreadCpuSeconds: number;
  clusterCpu: Record<string, number>;
  peakReset: boolean;
}

/** Waits for the cluster and the operator to be quiet, then snapshots the counters. */
export async function openWindow(cluster: BenchCluster, op: BenchOperator): Promise<WindowStart> {
  await op.waitIdle();
  await cluster.waitQuiet();
  const [requests, counters] = await Promise.all([cluster.apiRequests(), op.counters()]);
  op.startScrapeWindow();
  const peakReset = op.resetPeak();
  const opSample = op.sample();
  return {
    requests,
    counters,
    cpuSeconds: opSample.cpuSeconds,
    mainThreadCpuSeconds: opSample.mainThreadCpuSeconds,
    clusterCpu: cluster.cpuByComponent(),
    peakReset,
  };
}

export async function closeWindow(
  cluster: BenchCluster,
  op: BenchOperator,
  start: WindowStart,
  wallMs: number,
  notes: string[],
  harness: RequestCounts = {},
): Promise<Window> {
  // Called when the wall time ends: CPU is counted to here, as the floor's is.
  const atEnd = op.sample();
  const clusterCpu = cluster.cpuSince(start.clusterCpu);
  if (!(await op.waitIdle())) notes.push('the operator did not go idle within 120 s');
  const sample = op.sample();
  // kube-controller-manager's own reactions (e.g. to new namespaces) land before the count.
  await cluster.waitQuiet(1000);
  const [requests, counters] = await Promise.all([cluster.apiRequests(), op.counters()]);
  if (!start.peakReset) notes.push('peak RSS is the process lifetime peak (clear_refs refused)');
  notes.push(...op.scrapeNotes());
  return {
    wallMs,
    requests: withoutHarness(countsDelta(requests, start.requests), harness),
    harnessRequests: harness,
    operatorWrites: countsDelta(counters.writes, start.counters.writes),
    operatorRequests: countsDelta(counters.requests, start.counters.requests),
    reconciles: counters.reconciles - start.counters.reconciles,
    reconcileSeconds: counters.reconcileSeconds - start.counters.reconcileSeconds,
    cpuSeconds: atEnd.cpuSeconds - start.cpuSeconds,
    cpuToIdleSeconds: sample.cpuSeconds - start.cpuSeconds,
    mainThreadCpuSeconds: atEnd.mainThreadCpuSeconds - start.mainThreadCpuSeconds,
    gc: {
      major: counters.gc.major - start.counters.gc.major,
      minor: counters.gc.minor - start.counters.gc.minor,
      pauseSeconds: counters.gc.pauseSeconds - start.counters.gc.pauseSeconds,
    },
    clusterCpuSeconds: clusterCpu.seconds,
    clusterCpuDetail: clusterCpu.detail,
    peakRssMB: megabytes(sample.peakRssBytes),
    notes,
  };
}

export interface FanoutRun {
  runId: string;
  namespaces: readonly string[];
  credential: string;
  /** The managed Secret's name (default SECRET_NAME). */
  secretName?: string;
  /** The source Secret in the operator's namespace (default SOURCE_SECRET). */
  source?: string;
}

/**
 * Creates the RegistryCredential and waits until every namespace holds the Secret and its
 * default ServiceAccount the entry, as a watch sees it. Wall time is to the last namespace
 * synced; readyMs is to the status saying Ready with all N synced.
 */
export async function measureFanout(
  cluster: BenchCluster,
  op: BenchOperator,
  run: FanoutRun,
  password: string,
): Promise<Window & { readyMs?: number }> {
  const n = run.namespaces.length;
  const secretName = run.secretName ?? SECRET_NAME;
  const tracker = new SyncTracker(run.namespaces, {
    secretName,
    password,
    serviceAccounts: true,
  });
  let readyAt: number | undefined;
  let resolveReady: () => void = () => {};
  const ready = new Promise<void>((resolve) => {
    resolveReady = resolve;
  });
  const watches = await Promise.all([
    cluster
      .watchSecrets({ labelSelector: `${MANAGED_BY_LABEL}=${MANAGED_BY_VALUE}` }, tracker.onSecret)
      .start(),
    cluster
      .watchServiceAccounts({ fieldSelector: 'metadata.name=default' }, tracker.onServiceAccount)
      .start(),
    cluster
      .watchCredential(run.credential, (type, cred, at) => {
        if (type !== 'DELETED' && readyAt === undefined && readyWithAll(cred, n)) {
          readyAt = at;
          resolveReady();
        }
      })
      .start(),
  ]);
  const notes: string[] = [];
  try {
    const start = await openWindow(cluster, op);
    const started = performance.now();
    await cluster.createCredential(
      run.credential,
      run.runId,
      secretName,
      run.source ?? SOURCE_SECRET,
    );
    if (!(await within(Promise.all([tracker.done, ready]), convergenceTimeoutMs(n)))) {
      throw new Error(
        `fan-out of ${n}: ${tracker.synced} namespaces synced, Ready ${readyAt !== undefined} after ${convergenceTimeoutMs(n) / 1000} s; operator logs:\n${op.lastLogs().join('\n')}`,
      );
    }
    const wallMs = tracker.lastSyncedAt - started;
    const window = await closeWindow(cluster, op, start, wallMs, notes, {
      'POST registrycredentials': 1,
    });
    return { ...window, readyMs: readyAt === undefined ? undefined : readyAt - started };
  } finally {
    for (const w of watches) w.stop();
  }
}

/** Changes the source password and waits until all N Secrets hold it (watched by label). */
export async function measureRotation(
  cluster: BenchCluster,
  op: BenchOperator,
  run: FanoutRun,
  password: string,
): Promise<Window> {
  const n = run.namespaces.length;
  const tracker = new SyncTracker(run.namespaces, {
    secretName: run.secretName ?? SECRET_NAME,
    password,
    serviceAccounts: false,
  });
  const watch = await cluster
    .watchSecrets({ labelSelector: `${MANAGED_BY_LABEL}=${MANAGED_BY_VALUE}` }, tracker.onSecret)
    .start();
  try {
    const start = await openWindow(cluster, op);
    const started = performance.now();
    await cluster.setSourcePassword(run.source ?? SOURCE_SECRET, password);
    if (!(await within(tracker.done, convergenceTimeoutMs(n)))) {
      throw new Error(
        `rotation of ${n}: ${tracker.synced} Secrets updated after ${convergenceTimeoutMs(n) / 1000} s`,
      );
    }
    return await closeWindow(cluster, op, start, tracker.lastSyncedAt - started, [], {
      'PATCH secrets': 1,
    });
  } finally {
    watch.stop();
  }
}

export function describeFloor(f: FloorResult | undefined): string {
  if (!f) return '-';
  return `${seconds(f.wallMs).toFixed(2)} s (CPU ${f.cpuSeconds.toFixed(2)} s, main thread ${f.mainThreadCpuSeconds.toFixed(2)} s; cluster ${f.clusterCpuDetail})`;
}

/** One line per measured window, for the progress log: runs vary, and the slow ones need a why. */
export function describeWindow(w: Window | undefined): string {
  if (!w) return '';
  const counts = (c: RequestCounts) =>
    Object.entries(c)
      .filter(([key]) => !key.startsWith('WATCH') && !key.includes('leases'))
      .map(([key, value]) => `${key}=${value}`)
      .join(' ');
  return `${seconds(w.wallMs).toFixed(2)} s, operator CPU ${w.cpuSeconds.toFixed(2)} s (main thread ${w.mainThreadCpuSeconds.toFixed(2)} s; ${w.cpuToIdleSeconds.toFixed(2)} s to idle; GC ${w.gc.major} major, ${w.gc.minor} minor, ${w.gc.pauseSeconds.toFixed(2)} s paused), cluster CPU ${w.clusterCpuSeconds.toFixed(2)} s (${w.clusterCpuDetail}), ${w.reconciles} reconciles (${w.reconcileSeconds.toFixed(2)} s); ${counts(w.requests)}`;
}

export function withFloor(
  scenario: ScenarioName,
  n: number,
  windows: readonly Window[],
  floorRuns: readonly FloorResult[],
): ScenarioResult {
  const floor = fastest(floorRuns);
  // The operator gets what the floor gets: the faster of its runs counts (the machine's load
  // moves single runs by tens of percent); every run is listed in the details.
  const window = windows.reduce((best, w) => (w.wallMs < best.wallMs ? w : best));
  const wallSeconds = seconds(window.wallMs);
  const floorSeconds = seconds(floor.wallMs);
  return {
    scenario,
    n,
    wallSeconds,
    floorSeconds,
    ratio: wallSeconds / floorSeconds,
    operatorCpuSeconds: window.cpuSeconds,
    operatorPeakRssMB: Math.max(...windows.map((w) => w.peakRssMB)),
    apiRequests: window.requests,
    harnessRequests: window.harnessRequests,
    floorApiRequests: floor.requests,
    operatorWrites: window.operatorWrites,
    operatorRequests: window.operatorRequests,
    reconciles: window.reconciles,
    reconcileSeconds: window.reconcileSeconds,
    floorCpuSeconds: floor.cpuSeconds,
    clusterCpuSeconds: window.clusterCpuSeconds,
    floorClusterCpuSeconds: floor.clusterCpuSeconds,
    details: {
      operatorRunsSeconds: windows.map((w) => seconds(w.wallMs).toFixed(3)).join(' '),
      operatorCpuToIdleSeconds: window.cpuToIdleSeconds.toFixed(2),
      floorRunsSeconds: floorRuns.map((r) => seconds(r.wallMs).toFixed(3)).join(' '),
      floorWatchObservedSeconds: floor.observedMs === undefined ? '-' : seconds(floor.observedMs),
    },
    notes: [...new Set(windows.flatMap((w) => w.notes))],
  };
}

/**
 * Runs a floor with the same watches open as the operator's measurement has (the API server
 * pays for every watcher), and records when the watch saw the floor's last write land.
 */
async function watchedFloor(
  cluster: BenchCluster,
  namespaces: readonly string[],
  secretName: string,
  password: string,
  serviceAccounts: boolean,
  run: () => Promise<FloorResult>,
  cacheWatches = false,
): Promise<FloorResult> {
  const tracker = new SyncTracker(namespaces, { secretName, password, serviceAccounts });
  // --floor-watches: what a client reading from caches holds besides (its own writes come back
  // to it), kept in Maps as an informer keeps them.
  const cache = new Map<string, unknown>();
  const keep = (type: string, obj: { metadata?: { namespace?: string; name?: string } }) => {
    const key = `${obj.metadata?.namespace}/${obj.metadata?.name}`;
    if (type === 'DELETED') cache.delete(key);
    else cache.set(key, obj);
  };
  const watches = await Promise.all([
    cluster.watchSecrets({ labelSelector: FLOOR_LABEL_SELECTOR }, tracker.onSecret).start(),
    cluster
      .watchServiceAccounts({ fieldSelector: 'metadata.name=default' }, tracker.onServiceAccount)
      .start(),
    ...(cacheWatches
      ? [
          cluster.watchSecrets({ labelSelector: FLOOR_LABEL_SELECTOR }, keep).start(),
          cluster.watchServiceAccounts({}, keep).start(),
        ]
      : []),
  ]);
  try {
    const result = await run();
    if (!(await within(tracker.done, 30_000))) return result;
    return { ...result, observedMs: tracker.lastSyncedAt - result.startedAt };
  } finally {
    for (const w of watches) w.stop();
  }
}

export interface FanoutGroupPlan {
  n: number;
  fanout: boolean;
  rotation: boolean;
  steady: boolean;
  steadySeconds: number;
}

/**
 * One control plane with N namespaces. The floor runs twice, before the operator starts and
 * after it has stopped (each with its own Secret name), and the faster run is the floor: the
 * cluster's state and the machine's load differ between the two moments, and the floor is
 * the best a plain client can do.
 */
export async function runFanoutGroup(
  ctx: BenchContext,
  plan: FanoutGroupPlan,
): Promise<ScenarioResult[]> {
  const { n } = plan;
  const planned: Array<{ scenario: ScenarioName; n: number }> = [];
  if (plan.fanout) planned.push({ scenario: 'fanout', n });
  if (plan.rotation) planned.push({ scenario: 'rotation', n });
  if (plan.steady) planned.push({ scenario: 'steady', n }, { scenario: 'resync', n });
  return runGroup(ctx, planned, async (results) => {
    const log = ctx.log;
    const cluster = await BenchCluster.start(log);
    try {
      const runId = `fan${n}-${shortId()}`;
      const run: FanoutRun = {
        runId,
        namespaces: namespaceNames(runId, n),
        credential: `bench-${runId}`,
      };
      log(`[bench] N=${n}: creating ${n} namespaces`);
      const setup = await cluster.createNamespacesAndWait(run.namespaces, { [RUN_LABEL]: runId });
      log(
        `[bench] N=${n}: namespaces created in ${seconds(setup.createMs).toFixed(1)} s, default ServiceAccounts ${seconds(setup.serviceAccountsMs).toFixed(1)} s later`,
      );
      const firstPassword = newPassword();
      const secondPassword = newPassword();
      await cluster.createSourceSecret(SOURCE_SECRET, firstPassword);

      const floorFan: FloorResult[] = [];
      const floorRot: FloorResult[] = [];
      const runFloor = async (secretName: string): Promise<void> => {
        log(`[bench] N=${n}: floor baseline (${secretName}, concurrency ${ctx.concurrency})`);
        floorFan.push(
          await watchedFloor(
            cluster,
            run.namespaces,
            secretName,
            firstPassword,
            true,
            () => floorFanout(cluster, run.namespaces, secretName, firstPassword, ctx.concurrency),
            ctx.floorWatches,
          ),
        );
        if (plan.rotation) {
          floorRot.push(
            await watchedFloor(
              cluster,
              run.namespaces,
              secretName,
              secondPassword,
              false,
              () =>
                floorRotation(cluster, run.namespaces, secretName, secondPassword, ctx.concurrency),
              ctx.floorWatches,
            ),
          );
        }
        log(
          `[bench] N=${n}: floor fan-out ${describeFloor(floorFan.at(-1))}${plan.rotation ? `, rotation ${describeFloor(floorRot.at(-1))}` : ''}`,
        );
      };
      await runFloor(FLOOR_SECRET);

      // Two operator runs, as the floor has two: the first before the floor's second run, the
      // second after it, each with a RegistryCredential of its own (its own Secret name and
      // source), so each fan-out writes N Secrets and N ServiceAccount entries.
      const suffixes = plan.fanout || plan.rotation ? ['a', 'b'] : ['a'];
      const targets: FanoutRun[] = suffixes.map((suffix, i) => ({
        ...run,
        credential: `${run.credential}-${suffix}`,
        secretName: i === 0 ? SECRET_NAME : `${SECRET_NAME}-${suffix}`,
        source: i === 0 ? SOURCE_SECRET : `${SOURCE_SECRET}-${suffix}`,
      }));
      for (const target of targets.slice(1)) {
        await cluster.createSourceSecret(target.source ?? SOURCE_SECRET, firstPassword);
      }
      const fans: Array<Window & { readyMs?: number }> = [];
      const rots: Window[] = [];
      const later: ScenarioResult[] = [];
      for (const [i, target] of targets.entries()) {
        let op = await startOperator(ctx, cluster);
        try {
          log(`[bench] N=${n}: fan-out ${i + 1}/${targets.length} (${target.credential})`);
          fans.push(await measureFanout(cluster, op, target, firstPassword));
          log(`[bench] N=${n}: ${describeWindow(fans.at(-1))}`);
          if (plan.rotation) {
            log(`[bench] N=${n}: rotation ${i + 1}/${targets.length}`);
            rots.push(await measureRotation(cluster, op, target, secondPassword));
            log(`[bench] N=${n}: ${describeWindow(rots.at(-1))}`);
          }
          if (plan.steady && i === targets.length - 1) {
            log(`[bench] N=${n}: steady state, ${plan.steadySeconds} s idle`);
            later.push(await measureSteady(cluster, op, n, plan.steadySeconds));
            log(`[bench] N=${n}: resync (operator restart)`);
            const resync = await measureResync(ctx, cluster, op, n);
            op = resync.operator;
            later.push(resync.result);
          }
        } finally {
          await op.stop();
        }
        if (i === 0 && targets.length > 1) await runFloor(`${FLOOR_SECRET}-2`);
      }
      if (plan.fanout) {
        const result = withFloor('fanout', n, fans, floorFan);
        const fastestFan = fans.reduce((best, w) => (w.wallMs < best.wallMs ? w : best));
        results.push({
          ...result,
          readySeconds: fastestFan.readyMs === undefined ? undefined : seconds(fastestFan.readyMs),
          details: {
            ...result.details,
            namespaceCreateSeconds: seconds(setup.createMs),
            serviceAccountWaitSeconds: seconds(setup.serviceAccountsMs),
          },
        });
      }
      if (plan.rotation) results.push(withFloor('rotation', n, rots, floorRot));
      results.push(...later);
    } finally {
      await cluster.stop();
    }
  });
}

/** Idle for `idleSeconds` after convergence: every write counts against the operator. */
async function measureSteady(
  cluster: BenchCluster,
  op: BenchOperator,
  n: number,
  idleSeconds: number,
): Promise<ScenarioResult> {
  const notes: string[] = [];
  if (!(await op.waitIdle())) notes.push('the operator was not idle before the window');
  if (!op.resetPeak()) notes.push('peak RSS is the process lifetime peak (clear_refs refused)');
  const before = op.sample();
  const [requests, counters] = await Promise.all([cluster.apiRequests(), op.counters()]);
  await sleep(idleSeconds * 1000);
  const after = op.sample();
  const [requestsAfter, countersAfter] = await Promise.all([cluster.apiRequests(), op.counters()]);
  return {
    scenario: 'steady',
    n,
    wallSeconds: idleSeconds,
    operatorCpuSeconds: cpuBetween(before, after),
    operatorPeakRssMB: megabytes(after.peakRssBytes),
    apiRequests: countsDelta(requestsAfter, requests),
    operatorWrites: countsDelta(countersAfter.writes, counters.writes),
    operatorRequests: countsDelta(countersAfter.requests, counters.requests),
    reconciles: countersAfter.reconciles - counters.reconciles,
    reconcileSeconds: countersAfter.reconcileSeconds - counters.reconcileSeconds,
    notes,
  };
}

/**
 * Stops the operator and starts a new process (which lists everything and reconciles every
 * RegistryCredential); counts the writes until it is idle again. Wall time: spawn to idle.
 */
async function measureResync(
  ctx: BenchContext,
  cluster: BenchCluster,
  op: BenchOperator,
  n: number,
): Promise<{ result: ScenarioResult; operator: BenchOperator }> {
  const notes: string[] = [];
  const requests = await cluster.apiRequests();
  await op.stop();
  const started = performance.now();
  const next = await startOperator(ctx, cluster);
  if (!(await next.waitIdle({ minReconciles: 1 }))) notes.push('the new operator did not go idle');
  const wallMs = performance.now() - started;
  const sample = next.sample();
  const [requestsAfter, counters] = await Promise.all([cluster.apiRequests(), next.counters()]);
  return {
    operator: next,
    result: {
      scenario: 'resync',
      n,
      wallSeconds: seconds(wallMs),
      operatorCpuSeconds: sample.cpuSeconds,
      operatorPeakRssMB: megabytes(sample.peakRssBytes),
      apiRequests: countsDelta(requestsAfter, requests),
      operatorWrites: counters.writes,
      operatorRequests: counters.requests,
      reconciles: counters.reconciles,
      reconcileSeconds: counters.reconcileSeconds,
      notes,
    },
  };
}

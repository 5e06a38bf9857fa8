// `--scale` (issue #20), scenarios 1, 3, 4 and 5 on one control plane: N namespaces with k
// ServiceAccounts each, one RegistryCredential selecting them all with serviceAccounts ["*"].
//   1. fan-out and rotation, operator against the floor, interleaved (floor, operator, floor,
//      operator: each pair a RegistryCredential of its own);
//   4. memory and restart: a fresh operator (restart to idle, then a rotation) without, then with
//      the unrelated Secrets and ConfigMaps;
//   5. idle: the last operator idles for the window: writes, LISTs, CPU;
//   3. onboarding under load: namespaces created while a rotation of all N runs.
// Onboarding comes last so that memory and idle see exactly N targeted namespaces.
import type { V1ServiceAccount } from '@kubernetes/client-node';
import { MANAGED_BY_LABEL, MANAGED_BY_VALUE } from '../src/api/types.ts';
import { BenchCluster, REGISTRY_SERVER, RUN_LABEL } from './cluster.ts';
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
  closeWindow,
  describeFloor,
  describeWindow,
  type FanoutRun,
  measureRotation,
  openWindow,
  type Window,
  withFloor,
} from './fanout.ts';
import {
  FLOOR_LABEL_SELECTOR,
  FLOOR_SECRET,
  type FloorResult,
  floorFanout,
  floorRotation,
} from './floor.ts';
import { countsDelta } from './metrics.ts';
import type { BenchOperator } from './operator-run.ts';
import type { ScenarioName, ScenarioResult } from './report.ts';
import { percentiles, SyncTracker, within } from './sync-tracker.ts';
import type { WatchEventType } from './watch.ts';

export interface ScalePlan {
  /** Targeted namespaces (10,000). */
  n: number;
  /** ServiceAccounts per namespace, `default` included (3). */
  serviceAccounts: number;
  /** Floor/operator pairs, interleaved (2, as the quick bench). */
  pairs: number;
  fanout: boolean;
  /** Namespaces created during a rotation (500), 0 to skip. */
  onboarding: number;
  memory: boolean;
  unrelatedSecrets: number;
  unrelatedConfigMaps: number;
  unrelatedBytes: number;
  /** Idle window in seconds (600), 0 to skip. */
  idleSeconds: number;
}

/** Log lines of the operator's informers relisting after a watch expired (410). */
const EXPIRY_LOG = /resourceVersion expired|watch expired again/;

export async function runScaleGroup(ctx: BenchContext, plan: ScalePlan): Promise<ScenarioResult[]> {
  const { n } = plan;
  const planned: Array<{ scenario: ScenarioName; n: number }> = [];
  if (plan.fanout) planned.push({ scenario: 'scale-fanout', n }, { scenario: 'scale-rotation', n });
  if (plan.memory) planned.push({ scenario: 'scale-memory', n });
  planned.push({ scenario: 'scale-restart', n });
  if (plan.idleSeconds > 0) planned.push({ scenario: 'scale-idle', n });
  if (plan.onboarding > 0) planned.push({ scenario: 'onboarding-under-load', n: plan.onboarding });
  return runGroup(ctx, planned, async (results) => {
    const log = ctx.log;
    const cluster = await BenchCluster.start(log, [], { controllerManagerQps: 1000 });
    try {
      const runId = `s${n}-${shortId()}`;
      const namespaces = namespaceNames(runId, n);
      const extraAccounts = Array.from(
        { length: plan.serviceAccounts - 1 },
        (_, i) => `sa-${i + 1}`,
      );
      const accountNames = ['default', ...extraAccounts];
      log(`[scale] N=${n}: creating ${n} namespaces`);
      const setup = await cluster.createNamespacesAndWait(namespaces, { [RUN_LABEL]: runId });
      const saStarted = performance.now();
      await cluster.createServiceAccounts(namespaces, extraAccounts);
      const saMs = performance.now() - saStarted;
      log(
        `[scale] N=${n}: namespaces ${seconds(setup.createMs).toFixed(1)} s (default ServiceAccounts ${seconds(setup.serviceAccountsMs).toFixed(1)} s later), ${n * extraAccounts.length} more ServiceAccounts ${seconds(saMs).toFixed(1)} s`,
      );
      const firstPassword = newPassword();
      const secondPassword = newPassword();
      await cluster.createSourceSecret(SOURCE_SECRET, firstPassword);

      const floorFan: FloorResult[] = [];
      const floorRot: FloorResult[] = [];
      const runFloor = async (secretName: string): Promise<void> => {
        log(`[scale] N=${n}: floor (${secretName}, concurrency ${ctx.concurrency})`);
        floorFan.push(
          await observedFloor(
            cluster,
            namespaces,
            secretName,
            firstPassword,
            accountNames,
            () =>
              floorFanout(
                cluster,
                namespaces,
                secretName,
                firstPassword,
                ctx.concurrency,
                accountNames,
              ),
            ctx.floorWatches,
          ),
        );
        floorRot.push(
          await observedFloor(
            cluster,
            namespaces,
            secretName,
            secondPassword,
            undefined,
            () => floorRotation(cluster, namespaces, secretName, secondPassword, ctx.concurrency),
            ctx.floorWatches,
          ),
        );
        log(
          `[scale] N=${n}: floor fan-out ${describeFloor(floorFan.at(-1))}, rotation ${describeFloor(floorRot.at(-1))}`,
        );
      };

      const runs: FanoutRun[] = Array.from({ length: plan.fanout ? plan.pairs : 1 }, (_, i) => ({
        runId,
        namespaces,
        credential: `bench-${runId}-${i}`,
        secretName: i === 0 ? SECRET_NAME : `${SECRET_NAME}-${i}`,
        source: i === 0 ? SOURCE_SECRET : `${SOURCE_SECRET}-${i}`,
      }));
      for (const run of runs.slice(1)) {
        await cluster.createSourceSecret(run.source ?? SOURCE_SECRET, firstPassword);
      }
      const fans: Window[] = [];
      const rots: Window[] = [];
      for (const [i, run] of runs.entries()) {
        if (plan.fanout) await runFloor(i === 0 ? FLOOR_SECRET : `${FLOOR_SECRET}-${i}`);
        const op = await startOperator(ctx, cluster);
        try {
          log(`[scale] N=${n}: operator fan-out ${i + 1}/${runs.length} (${run.credential})`);
          fans.push(await measureScaleFanout(cluster, op, run, firstPassword, accountNames));
          log(`[scale] N=${n}: ${describeWindow(fans.at(-1))}`);
          if (plan.fanout) {
            log(`[scale] N=${n}: operator rotation ${i + 1}/${runs.length}`);
            rots.push(await measureRotation(cluster, op, run, secondPassword));
            log(`[scale] N=${n}: ${describeWindow(rots.at(-1))}`);
          }
        } finally {
          await op.stop();
        }
      }
      if (plan.fanout) {
        const fan = withFloor('scale-fanout', n, fans, floorFan);
        results.push({
          ...fan,
          minimalWrites: {
            secrets: n,
            serviceAccounts: n * accountNames.length,
            secretVerb: 'POST',
          },
          details: {
            ...fan.details,
            serviceAccountsPerNamespace: accountNames.length,
            namespaceCreateSeconds: seconds(setup.createMs),
            serviceAccountWaitSeconds: seconds(setup.serviceAccountsMs),
            extraServiceAccountCreateSeconds: seconds(saMs),
            operatorCpuRunsSeconds: fans.map((w) => w.cpuSeconds.toFixed(2)).join(' '),
            floorCpuRunsSeconds: floorFan.map((f) => f.cpuSeconds.toFixed(2)).join(' '),
          },
        });
        const rot = withFloor('scale-rotation', n, rots, floorRot);
        results.push({
          ...rot,
          minimalWrites: { secrets: n, serviceAccounts: 0, secretVerb: 'PUT' },
          details: {
            ...rot.details,
            operatorCpuRunsSeconds: rots.map((w) => w.cpuSeconds.toFixed(2)).join(' '),
            floorCpuRunsSeconds: floorRot.map((f) => f.cpuSeconds.toFixed(2)).join(' '),
          },
        });
      }
      const fanoutPeakMB = Math.max(
        ...fans.map((w) => w.peakRssMB),
        ...rots.map((w) => w.peakRssMB),
      );
      const last = runs[runs.length - 1] as FanoutRun;
      let password = secondPassword;

      // Scenario 4, first half: a fresh process without the unrelated objects.
      let without: FreshRun | undefined;
      if (plan.memory) {
        log(`[scale] N=${n}: fresh operator without unrelated objects: restart, rotation`);
        const op = await startOperator(ctx, cluster);
        try {
          password = newPassword();
          without = await freshRun(cluster, op, last, password);
          log(`[scale] N=${n}: ${describeFresh(without)}`);
        } finally {
          await op.stop();
        }
        const unrelatedNamespaces = namespaceNames(
          `unrelated-${shortId()}`,
          Math.max(1, Math.ceil(plan.unrelatedSecrets / 100)),
        );
        log(
          `[scale] N=${n}: creating ${plan.unrelatedSecrets} unrelated Secrets and ${plan.unrelatedConfigMaps} ConfigMaps of ${plan.unrelatedBytes} bytes in ${unrelatedNamespaces.length} namespaces`,
        );
        const started = performance.now();
        await cluster.createNamespacesAndWait(unrelatedNamespaces, {});
        await cluster.createUnrelatedSecrets(
          unrelatedNamespaces,
          plan.unrelatedSecrets,
          plan.unrelatedBytes,
        );
        await cluster.createUnrelatedConfigMaps(
          unrelatedNamespaces,
          plan.unrelatedConfigMaps,
          plan.unrelatedBytes,
        );
        log(
          `[scale] N=${n}: unrelated objects created in ${seconds(performance.now() - started).toFixed(1)} s`,
        );
      }

      // Scenario 4, second half (or the restart alone), then 5 and 3 on the same process.
      log(
        `[scale] N=${n}: fresh operator${plan.memory ? ' with unrelated objects' : ''}: restart, rotation`,
      );
      const op = await startOperator(ctx, cluster);
      try {
        password = newPassword();
        const withUnrelated = await freshRun(cluster, op, last, password);
        log(`[scale] N=${n}: ${describeFresh(withUnrelated)}`);
        results.push({ ...withUnrelated.restart, n });
        if (plan.memory && without) {
          const peak = Math.max(fanoutPeakMB, without.peakMB, withUnrelated.peakMB);
          results.push({
            scenario: 'scale-memory',
            n,
            operatorPeakRssMB: peak,
            operatorCpuSeconds: withUnrelated.cpuSeconds,
            details: {
              peakRssFanoutMB: fanoutPeakMB,
              peakRssWithoutMB: without.peakMB,
              peakRssWithUnrelatedMB: withUnrelated.peakMB,
              rssWithoutMB: without.rssMB,
              rssWithUnrelatedMB: withUnrelated.rssMB,
              restartWithoutSeconds: without.restart.wallSeconds ?? Number.NaN,
              unrelatedSecrets: plan.unrelatedSecrets,
              unrelatedConfigMaps: plan.unrelatedConfigMaps,
              serviceAccounts: n * accountNames.length,
            },
            notes: [
              `peak RSS: fan-out process ${fanoutPeakMB.toFixed(1)} MB; fresh process (restart + rotation) ${without.peakMB.toFixed(1)} MB without, ${withUnrelated.peakMB.toFixed(1)} MB with ${plan.unrelatedSecrets} unrelated Secrets and ${plan.unrelatedConfigMaps} ConfigMaps (one process each)`,
            ],
          });
        }
        if (plan.idleSeconds > 0) {
          log(`[scale] N=${n}: idle for ${plan.idleSeconds} s`);
          results.push(await measureIdle(cluster, op, n, plan.idleSeconds));
          log(`[scale] N=${n}: idle ${JSON.stringify(results.at(-1)?.details)}`);
        }
        if (plan.onboarding > 0) {
          log(
            `[scale] N=${n}: ${plan.onboarding} namespaces created during a rotation of all ${n}`,
          );
          password = newPassword();
          results.push(
            await measureOnboardingUnderLoad(cluster, op, last, plan.onboarding, password),
          );
          log(`[scale] onboarding under load: ${results.at(-1)?.notes.join('; ')}`);
        }
      } finally {
        await op.stop();
      }
    } finally {
      await cluster.stop();
    }
  });
}

/**
 * A floor run with the measurement watches open, as the operator's windows have them: the
 * floor's Secrets by label and every ServiceAccount (accountNames) or none (rotation).
 */
async function observedFloor(
  cluster: BenchCluster,
  namespaces: readonly string[],
  secretName: string,
  password: string,
  accountNames: readonly string[] | undefined,
  run: () => Promise<FloorResult>,
  cacheWatches = false,
): Promise<FloorResult> {
  const tracker = new SyncTracker(namespaces, {
    secretName,
    password,
    serviceAccounts: accountNames !== undefined,
    serviceAccountNames: accountNames,
  });
  // The measurement's watches already decode every event of the floor's Secrets and of every
  // ServiceAccount in this process; --floor-watches also keeps the objects in Maps, as an
  // informer's cache does (and watches the ServiceAccounts during a rotation too).
  const cache = new Map<string, unknown>();
  const keep = (
    type: WatchEventType,
    obj: { metadata?: { namespace?: string; name?: string } },
  ) => {
    if (!cacheWatches) return;
    const key = `${obj.metadata?.namespace}/${obj.metadata?.name}`;
    if (type === 'DELETED') cache.delete(key);
    else cache.set(key, obj);
  };
  const watches = await Promise.all([
    cluster
      .watchSecrets({ labelSelector: FLOOR_LABEL_SELECTOR }, (type, secret, at) => {
        keep(type, secret);
        tracker.onSecret(type, secret, at);
      })
      .start(),
    ...(accountNames || cacheWatches
      ? [
          cluster
            .watchServiceAccounts({}, (type, sa, at) => {
              keep(type, sa);
              tracker.onServiceAccount(type, sa, at);
            })
            .start(),
        ]
      : []),
  ]);
  try {
    const result = await run();
    if (!(await within(tracker.done, 60_000))) return result;
    return { ...result, observedMs: tracker.lastSyncedAt - result.startedAt };
  } finally {
    for (const w of watches) w.stop();
  }
}

/**
 * Creates a RegistryCredential selecting the run's namespaces and every ServiceAccount in them
 * (`["*"]`); waits until each namespace holds the Secret and every ServiceAccount the entry,
 * and the status says Ready with all N synced.
 */
async function measureScaleFanout(
  cluster: BenchCluster,
  op: BenchOperator,
  run: FanoutRun,
  password: string,
  accountNames: readonly string[],
): Promise<Window> {
  const n = run.namespaces.length;
  const secretName = run.secretName ?? SECRET_NAME;
  const tracker = new SyncTracker(run.namespaces, {
    secretName,
    password,
    serviceAccounts: true,
    serviceAccountNames: accountNames,
  });
  let ready = false;
  let resolveReady: () => void = () => {};
  const readyPromise = new Promise<void>((resolve) => {
    resolveReady = resolve;
  });
  const watches = await Promise.all([
    cluster
      .watchSecrets({ labelSelector: `${MANAGED_BY_LABEL}=${MANAGED_BY_VALUE}` }, tracker.onSecret)
      .start(),
    cluster.watchServiceAccounts({}, tracker.onServiceAccount).start(),
    cluster
      .watchCredential(run.credential, (type, cred) => {
        if (type !== 'DELETED' && !ready && readyWithAll(cred, n)) {
          ready = true;
          resolveReady();
        }
      })
      .start(),
  ]);
  try {
    const start = await openWindow(cluster, op);
    const started = performance.now();
    await cluster.createCredentialWithSpec(run.credential, {
      secretName,
      namespaceSelector: { matchLabels: { [RUN_LABEL]: run.runId } },
      serviceAccounts: ['*'],
      registries: [
        { server: REGISTRY_SERVER, basic: { secretRef: { name: run.source ?? SOURCE_SECRET } } },
      ],
    });
    const timeoutMs = convergenceTimeoutMs(n * accountNames.length);
    if (!(await within(Promise.all([tracker.done, readyPromise]), timeoutMs))) {
      throw new Error(
        `fan-out of ${n}: ${tracker.synced} namespaces synced, Ready ${ready} after ${timeoutMs / 1000} s; operator logs:\n${op.lastLogs().join('\n')}`,
      );
    }
    return await closeWindow(cluster, op, start, tracker.lastSyncedAt - started, [], {
      'POST registrycredentials': 1,
    });
  } finally {
    for (const w of watches) w.stop();
  }
}

interface FreshRun {
  restart: ScenarioResult;
  rotation: Window;
  /** Lifetime peak: the larger of the start (list + reconcile) and the rotation's window. */
  peakMB: number;
  rssMB: number;
  cpuSeconds: number;
}

function describeFresh(f: FreshRun): string {
  return `restart to idle ${f.restart.wallSeconds?.toFixed(1)} s (${JSON.stringify(f.restart.details)}; CPU ${f.restart.operatorCpuSeconds?.toFixed(2)} s, writes ${JSON.stringify(f.restart.operatorWrites)}), rotation ${describeWindow(f.rotation)}; peak ${f.peakMB.toFixed(1)} MB, RSS ${f.rssMB.toFixed(1)} MB`;
}

/**
 * A process just started (lists everything, reconciles every RegistryCredential): time from
 * spawn to idle and its writes; then one rotation of all N. The peak is the process's whole
 * life (sampled before the rotation's window resets it, and the window's own).
 */
async function freshRun(
  cluster: BenchCluster,
  op: BenchOperator,
  run: FanoutRun,
  password: string,
): Promise<FreshRun> {
  const notes: string[] = [];
  const spawned = op.spawnedAt;
  const requests = await cluster.apiRequests();
  if (!(await op.waitIdle({ minReconciles: 1, timeoutMs: 300_000 }))) {
    notes.push('the new operator did not go idle within 300 s');
  }
  // waitIdle needs 2 s without a reconcile or a request: idle began 2 s before it returned.
  const wallMs = performance.now() - spawned - 2000;
  const atIdle = op.sample();
  const [requestsAfter, counters] = await Promise.all([cluster.apiRequests(), op.counters()]);
  const restart: ScenarioResult = {
    scenario: 'scale-restart',
    n: run.namespaces.length,
    wallSeconds: seconds(wallMs),
    operatorCpuSeconds: atIdle.cpuSeconds,
    operatorPeakRssMB: megabytes(atIdle.peakRssBytes),
    apiRequests: countsDelta(requestsAfter, requests),
    operatorWrites: counters.writes,
    operatorRequests: counters.requests,
    reconciles: counters.reconciles,
    reconcileSeconds: counters.reconcileSeconds,
    details: { waitIdleQuietSecondsSubtracted: 2, ...restartMilestones(op) },
    notes,
  };
  const rotation = await measureRotation(cluster, op, run, password);
  await sleep(2000);
  const after = op.sample();
  return {
    restart,
    rotation,
    peakMB: Math.max(megabytes(atIdle.peakRssBytes), rotation.peakRssMB),
    rssMB: megabytes(after.rssBytes),
    cpuSeconds: after.cpuSeconds,
  };
}

/** Seconds from spawn to each startup milestone of the operator's log (where it says so). */
function restartMilestones(op: BenchOperator): Record<string, number> {
  const milestones: Record<string, number | undefined> = {
    startingSeconds: op.logSecondsAfterSpawn('starting'),
    namespacesSyncedSeconds: op.logSecondsAfterSpawn(
      'informer synced',
      'informer',
      '/api/v1/namespaces',
    ),
    serviceAccountsSyncedSeconds: op.logSecondsAfterSpawn(
      'informer synced',
      'informer',
      '/api/v1/serviceaccounts',
    ),
    cachesSyncedSeconds: op.logSecondsAfterSpawn('caches synced'),
    becameLeaderSeconds: op.logSecondsAfterSpawn('became leader'),
    workersStartedSeconds:
      op.logSecondsAfterSpawn('workers started') ??
      op.logSecondsAfterSpawn('workers started (leader election disabled)'),
  };
  return Object.fromEntries(
    Object.entries(milestones).filter((e): e is [string, number] => e[1] !== undefined),
  );
}

/**
 * Scenario 5: the operator idles for `idleSeconds`: every write counts against it, and every
 * LIST must be explained by a watch that expired (410), as its log says.
 */
async function measureIdle(
  cluster: BenchCluster,
  op: BenchOperator,
  n: number,
  idleSeconds: number,
): Promise<ScenarioResult> {
  const notes: string[] = [];
  if (!(await op.waitIdle())) notes.push('the operator was not idle before the window');
  const before = op.sample();
  const logIndex = op.logCount;
  const [requests, counters] = await Promise.all([cluster.apiRequests(), op.counters()]);
  await sleep(idleSeconds * 1000);
  const after = op.sample();
  const [requestsAfter, countersAfter] = await Promise.all([cluster.apiRequests(), op.counters()]);
  const delta = countsDelta(requestsAfter, requests);
  const expiries = op.logsSince(logIndex).filter((line) => EXPIRY_LOG.test(line)).length;
  const lists = Object.entries(delta)
    .filter(([key]) => key.startsWith('LIST '))
    .reduce((sum, [, v]) => sum + v, 0);
  const leaseWrites = Object.entries(delta)
    .filter(([key]) => key.includes('leases') && !key.startsWith('GET') && !key.startsWith('WATCH'))
    .reduce((sum, [, v]) => sum + v, 0);
  const cpu = cpuBetween(before, after);
  notes.push(
    `${idleSeconds} s idle: operator CPU ${cpu.toFixed(2)} s (${((100 * cpu) / idleSeconds).toFixed(2)} % of a core), ${lists} LISTs, ${expiries} watch expiries, ${leaseWrites} Lease writes (not the operator's: the bench runs it without leader election; kube-apiserver renews its identity Lease)`,
  );
  return {
    scenario: 'scale-idle',
    n,
    wallSeconds: idleSeconds,
    operatorCpuSeconds: cpu,
    operatorPeakRssMB: megabytes(after.peakRssBytes),
    apiRequests: delta,
    operatorWrites: countsDelta(countersAfter.writes, counters.writes),
    operatorRequests: countsDelta(countersAfter.requests, counters.requests),
    reconciles: countersAfter.reconciles - counters.reconciles,
    reconcileSeconds: countersAfter.reconcileSeconds - counters.reconcileSeconds,
    details: {
      watchExpiries: expiries,
      lists,
      leaseWrites,
      cpuPercentOfCore: (100 * cpu) / idleSeconds,
      rssMB: megabytes(after.rssBytes),
    },
    notes,
  };
}

/**
 * Scenario 3: `count` new namespaces of the run (so selected) are created while a rotation of
 * all N runs; per namespace, from its default ServiceAccount appearing to it carrying the
 * entry, as a watch sees it.
 */
async function measureOnboardingUnderLoad(
  cluster: BenchCluster,
  op: BenchOperator,
  run: FanoutRun,
  count: number,
  password: string,
): Promise<ScenarioResult> {
  const secretName = run.secretName ?? SECRET_NAME;
  const burst = namespaceNames(`${run.runId}-onb`, count);
  const onboarding = new SyncTracker(burst, { secretName, serviceAccounts: true });
  const rotation = new SyncTracker(run.namespaces, {
    secretName,
    password,
    serviceAccounts: false,
  });
  const watches = await Promise.all([
    cluster
      .watchSecrets({ labelSelector: `${MANAGED_BY_LABEL}=${MANAGED_BY_VALUE}` }, rotation.onSecret)
      .start(),
    cluster
      .watchServiceAccounts(
        { fieldSelector: 'metadata.name=default' },
        (type: 'ADDED' | 'MODIFIED' | 'DELETED', sa: V1ServiceAccount, at: number) =>
          onboarding.onServiceAccount(type, sa, at),
      )
      .start(),
  ]);
  try {
    const start = await openWindow(cluster, op);
    const started = performance.now();
    await cluster.setSourcePassword(run.source ?? SOURCE_SECRET, password);
    // Let the rotation get going: the burst lands in the middle of it.
    await sleep(500);
    const burstStarted = performance.now();
    const createMs = await cluster.createNamespaces(burst, { [RUN_LABEL]: run.runId });
    const burstCreated = performance.now();
    const timeoutMs = convergenceTimeoutMs(run.namespaces.length + count);
    if (!(await within(Promise.all([onboarding.done, rotation.done]), timeoutMs))) {
      throw new Error(
        `onboarding under load: ${onboarding.synced}/${count} new namespaces, ${rotation.synced}/${run.namespaces.length} rotated after ${timeoutMs / 1000} s`,
      );
    }
    const rotationEnd = rotation.lastSyncedAt;
    const window = await closeWindow(
      cluster,
      op,
      start,
      Math.max(rotationEnd, onboarding.lastSyncedAt) - started,
      [],
      {
        'PATCH secrets': 1,
        'POST namespaces': count,
        'POST serviceaccounts': count,
        'POST configmaps': count,
      },
    );
    const latency = percentiles(onboarding.entryLatencies());
    const burstInsideRotation = burstCreated < rotationEnd;
    return {
      scenario: 'onboarding-under-load',
      n: count,
      wallSeconds: seconds(window.wallMs),
      latencyMs: latency,
      operatorCpuSeconds: window.cpuSeconds,
      clusterCpuSeconds: window.clusterCpuSeconds,
      operatorPeakRssMB: window.peakRssMB,
      apiRequests: window.requests,
      operatorWrites: window.operatorWrites,
      operatorRequests: window.operatorRequests,
      reconciles: window.reconciles,
      reconcileSeconds: window.reconcileSeconds,
      details: {
        burst: count,
        rotatedNamespaces: run.namespaces.length,
        rotationSeconds: seconds(rotationEnd - started),
        burstStartSeconds: seconds(burstStarted - started),
        burstCreateSeconds: seconds(createMs),
        burstInsideRotation,
        lastOnboardedSeconds: seconds(onboarding.lastSyncedAt - started),
      },
      notes: [
        ...window.notes,
        `rotation of ${run.namespaces.length} took ${seconds(rotationEnd - started).toFixed(2)} s; the ${count} namespaces were created from ${seconds(burstStarted - started).toFixed(2)} s to ${seconds(burstCreated - started).toFixed(2)} s${burstInsideRotation ? ' (inside the rotation)' : ' (NOT all inside the rotation: the rotation ended first)'}; entry p50/p95/p99/max ${latency.p50.toFixed(0)}/${latency.p95.toFixed(0)}/${latency.p99.toFixed(0)}/${latency.max.toFixed(0)} ms`,
      ],
    };
  } finally {
    for (const w of watches) w.stop();
  }
}

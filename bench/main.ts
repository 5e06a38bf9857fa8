// `npm run bench`: builds dist/, then runs the scenarios against fresh local control planes with
// the operator in its own process, each next to a floor baseline; prints a table with the
// targets checked and writes the JSON under bench/results/. `--help` for the options.
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { availableParallelism, cpus, loadavg, totalmem } from 'node:os';
import { join, relative } from 'node:path';
import { parseArgs } from 'node:util';
import { deploymentEnv, deploymentNodeFlags } from '../test/support/deployment.ts';
import type { BenchContext } from './context.ts';
import { runFanoutGroup } from './fanout.ts';
import { runMemory } from './memory.ts';
import { runOnboarding } from './onboarding.ts';
import {
  checkTargets,
  requestsSummary,
  resultsTable,
  type ScenarioResult,
  targetsTable,
} from './report.ts';
import { runScaleGroup } from './scale.ts';
import { runMultiCredential } from './scale-multi.ts';
import { runWebhook } from './webhook.ts';

const repoRoot = join(import.meta.dirname, '..');
const resultsDir = join(repoRoot, 'bench', 'results');
const SCENARIOS = ['fanout', 'rotation', 'onboarding', 'steady', 'memory', 'webhook'] as const;
type Scenario = (typeof SCENARIOS)[number];
const SCALE_SCENARIOS = ['fanout', 'multi', 'onboarding', 'memory', 'idle'] as const;
type ScaleScenario = (typeof SCALE_SCENARIOS)[number];

const USAGE = `Usage: npm run bench -- [options]

Runs the benchmark against fresh local control planes (etcd + kube-apiserver +
kube-controller-manager), with the operator built (npm run build) and run from dist/ in its
own process. Each scenario also runs a floor baseline: a plain client doing only the minimal
writes with the operator's fan-out concurrency. Prints a table, checks the targets, and writes
JSON to bench/results/.

  --full                      the issue's sizes: N=100,1000,3000, onboarding 500, steady 60 s,
                              memory N=3000 + 10000 unrelated Secrets (long: tens of minutes)
  --n <list>                  fan-out/rotation sizes (default 100,1000; --full 100,1000,3000)
  --scenarios <list>          any of ${SCENARIOS.join(',')} (default: all)
  --onboarding <count>        namespaces in the onboarding burst (default 200; --full 500)
  --steady-seconds <s>        steady-state idle window, at the largest N (default 20; --full 60)
  --memory-n <n>              targeted namespaces in the memory scenario (default 300; --full 3000)
  --unrelated <count>         unrelated 1 KiB Secrets in the memory scenario (default 1000;
                              --full 10000), 100 per namespace
  --memory-repeats <r>        fresh operator processes per memory phase; the median peak
                              counts (default 2; --full 3)
  --webhook-pods <count>      Pods per measured phase of the webhook scenario, created one at a
                              time and then --webhook-burst at a time (default 1000; --full 3000)
  --webhook-burst <k>         creates in flight in the webhook scenario's second phase (default 8)
  --operator-args "<flags>"   extra operator flags, e.g. "--fanout-concurrency=32 --workers=8"
  --operator-node-args "<a>"  Node flags for the operator process (passed as NODE_OPTIONS),
                              e.g. "--cpu-prof" (profiles go to bench/results/profiles/<run>/)
                              (default: the NODE_OPTIONS of config/manager/manager.yaml)
  --operator-node-flags "<a>" flags on the operator's node command line, for V8 flags that
                              NODE_OPTIONS refuses, e.g. "--trace-gc" (default: those of the
                              command in config/manager/manager.yaml; "" for none)
  --floor-watches             the fan-out and rotation floors also keep the watches a cache-based
                              client needs (the Secrets they write, every ServiceAccount): the
                              floor of an operator that reads from caches, for comparison
                              (also the --scale group's fan-out and rotation floors)
  --scale                     issue #20 instead of the above (~40 min on 2 cores): N=10,000
                              namespaces x 3 ServiceAccounts, one credential selecting every
                              ServiceAccount (fan-out, rotation vs the floor; restart; idle;
                              500 namespaces onboarded during a rotation; memory with 100,000
                              unrelated Secrets + 10,000 ConfigMaps), and 50 credentials over
                              3,000 namespaces (each a seeded random half) with one source
                              shared by 10 rotated. Smaller runs for development:
  --scale-scenarios <list>    any of ${SCALE_SCENARIOS.join(',')} (default: all)
  --scale-namespaces <n>      N (default 10000)
  --scale-service-accounts <k>  ServiceAccounts per namespace, default included (default 3)
  --scale-pairs <p>           floor/operator pairs, interleaved (default 2)
  --scale-onboarding <count>  namespaces created during the rotation (default 500)
  --scale-unrelated <count>   unrelated 1 KiB Secrets (default 100000), 100 per namespace
  --scale-configmaps <count>  unrelated 1 KiB ConfigMaps (default 10000)
  --idle-window <s>           idle window (default 600)
  --multi-namespaces <m>      scenario 2's namespaces (default 3000)
  --multi-credentials <c>     scenario 2's RegistryCredentials (default 50)
  --multi-shared <s>          ... of which share the rotated source (default 10)
  --multi-seed <seed>         the random halves' seed (default 20)
  --no-build                  use the existing dist/ as is
  --out <file>                JSON output path (default bench/results/<time>-<quick|full>.json)
  --help                      this text

Final numbers need a quiet machine: other control planes or builds running at the same time
skew every figure (the load average is recorded in the JSON).`;

interface ScaleOptions {
  scenarios: Set<ScaleScenario>;
  namespaces: number;
  serviceAccounts: number;
  pairs: number;
  onboarding: number;
  unrelated: number;
  configMaps: number;
  idleWindow: number;
  multiNamespaces: number;
  multiCredentials: number;
  multiShared: number;
  multiSeed: number;
}

interface Options {
  scale?: ScaleOptions;
  full: boolean;
  sizes: number[];
  scenarios: Set<Scenario>;
  onboarding: number;
  steadySeconds: number;
  memoryN: number;
  unrelated: number;
  memoryRepeats: number;
  webhookPods: number;
  webhookBurst: number;
  operatorArgs: string[];
  operatorNodeArgs?: string;
  operatorNodeFlags?: string;
  floorWatches: boolean;
  build: boolean;
  out?: string;
}

function positive(name: string, raw: string): number {
  const value = Number(raw);
  if (!Number.isInteger(value) || value < 1)
    throw new Error(`--${name}: not a positive integer: ${raw}`);
  return value;
}

/** Flags whose values start with a dash themselves: `--operator-args "--x=1"` becomes `--operator-args=--x=1`. */
const PASS_THROUGH = new Set(['--operator-args', '--operator-node-args', '--operator-node-flags']);

function joinPassThrough(argv: readonly string[]): string[] {
  const joined: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] ?? '';
    const next = argv[i + 1];
    if (PASS_THROUGH.has(arg) && next !== undefined) {
      joined.push(`${arg}=${next}`);
      i++;
    } else {
      joined.push(arg);
    }
  }
  return joined;
}

function parseOptions(argv: string[]): Options | 'help' {
  const { values } = parseArgs({
    args: joinPassThrough(argv),
    options: {
      full: { type: 'boolean', default: false },
      n: { type: 'string' },
      scenarios: { type: 'string' },
      onboarding: { type: 'string' },
      'steady-seconds': { type: 'string' },
      'memory-n': { type: 'string' },
      unrelated: { type: 'string' },
      'memory-repeats': { type: 'string' },
      'webhook-pods': { type: 'string' },
      'webhook-burst': { type: 'string' },
      'operator-args': { type: 'string' },
      'operator-node-args': { type: 'string' },
      'operator-node-flags': { type: 'string' },
      'no-build': { type: 'boolean', default: false },
      scale: { type: 'boolean', default: false },
      'scale-scenarios': { type: 'string' },
      'scale-namespaces': { type: 'string' },
      'scale-service-accounts': { type: 'string' },
      'scale-pairs': { type: 'string' },
      'scale-onboarding': { type: 'string' },
      'scale-unrelated': { type: 'string' },
      'scale-configmaps': { type: 'string' },
      'idle-window': { type: 'string' },
      'multi-namespaces': { type: 'string' },
      'multi-credentials': { type: 'string' },
      'multi-shared': { type: 'string' },
      'multi-seed': { type: 'string' },
      'floor-watches': { type: 'boolean', default: false },
      out: { type: 'string' },
      help: { type: 'boolean', default: false },
    },
    strict: true,
    allowPositionals: false,
  });
  if (values.help) return 'help';
  const full = values.full === true;
  const scenarios = new Set<Scenario>();
  for (const raw of (values.scenarios ?? SCENARIOS.join(',')).split(',')) {
    const name = raw.trim();
    if (name === '') continue;
    if (!(SCENARIOS as readonly string[]).includes(name)) {
      throw new Error(`--scenarios: unknown scenario ${name} (known: ${SCENARIOS.join(', ')})`);
    }
    scenarios.add(name as Scenario);
  }
  const sizes = (values.n ?? (full ? '100,1000,3000' : '100,1000'))
    .split(',')
    .filter((s) => s.trim() !== '')
    .map((s) => positive('n', s.trim()));
  let scale: ScaleOptions | undefined;
  if (values.scale) {
    const scaleScenarios = new Set<ScaleScenario>();
    for (const raw of (values['scale-scenarios'] ?? SCALE_SCENARIOS.join(',')).split(',')) {
      const name = raw.trim();
      if (name === '') continue;
      if (!(SCALE_SCENARIOS as readonly string[]).includes(name)) {
        throw new Error(
          `--scale-scenarios: unknown scenario ${name} (known: ${SCALE_SCENARIOS.join(', ')})`,
        );
      }
      scaleScenarios.add(name as ScaleScenario);
    }
    const nonNegative = (name: string, raw: string | undefined, fallback: string) =>
      (raw ?? fallback) === '0' ? 0 : positive(name, raw ?? fallback);
    scale = {
      scenarios: scaleScenarios,
      namespaces: positive('scale-namespaces', values['scale-namespaces'] ?? '10000'),
      serviceAccounts: positive('scale-service-accounts', values['scale-service-accounts'] ?? '3'),
      pairs: positive('scale-pairs', values['scale-pairs'] ?? '2'),
      onboarding: positive('scale-onboarding', values['scale-onboarding'] ?? '500'),
      unrelated: positive('scale-unrelated', values['scale-unrelated'] ?? '100000'),
      configMaps: nonNegative('scale-configmaps', values['scale-configmaps'], '10000'),
      idleWindow: positive('idle-window', values['idle-window'] ?? '600'),
      multiNamespaces: positive('multi-namespaces', values['multi-namespaces'] ?? '3000'),
      multiCredentials: positive('multi-credentials', values['multi-credentials'] ?? '50'),
      multiShared: positive('multi-shared', values['multi-shared'] ?? '10'),
      multiSeed: positive('multi-seed', values['multi-seed'] ?? '20'),
    };
    if (scale.multiShared > scale.multiCredentials) {
      throw new Error('--multi-shared: more than --multi-credentials');
    }
  }
  return {
    scale,
    full,
    sizes: [...new Set(sizes)].sort((a, b) => a - b),
    scenarios,
    onboarding: positive('onboarding', values.onboarding ?? (full ? '500' : '200')),
    steadySeconds: positive('steady-seconds', values['steady-seconds'] ?? (full ? '60' : '20')),
    memoryN: positive('memory-n', values['memory-n'] ?? (full ? '3000' : '300')),
    unrelated: positive('unrelated', values.unrelated ?? (full ? '10000' : '1000')),
    memoryRepeats: positive('memory-repeats', values['memory-repeats'] ?? (full ? '3' : '2')),
    webhookPods: positive('webhook-pods', values['webhook-pods'] ?? (full ? '3000' : '1000')),
    webhookBurst: positive('webhook-burst', values['webhook-burst'] ?? '8'),
    operatorArgs: (values['operator-args'] ?? '').split(/\s+/).filter((a) => a !== ''),
    operatorNodeArgs: values['operator-node-args'],
    operatorNodeFlags: values['operator-node-flags'],
    floorWatches: values['floor-watches'] === true,
    build: values['no-build'] !== true,
    out: values.out,
  };
}

/** The operator's fan-out concurrency as it will run: flag, else environment, else 16. */
function fanoutConcurrency(operatorArgs: readonly string[]): number {
  let value: string | undefined = process.env.REGCRED_FANOUT_CONCURRENCY;
  operatorArgs.forEach((arg, i) => {
    if (arg.startsWith('--fanout-concurrency=')) value = arg.slice('--fanout-concurrency='.length);
    else if (arg === '--fanout-concurrency') value = operatorArgs[i + 1];
  });
  return value === undefined ? 16 : positive('fanout-concurrency', value);
}

function stamp(date: Date): string {
  return date
    .toISOString()
    .replace(/[:.]/g, '-')
    .replace(/-\d{3}Z$/, 'Z');
}

function git(args: string[]): string {
  try {
    return execFileSync('git', args, { cwd: repoRoot, encoding: 'utf8' }).trim();
  } catch {
    return '';
  }
}

function build(log: (line: string) => void): void {
  log('[bench] npm run build');
  const result = spawnSync('npm', ['run', '--silent', 'build'], {
    cwd: repoRoot,
    stdio: ['ignore', 'inherit', 'inherit'],
  });
  if (result.status !== 0) throw new Error(`npm run build failed (exit ${result.status})`);
  if (!existsSync(join(repoRoot, 'dist', 'main.js'))) throw new Error('dist/main.js is missing');
}

async function main(): Promise<number> {
  let options: Options | 'help';
  try {
    options = parseOptions(process.argv.slice(2));
  } catch (error) {
    process.stderr.write(`${error instanceof Error ? error.message : String(error)}\n\n${USAGE}\n`);
    return 2;
  }
  if (options === 'help') {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  const log = (line: string) => process.stderr.write(`${line}\n`);
  const mode = options.scale ? 'scale' : options.full ? 'full' : 'quick';
  // The 1-minute load average every 30 s: on a shared machine it says how far to trust a figure.
  const loadSamples: Array<{ at: string; load1: number }> = [];
  const sampleLoad = () =>
    loadSamples.push({ at: new Date().toISOString(), load1: loadavg()[0] ?? Number.NaN });
  sampleLoad();
  const loadTimer = setInterval(sampleLoad, 30_000);
  loadTimer.unref();
  const startedAt = new Date();
  const runStamp = stamp(startedAt);
  const cores = availableParallelism();
  const loadStart = loadavg();
  log(
    `[bench] ${mode} run on ${cores} cores (${cpus()[0]?.model ?? 'unknown CPU'}), load average ${loadStart.map((l) => l.toFixed(2)).join(' ')}`,
  );
  if ((loadStart[0] ?? 0) > cores * 0.5) {
    log(
      '[bench] warning: the machine is busy; numbers will be noisy. Re-take them on a quiet machine.',
    );
  }
  if (options.build) build(log);

  // By default what the production Deployment runs: its NODE_OPTIONS and its command's flags.
  let nodeOptions = options.operatorNodeArgs ?? deploymentEnv().NODE_OPTIONS;
  log(`[bench] operator NODE_OPTIONS: ${nodeOptions || '(none)'}`);
  const nodeFlags =
    options.operatorNodeFlags === undefined
      ? deploymentNodeFlags()
      : options.operatorNodeFlags.split(/\s+/).filter((a) => a !== '');
  log(`[bench] operator node flags: ${nodeFlags.join(' ') || '(none)'}`);
  let profileDir: string | undefined;
  if (nodeOptions?.includes('--cpu-prof') || nodeOptions?.includes('--heap-prof')) {
    profileDir = join(resultsDir, 'profiles', runStamp);
    mkdirSync(profileDir, { recursive: true });
    if (nodeOptions.includes('--cpu-prof') && !nodeOptions.includes('--cpu-prof-dir')) {
      nodeOptions += ` --cpu-prof-dir=${profileDir}`;
    }
    if (nodeOptions.includes('--heap-prof') && !nodeOptions.includes('--heap-prof-dir')) {
      nodeOptions += ` --heap-prof-dir=${profileDir}`;
    }
  }
  const ctx: BenchContext = {
    log,
    operatorArgs: options.operatorArgs,
    operatorNodeOptions: nodeOptions,
    operatorNodeFlags: nodeFlags,
    concurrency: fanoutConcurrency(options.operatorArgs),
    floorWatches: options.floorWatches,
  };

  const results: ScenarioResult[] = [];
  const want = (s: Scenario) => !options.scale && options.scenarios.has(s);
  const scale = options.scale;
  if (scale) {
    const wantScale = (s: ScaleScenario) => scale.scenarios.has(s);
    if (wantScale('multi')) {
      results.push(
        ...(await runMultiCredential(ctx, {
          namespaces: scale.multiNamespaces,
          credentials: scale.multiCredentials,
          shared: scale.multiShared,
          seed: scale.multiSeed,
          pairs: scale.pairs,
        })),
      );
    }
    if (
      wantScale('fanout') ||
      wantScale('onboarding') ||
      wantScale('memory') ||
      wantScale('idle')
    ) {
      results.push(
        ...(await runScaleGroup(ctx, {
          n: scale.namespaces,
          serviceAccounts: scale.serviceAccounts,
          pairs: scale.pairs,
          fanout: wantScale('fanout'),
          onboarding: wantScale('onboarding') ? scale.onboarding : 0,
          memory: wantScale('memory'),
          unrelatedSecrets: scale.unrelated,
          unrelatedConfigMaps: scale.configMaps,
          unrelatedBytes: 1024,
          idleSeconds: wantScale('idle') ? scale.idleWindow : 0,
        })),
      );
    }
  }
  const largest = options.sizes[options.sizes.length - 1];
  if (want('fanout') || want('rotation') || want('steady')) {
    for (const n of options.sizes) {
      const steady = want('steady') && n === largest;
      if (!want('fanout') && !want('rotation') && !steady) continue;
      results.push(
        ...(await runFanoutGroup(ctx, {
          n,
          fanout: want('fanout'),
          rotation: want('rotation'),
          steady,
          steadySeconds: options.steadySeconds,
        })),
      );
    }
  }
  if (want('onboarding')) results.push(...(await runOnboarding(ctx, options.onboarding)));
  if (want('memory')) {
    results.push(
      ...(await runMemory(ctx, {
        n: options.memoryN,
        unrelatedSecrets: options.unrelated,
        unrelatedNamespaces: Math.max(1, Math.ceil(options.unrelated / 100)),
        unrelatedBytes: 1024,
        repeats: options.memoryRepeats,
      })),
    );
  }
  if (want('webhook')) {
    results.push(
      ...(await runWebhook(ctx, {
        pods: options.webhookPods,
        warmup: 200,
        burst: options.webhookBurst,
      })),
    );
  }

  const finishedAt = new Date();
  clearInterval(loadTimer);
  sampleLoad();
  const loads = loadSamples.map((l) => l.load1);
  const targets = checkTargets(results);
  const loadEnd = loadavg();
  const out = process.stdout;
  out.write(
    `\nregcred-operator benchmark (${mode}): ${cores} cores, ${(totalmem() / 2 ** 30).toFixed(1)} GiB, node ${process.version}, load average ${loadStart[0]?.toFixed(2)} at start, ${loadEnd[0]?.toFixed(2)} at end, ${((finishedAt.getTime() - startedAt.getTime()) / 1000).toFixed(0)} s\n`,
  );
  out.write(
    `operator: node ${[...nodeFlags, 'dist/main.js'].join(' ')} ${options.operatorArgs.join(' ') || '(default flags)'}, NODE_OPTIONS ${nodeOptions || '(none)'}; floor concurrency ${ctx.concurrency}${ctx.floorWatches ? ', with the watches a cache-based client holds (--floor-watches)' : ''}\n\n`,
  );
  out.write(
    `load average (1 min, every 30 s): min ${Math.min(...loads).toFixed(2)}, mean ${(loads.reduce((a, b) => a + b, 0) / loads.length).toFixed(2)}, max ${Math.max(...loads).toFixed(2)} over ${loads.length} samples\n\n`,
  );
  out.write(`${resultsTable(results)}\n\n`);
  out.write(
    'wall: operator, watch-observed (fan-out: last namespace with Secret and SA entry; rotation: last Secret with the new bytes; onboarding: whole burst; steady: idle window; resync: restart to idle). writes sec/sa/rc: POST/PUT/PATCH/DELETE on secrets / serviceaccounts / registrycredentials (apiserver_request_total delta, all clients). GET+LIST: on secrets, serviceaccounts, namespaces.\n\n',
  );
  out.write(
    `API requests (apiserver_request_total delta, WATCH omitted):\n${requestsSummary(results)}\n\n`,
  );
  out.write(`${targetsTable(targets)}\n`);

  const file = options.out ?? join(resultsDir, `${runStamp}-${mode}.json`);
  mkdirSync(join(file, '..'), { recursive: true });
  const report = {
    startedAt: startedAt.toISOString(),
    finishedAt: finishedAt.toISOString(),
    durationSeconds: (finishedAt.getTime() - startedAt.getTime()) / 1000,
    mode,
    loadAverageSamples: loadSamples,
    options: { ...options, scenarios: [...options.scenarios] },
    machine: {
      cores,
      cpuModel: cpus()[0]?.model,
      memoryGiB: totalmem() / 2 ** 30,
      node: process.version,
      platform: process.platform,
      loadAverageStart: loadStart,
      loadAverageEnd: loadEnd,
    },
    git: { commit: git(['rev-parse', 'HEAD']), dirty: git(['status', '--porcelain']) !== '' },
    operator: {
      args: options.operatorArgs,
      nodeOptions,
      nodeFlags,
      floorConcurrency: ctx.concurrency,
      floorWatches: ctx.floorWatches,
    },
    results,
    targets,
  };
  writeFileSync(file, `${JSON.stringify(report, null, 2)}\n`);
  out.write(`\nJSON: ${relative(process.cwd(), file)}\n`);
  if (profileDir)
    out.write(
      `profiles: ${relative(process.cwd(), profileDir)} (node bench/profile-summary.ts <file>)\n`,
    );
  const failed = results.some((r) => r.error);
  return failed ? 1 : 0;
}

main().then(
  (code) => process.exit(code),
  (error: unknown) => {
    process.stderr.write(
      `bench: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`,
    );
    process.exit(1);
  },
);

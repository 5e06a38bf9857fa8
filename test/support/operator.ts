// Runs the operator as its own process, as in production, against a test control plane: its
// logs are kept (tests check them for leaks), its health and metrics endpoints are reachable,
// and tests can stop, kill and restart it.
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { request } from 'node:http';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort } from './controlplane.ts';
import { waitUntil } from './wait.ts';

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');

let built = false;

/**
 * Builds dist/ (npm run build: the bundle the image runs) once per test process. Tests that run
 * the operator `fromDist` call it first, so they never run a stale bundle.
 */
export function buildDist(): void {
  if (built) return;
  execFileSync(process.execPath, [join(repoRoot, 'scripts', 'build.ts')], {
    cwd: repoRoot,
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  built = true;
}

export interface OperatorProcessOptions {
  kubeconfigPath: string;
  namespace?: string;
  sourceNamespaces?: string[];
  /** Extra flags, e.g. ['--workers=8']. */
  args?: string[];
  env?: NodeJS.ProcessEnv;
  logLevel?: 'error' | 'warn' | 'info' | 'debug';
  /** Elect a leader on a Lease (default false: one operator per test run). */
  leaderElect?: boolean;
  /** Holder identity in the Lease. */
  identity?: string;
  /** Run from the built dist/ (as the image does) instead of src/; see buildDist(). */
  fromDist?: boolean;
  /** Flags for node itself, before the script (e.g. deploymentNodeFlags()). */
  nodeFlags?: readonly string[];
}

/** Every line any operator process printed in this test run: the leak checks read it. */
export const allOperatorLogs: string[] = [];

export class OperatorProcess {
  readonly options: OperatorProcessOptions;
  metricsPort = 0;
  healthPort = 0;
  logs: string[] = [];
  /** Date.now() when the process was spawned. */
  startedAt = 0;
  private child?: ChildProcess;
  private exitPromise?: Promise<number | null>;

  constructor(options: OperatorProcessOptions) {
    this.options = options;
  }

  get pid(): number | undefined {
    return this.child?.pid;
  }

  get running(): boolean {
    return (
      this.child !== undefined && this.child.exitCode === null && this.child.signalCode === null
    );
  }

  /** Starts the process and waits until /readyz passes (caches synced). */
  async start(): Promise<this> {
    await this.launch();
    await this.waitReady();
    return this;
  }

  /**
   * Spawns the process without waiting for readiness: for tests that watch /readyz turn from
   * 503 to 200, or that expect the operator never to become ready.
   */
  async launch(): Promise<this> {
    this.metricsPort = await freePort();
    this.healthPort = await freePort();
    const o = this.options;
    const entry = o.fromDist ? join(repoRoot, 'dist', 'main.js') : join(repoRoot, 'src', 'main.ts');
    const args = [
      ...(o.nodeFlags ?? []),
      entry,
      `--kubeconfig=${o.kubeconfigPath}`,
      `--namespace=${o.namespace ?? 'regcred-system'}`,
      `--metrics-address=127.0.0.1:${this.metricsPort}`,
      `--health-address=127.0.0.1:${this.healthPort}`,
      `--log-level=${o.logLevel ?? 'debug'}`,
      `--leader-elect=${o.leaderElect === true}`,
      ...(o.identity ? [`--identity=${o.identity}`] : []),
      ...(o.sourceNamespaces ? [`--source-namespaces=${o.sourceNamespaces.join(',')}`] : []),
      ...(o.args ?? []),
    ];
    this.startedAt = Date.now();
    const child = spawn(process.execPath, args, {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, ...o.env },
    });
    this.child = child;
    let partial = '';
    const onData = (chunk: Buffer) => {
      partial += chunk.toString();
      const lines = partial.split('\n');
      partial = lines.pop() ?? '';
      for (const line of lines) {
        this.logs.push(line);
        allOperatorLogs.push(line);
        if (process.env.REGCRED_TEST_OPERATOR_LOGS) process.stderr.write(`[operator] ${line}\n`);
      }
    };
    child.stdout?.on('data', onData);
    child.stderr?.on('data', onData);
    this.exitPromise = new Promise((resolveExit) => child.on('exit', (code) => resolveExit(code)));
    return this;
  }

  /** Waits until /readyz passes (caches synced); throws if the process exits first. */
  async waitReady(timeoutMs = 60_000): Promise<this> {
    await waitUntil(
      `operator /readyz on port ${this.healthPort}`,
      async () => {
        if (!this.running)
          throw new Error(`operator exited; last logs:\n${this.logs.slice(-20).join('\n')}`);
        return (await this.httpGet(this.healthPort, '/readyz')).status === 200;
      },
      { timeoutMs, intervalMs: 50 },
    );
    return this;
  }

  httpGet(port: number, path: string): Promise<{ status: number; body: string }> {
    return new Promise((resolveGet, reject) => {
      const req = request({ host: '127.0.0.1', port, path, timeout: 5_000 }, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => {
          body += c;
        });
        res.on('end', () => resolveGet({ status: res.statusCode ?? 0, body }));
      });
      req.on('timeout', () => req.destroy(new Error('timeout')));
      req.on('error', reject);
      req.end();
    });
  }

  async metrics(): Promise<string> {
    return (await this.httpGet(this.metricsPort, '/metrics')).body;
  }

  /** The /metrics text, parsed into samples. */
  async samples(): Promise<MetricSample[]> {
    return parseMetrics(await this.metrics());
  }

  /**
   * The sum of the samples named `name` whose labels include `labels`; undefined when there is
   * no such sample (a labelled counter that was never incremented, or a series removed).
   */
  async metric(name: string, labels: Record<string, string> = {}): Promise<number | undefined> {
    return metricSum(await this.samples(), name, labels);
  }

  /** GET /healthz or /readyz: the HTTP status, or 0 when nothing answers. */
  async probe(path: '/healthz' | '/readyz'): Promise<number> {
    try {
      return (await this.httpGet(this.healthPort, path)).status;
    } catch {
      return 0;
    }
  }

  /**
   * A full garbage collection in the operator process, through its inspector: for a process
   * started with `--inspect=127.0.0.1:0` among its nodeFlags (the port it printed is read
   * from the logs). A memory test measures what the process keeps, not garbage V8 has not
   * collected yet: when it does so depends on its heuristics, not on the operator.
   */
  async collectGarbage(timeoutMs = 30_000): Promise<void> {
    const url = this.logs
      .map((line) => /Debugger listening on (ws:\/\/\S+)/.exec(line)?.[1])
      .findLast((u) => u !== undefined);
    if (!url) throw new Error('the operator was not started with --inspect=127.0.0.1:0');
    const socket = new WebSocket(url);
    try {
      await new Promise<void>((resolveGc, reject) => {
        const timer = setTimeout(
          () => reject(new Error(`no answer from the inspector within ${timeoutMs} ms`)),
          timeoutMs,
        );
        const settle = (error?: Error) => {
          clearTimeout(timer);
          if (error) reject(error);
          else resolveGc();
        };
        socket.addEventListener('open', () =>
          socket.send(JSON.stringify({ id: 1, method: 'HeapProfiler.collectGarbage' })),
        );
        socket.addEventListener('message', (event) => {
          const answer = JSON.parse(String(event.data)) as { id?: number; error?: unknown };
          if (answer.id !== 1) return;
          settle(answer.error ? new Error(JSON.stringify(answer.error)) : undefined);
        });
        socket.addEventListener('error', () => settle(new Error(`inspector ${url}: failed`)));
      });
    } finally {
      socket.close();
    }
  }

  /** The exit code once the process has exited (null: killed by a signal or still running). */
  get exitCode(): number | null {
    return this.child?.exitCode ?? null;
  }

  /** SIGTERM, then wait for exit; resolves with the exit code. */
  async stop(timeoutMs = 40_000): Promise<number | null> {
    if (!this.child || !this.running) return this.child?.exitCode ?? null;
    this.child.kill('SIGTERM');
    const timer = setTimeout(() => this.child?.kill('SIGKILL'), timeoutMs);
    const code = await this.exitPromise;
    clearTimeout(timer);
    return code ?? null;
  }

  /** SIGKILL: a crash, no cleanup. */
  async kill(): Promise<void> {
    if (!this.child || !this.running) return;
    this.child.kill('SIGKILL');
    await this.exitPromise;
  }
}

const running = new Set<OperatorProcess>();
process.on('exit', () => {
  for (const op of running) if (op.running) op.pid && process.kill(op.pid, 'SIGKILL');
});

export async function startOperator(options: OperatorProcessOptions): Promise<OperatorProcess> {
  const op = new OperatorProcess(options);
  running.add(op);
  return op.start();
}

/** Spawns an operator without waiting for readiness (see OperatorProcess.launch). */
export async function launchOperator(options: OperatorProcessOptions): Promise<OperatorProcess> {
  const op = new OperatorProcess(options);
  running.add(op);
  return op.launch();
}

/** One sample of the Prometheus text format. */
export interface MetricSample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

const SAMPLE_LINE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)(?:\s+-?\d+)?$/;
const LABEL_PAIR = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;

function sampleValue(raw: string): number {
  if (raw === '+Inf') return Number.POSITIVE_INFINITY;
  if (raw === '-Inf') return Number.NEGATIVE_INFINITY;
  return Number(raw);
}

/**
 * Parses the Prometheus text exposition format (comments and blank lines skipped); `only`
 * keeps just the samples of those metric names (an API server's /metrics has thousands).
 */
export function parseMetrics(text: string, only?: ReadonlySet<string>): MetricSample[] {
  const samples: MetricSample[] = [];
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    if (only && !only.has(line.slice(0, line.search(/[{\s]/)))) continue;
    const match = SAMPLE_LINE.exec(line);
    if (!match) continue;
    const labels: Record<string, string> = {};
    for (const pair of (match[2] ?? '').matchAll(LABEL_PAIR)) {
      labels[pair[1] ?? ''] = (pair[2] ?? '').replace(/\\(.)/g, (_m, c: string) =>
        c === 'n' ? '\n' : c,
      );
    }
    samples.push({ name: match[1] ?? '', labels, value: sampleValue(match[3] ?? '') });
  }
  return samples;
}

/** The sum of the samples named `name` whose labels include `labels`; undefined when none. */
export function metricSum(
  samples: readonly MetricSample[],
  name: string,
  labels: Record<string, string> = {},
): number | undefined {
  let sum: number | undefined;
  for (const sample of samples) {
    if (sample.name !== name) continue;
    if (!Object.entries(labels).every(([k, v]) => sample.labels[k] === v)) continue;
    sum = (sum ?? 0) + sample.value;
  }
  return sum;
}

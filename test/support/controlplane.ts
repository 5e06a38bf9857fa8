// A local control plane: etcd, kube-apiserver and a kube-controller-manager running only the
// controllers an operator test needs, on free loopback ports, the way controller-runtime's
// envtest does. Used by the integration tests, `npm run dev` and the benchmark.
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { createWriteStream, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { waitExitedSync } from './processes.ts';

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');

/** The controllers an operator test needs; nothing else runs (no nodes, no pods scheduled). */
export const CONTROLLERS = [
  'serviceaccount-controller',
  'serviceaccount-token-controller',
  'namespace-controller',
  'garbage-collector-controller',
  'root-ca-certificate-publisher-controller',
  'clusterrole-aggregation-controller',
];

export interface ControlPlaneOptions {
  /** Print component logs to stderr as well as to files (default: only files). */
  verbose?: boolean;
  /** Progress lines (provisioning, startup); default writes to stderr. */
  log?: (line: string) => void;
  /** Extra kube-apiserver flags, e.g. ['--audit-log-path=...']. */
  apiServerFlags?: string[];
  /** Run kube-controller-manager (default true). */
  controllerManager?: boolean;
  /** The controllers kube-controller-manager runs (default CONTROLLERS). */
  controllers?: string[];
  /** More bearer tokens the API server accepts, e.g. a kubelet's `system:node:<name>`. */
  tokens?: StaticToken[];
}

/** A line of the API server's token file. */
export interface StaticToken {
  token: string;
  user: string;
  uid: string;
  groups: string[];
}

/**
 * What every control plane started from now on adds to its own options (flags, controllers and
 * tokens appended): lets a suite's root hook (the e2e suite's node) shape the plane another root
 * hook starts.
 */
export const controlPlaneDefaults: Pick<
  ControlPlaneOptions,
  'apiServerFlags' | 'controllers' | 'tokens'
> = {};

export interface KubectlResult {
  code: number;
  stdout: string;
  stderr: string;
}

interface Component {
  name: string;
  binary: string;
  args: string[];
  process?: ChildProcess;
  exited?: Promise<void>;
}

const live = new Set<ControlPlane>();
let exitHookInstalled = false;

/** Kills every live control plane synchronously; runs on process exit whatever the cause. */
function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on('exit', () => {
    for (const plane of live) plane.killNow();
  });
  // `on`, not `once`: a listener that removed itself would tell the node harness's handler
  // (test/support/node.ts), which runs next, that it is alone, and it would exit the process
  // before the planes stopped (their components then outlived it).
  let signalled = false;
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.on(signal, () => {
      if (signalled) return;
      signalled = true;
      void Promise.all([...live].map((plane) => plane.stop())).finally(() =>
        process.exit(signal === 'SIGINT' ? 130 : 143),
      );
    });
  }
}

export async function freePort(): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const server = createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => resolvePort(port));
    });
  });
}

function httpGet(
  url: string,
  options: { ca?: Buffer; headers?: Record<string, string> },
): Promise<{ status: number; body: string }> {
  return new Promise((resolveGet, reject) => {
    const send = url.startsWith('https:') ? httpsRequest : httpRequest;
    const req = send(url, { ...options, method: 'GET', timeout: 5_000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        body += chunk;
      });
      res.on('end', () => resolveGet({ status: res.statusCode ?? 0, body }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`GET ${url} timed out`)));
    req.on('error', reject);
    req.end();
  });
}

/** Runs scripts/provision-controlplane.sh: the folder holding the binaries, built on first use. */
export async function provisionBinaries(log: (line: string) => void): Promise<string> {
  return new Promise((resolveDir, reject) => {
    const child = spawn('bash', [join(repoRoot, 'scripts', 'provision-controlplane.sh')], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    child.stdout.on('data', (chunk: Buffer) => {
      stdout += chunk.toString();
    });
    child.stderr.on('data', (chunk: Buffer) => {
      for (const line of chunk.toString().split('\n')) if (line.trim()) log(line);
    });
    child.on('error', reject);
    child.on('exit', (code) => {
      const dir = stdout.trim().split('\n').pop() ?? '';
      if (code === 0 && dir) resolveDir(dir);
      else reject(new Error(`provisioning the control plane failed (exit ${code}); see above`));
    });
  });
}

export class ControlPlane {
  readonly dir: string;
  readonly kubeconfigPath: string;
  readonly adminToken: string;
  readonly options: ControlPlaneOptions;
  binDir = '';
  etcdPort = 0;
  apiPort = 0;
  private readonly components = new Map<string, Component>();
  private baseApiServerArgs: string[] = [];
  private readonly log: (line: string) => void;
  private stopping?: Promise<void>;

  constructor(options: ControlPlaneOptions = {}) {
    this.options = {
      ...options,
      apiServerFlags: [
        ...(controlPlaneDefaults.apiServerFlags ?? []),
        ...(options.apiServerFlags ?? []),
      ],
      controllers: [
        ...new Set([
          ...(options.controllers ?? CONTROLLERS),
          ...(controlPlaneDefaults.controllers ?? []),
        ]),
      ],
      tokens: [...(controlPlaneDefaults.tokens ?? []), ...(options.tokens ?? [])],
    };
    this.log = options.log ?? ((line) => process.stderr.write(`${line}\n`));
    this.dir = mkdtempSync(join(tmpdir(), 'regcred-controlplane-'));
    this.kubeconfigPath = join(this.dir, 'kubeconfig');
    this.adminToken = randomBytes(24).toString('hex');
  }

  get server(): string {
    return `https://127.0.0.1:${this.apiPort}`;
  }

  get caFile(): string {
    return join(this.dir, 'certs', 'apiserver.crt');
  }

  /** Starts etcd, kube-apiserver and (unless disabled) kube-controller-manager; waits for /readyz. */
  async start(): Promise<this> {
    installExitHook();
    live.add(this);
    try {
      const started = Date.now();
      this.binDir = await provisionBinaries(this.log);
      this.writeIdentities();
      this.etcdPort = await freePort();
      this.apiPort = await freePort();
      this.defineComponents();
      await this.startComponent('etcd');
      await this.waitFor('etcd health', () => this.etcdHealthy(), 30_000);
      await this.startComponent('kube-apiserver');
      await this.waitForApiServer(60_000);
      this.writeKubeconfig();
      if (this.options.controllerManager !== false)
        await this.startComponent('kube-controller-manager');
      this.log(
        `[controlplane] ready at ${this.server} in ${Date.now() - started} ms (${this.dir})`,
      );
      return this;
    } catch (error) {
      await this.stop();
      throw error;
    }
  }

  private writeIdentities(): void {
    const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    writeFileSync(join(this.dir, 'sa.key'), privateKey.export({ type: 'pkcs1', format: 'pem' }));
    writeFileSync(join(this.dir, 'sa.pub'), publicKey.export({ type: 'spki', format: 'pem' }));
    // An admin identity in system:masters; tests that need a lesser identity impersonate.
    const tokens: StaticToken[] = [
      { token: this.adminToken, user: 'admin', uid: 'admin-uid', groups: ['system:masters'] },
      ...(this.options.tokens ?? []),
    ];
    writeFileSync(
      join(this.dir, 'tokens.csv'),
      tokens
        .map(({ token, user, uid, groups }) => `${token},${user},${uid},"${groups.join(',')}"\n`)
        .join(''),
      { mode: 0o600 },
    );
  }

  private defineComponents(): void {
    const dir = this.dir;
    this.components.set('etcd', {
      name: 'etcd',
      binary: join(this.binDir, 'etcd'),
      args: [
        `--data-dir=${join(dir, 'etcd')}`,
        `--listen-client-urls=http://127.0.0.1:${this.etcdPort}`,
        `--advertise-client-urls=http://127.0.0.1:${this.etcdPort}`,
        '--listen-peer-urls=http://127.0.0.1:0',
        '--unsafe-no-fsync=true',
        '--quota-backend-bytes=8589934592',
        '--log-level=warn',
      ],
    });
    this.components.set('kube-apiserver', {
      name: 'kube-apiserver',
      binary: join(this.binDir, 'kube-apiserver'),
      args: [
        `--etcd-servers=http://127.0.0.1:${this.etcdPort}`,
        `--cert-dir=${join(dir, 'certs')}`,
        `--secure-port=${this.apiPort}`,
        '--bind-address=127.0.0.1',
        '--advertise-address=127.0.0.1',
        '--service-cluster-ip-range=10.0.0.0/24',
        // No Endpoints for the kubernetes Service: a loopback address is refused there.
        '--endpoint-reconciler-type=none',
        '--authorization-mode=RBAC',
        `--token-auth-file=${join(dir, 'tokens.csv')}`,
        '--service-account-issuer=https://kubernetes.default.svc.cluster.local',
        `--service-account-key-file=${join(dir, 'sa.pub')}`,
        `--service-account-signing-key-file=${join(dir, 'sa.key')}`,
        // The operator's burst fan-out and the benchmark write thousands of objects at once.
        '--max-requests-inflight=1000',
        '--max-mutating-requests-inflight=500',
      ],
    });
    this.baseApiServerArgs = this.components.get('kube-apiserver')?.args ?? [];
    this.setApiServerArgs(this.options.apiServerFlags ?? []);
    this.components.set('kube-controller-manager', {
      name: 'kube-controller-manager',
      binary: join(this.binDir, 'kube-controller-manager'),
      args: [
        `--kubeconfig=${this.kubeconfigPath}`,
        '--leader-elect=false',
        '--secure-port=0',
        `--service-account-private-key-file=${join(dir, 'sa.key')}`,
        `--root-ca-file=${this.caFile}`,
        `--controllers=${(this.options.controllers ?? CONTROLLERS).join(',')}`,
        '--use-service-account-credentials=false',
        '--concurrent-serviceaccount-token-syncs=5',
        '--concurrent-namespace-syncs=10',
        '--kube-api-qps=200',
        '--kube-api-burst=400',
      ],
    });
  }

  private async startComponent(name: string): Promise<void> {
    const component = this.components.get(name);
    if (!component) throw new Error(`unknown component ${name}`);
    const logFile = join(this.dir, `${name}.log`);
    const out = createWriteStream(logFile, { flags: 'a' });
    const child = spawn(component.binary, component.args, { stdio: ['ignore', 'pipe', 'pipe'] });
    child.stdout?.pipe(out, { end: false });
    child.stderr?.pipe(out, { end: false });
    if (this.options.verbose) {
      child.stderr?.on('data', (chunk: Buffer) => process.stderr.write(`[${name}] ${chunk}`));
    }
    component.process = child;
    component.exited = new Promise((resolveExit) => {
      child.on('exit', (code, signal) => {
        out.end();
        if (!this.stopping && component.process === child) {
          this.log(
            `[controlplane] ${name} exited (code ${code}, signal ${signal}); log ${logFile}`,
          );
        }
        resolveExit();
      });
      child.on('error', (error) => {
        this.log(`[controlplane] ${name} failed to start: ${error.message}`);
        resolveExit();
      });
    });
  }

  private async stopComponent(name: string, graceMs = 10_000): Promise<void> {
    const component = this.components.get(name);
    const child = component?.process;
    if (!component || !child || child.exitCode !== null || child.signalCode !== null) return;
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
    await component.exited;
    clearTimeout(timer);
    component.process = undefined;
  }

  /**
   * The API server's own flags with `flags` added; a flag in `flags` replaces the default of the
   * same name (so --authorization-mode=Node,RBAC replaces --authorization-mode=RBAC).
   */
  private setApiServerArgs(flags: string[]): void {
    const component = this.components.get('kube-apiserver');
    if (!component) throw new Error('the control plane was not started');
    const name = (flag: string) => flag.split('=')[0];
    const overridden = new Set(flags.map(name));
    component.args = [
      ...this.baseApiServerArgs.filter((arg) => !overridden.has(name(arg))),
      ...flags,
    ];
    this.options.apiServerFlags = [...flags];
  }

  /**
   * Restarts the API server with `flags` in place of the extra flags it was started with (the
   * ones from apiServerFlags and controlPlaneDefaults), e.g. to switch an admission plugin on or
   * off; resolves once it is ready again.
   */
  async restartApiServerWithFlags(flags: string[]): Promise<void> {
    this.setApiServerArgs(flags);
    await this.restartApiServer();
  }

  /** The extra kube-apiserver flags it runs with now. */
  get apiServerFlags(): string[] {
    return [...(this.options.apiServerFlags ?? [])];
  }

  /** Stops the API server (etcd stays up) and starts it again on the same port. */
  async restartApiServer(downMs = 0): Promise<void> {
    await this.stopComponent('kube-apiserver');
    if (downMs > 0) await new Promise((r) => setTimeout(r, downMs));
    await this.startComponent('kube-apiserver');
    await this.waitForApiServer(60_000);
  }

  async stopApiServer(): Promise<void> {
    await this.stopComponent('kube-apiserver');
  }

  async startApiServer(): Promise<void> {
    await this.startComponent('kube-apiserver');
    await this.waitForApiServer(60_000);
  }

  /** Stops etcd and starts it again on the same port and data; the API server reconnects. */
  async restartEtcd(): Promise<void> {
    await this.stopComponent('etcd');
    await this.startComponent('etcd');
    await this.waitFor('etcd health', () => this.etcdHealthy(), 30_000);
  }

  /** Freezes (SIGSTOP) or thaws (SIGCONT) the API server: a hung server, not a dead one. */
  signalApiServer(signal: 'SIGSTOP' | 'SIGCONT'): void {
    this.components.get('kube-apiserver')?.process?.kill(signal);
  }

  /** Process ids of the running components, for tests that check nothing is left behind. */
  pids(): number[] {
    return this.processes().map((p) => p.pid);
  }

  /** The running components and their process ids. */
  processes(): Array<{ name: string; pid: number }> {
    return [...this.components.entries()].flatMap(([name, c]) =>
      c.process?.pid === undefined ? [] : [{ name, pid: c.process.pid }],
    );
  }

  componentLog(name: string): string {
    try {
      return readFileSync(join(this.dir, `${name}.log`), 'utf8');
    } catch {
      return '';
    }
  }

  private async etcdHealthy(): Promise<boolean> {
    try {
      const res = await httpGet(`http://127.0.0.1:${this.etcdPort}/health`, {});
      return res.status === 200 && res.body.includes('"health":"true"');
    } catch {
      return false;
    }
  }

  private apiGet(path: string): Promise<{ status: number; body: string }> {
    return httpGet(`${this.server}${path}`, {
      ca: readFileSync(this.caFile),
      headers: { authorization: `Bearer ${this.adminToken}` },
    });
  }

  private async waitForApiServer(timeoutMs: number): Promise<void> {
    await this.waitFor(
      'kube-apiserver /readyz',
      async () => {
        try {
          return (await this.apiGet('/readyz')).status === 200;
        } catch {
          return false;
        }
      },
      timeoutMs,
    );
  }

  /** GET a path on the API server as admin (e.g. /metrics, /version). */
  async get(path: string): Promise<string> {
    const { status, body } = await this.apiGet(path);
    if (status !== 200) throw new Error(`GET ${path}: HTTP ${status}: ${body.slice(0, 500)}`);
    return body;
  }

  private async waitFor(
    what: string,
    check: () => Promise<boolean>,
    timeoutMs: number,
  ): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      if (await check()) return;
      const dead = [...this.components.values()].find(
        (c) => c.process && (c.process.exitCode !== null || c.process.signalCode !== null),
      );
      if (dead) {
        throw new Error(
          `waiting for ${what}: ${dead.name} exited; last log lines:\n${this.componentLog(dead.name).split('\n').slice(-25).join('\n')}`,
        );
      }
      if (Date.now() > deadline)
        throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  private writeKubeconfig(): void {
    this.writeKubeconfigFor(this.kubeconfigPath, 'admin', this.adminToken);
  }

  /** Writes a kubeconfig for this cluster authenticating with `token`; returns its path. */
  writeKubeconfigFor(path: string, user: string, token: string): string {
    const ca = readFileSync(this.caFile).toString('base64');
    writeFileSync(
      path,
      [
        'apiVersion: v1',
        'kind: Config',
        'clusters:',
        '- name: regcred-local',
        '  cluster:',
        `    server: ${this.server}`,
        `    certificate-authority-data: ${ca}`,
        'users:',
        `- name: ${user}`,
        '  user:',
        `    token: ${token}`,
        'contexts:',
        '- name: regcred-local',
        `  context: {cluster: regcred-local, user: ${user}}`,
        'current-context: regcred-local',
        '',
      ].join('\n'),
      { mode: 0o600 },
    );
    return path;
  }

  /** Runs the provisioned kubectl against this control plane. Never throws on a non-zero exit. */
  kubectl(
    args: string[],
    options: { input?: string; timeoutMs?: number } = {},
  ): Promise<KubectlResult> {
    return new Promise((resolveRun) => {
      const child = execFile(
        join(this.binDir, 'kubectl'),
        [`--kubeconfig=${this.kubeconfigPath}`, ...args],
        { timeout: options.timeoutMs ?? 60_000, maxBuffer: 64 * 1024 * 1024 },
        (error, stdout, stderr) => {
          const code = error ? (typeof error.code === 'number' ? error.code : 1) : 0;
          resolveRun({ code, stdout, stderr });
        },
      );
      if (options.input !== undefined) child.stdin?.end(options.input);
      else child.stdin?.end();
    });
  }

  /** Stops everything and removes the temp dir. Safe to call more than once. */
  stop(): Promise<void> {
    this.stopping ??= (async () => {
      for (const name of ['kube-controller-manager', 'kube-apiserver', 'etcd']) {
        await this.stopComponent(name);
      }
      live.delete(this);
      rmSync(this.dir, { recursive: true, force: true });
    })();
    return this.stopping;
  }

  /** Last resort on process exit: no awaiting is possible there, so it blocks (bounded). */
  killNow(): void {
    const pids: number[] = [];
    for (const component of this.components.values()) {
      const child = component.process;
      if (child?.pid === undefined || child.exitCode !== null || child.signalCode !== null)
        continue;
      child.kill('SIGKILL');
      pids.push(child.pid);
    }
    // Killed is not gone yet: a process exiting now would outlive this one for a moment.
    waitExitedSync(pids);
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** Starts a control plane; the caller owns stop(). */
export async function startControlPlane(options: ControlPlaneOptions = {}): Promise<ControlPlane> {
  return new ControlPlane(options).start();
}

// A real node for a test suite: a kubelet (built from the control plane's wrapper module) and a
// containerd 2.x (from the Go module proxy) with runc from the system, joined to a local control
// plane as system:node:<name>. Everything lives under one temp folder: containerd's root, state,
// socket and registry trust (certs.d), runc's state, the kubelet's root, pod logs and plugins.
// Pods run on the host's network, so no CNI, netns or interface is made; with cgroupsPerQOS off
// (needed on these cgroup v1 machines) the kubelet names no cgroup parent and containerd puts
// each container in /k8s.io/<container id>: the node knows its cgroups by the container ids in
// its own state. The sandbox image is the static pause binary provision.sh builds, imported into
// containerd: nothing comes from the internet.
//
// Teardown leaves no process, mount, cgroup, netns or interface behind, on stop(), when start()
// fails, and on SIGINT/SIGTERM or any process exit (a synchronous sweep: it needs neither the
// API server nor containerd). ../shared/design/NODE.md has the facts this is built on.
import { type ChildProcess, execFile, execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import {
  createWriteStream,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  rmdirSync,
  rmSync,
  statSync,
  unlinkSync,
  writeFileSync,
} from 'node:fs';
import { request } from 'node:http';
import { networkInterfaces } from 'node:os';
import { join } from 'node:path';
import { type ControlPlane, freePort, type StaticToken } from './controlplane.ts';
import { tarArchive, writeOciImage } from './oci-image.ts';
import { sleepSync, waitExitedSync } from './processes.ts';
import { folderOf, provision } from './provision.ts';
import { waitUntil } from './wait.ts';

/** The sandbox image every Pod on the node uses; imported, never pulled. */
export const PAUSE_IMAGE = 'regcred.local/pause:1';

/** What the API server needs for a node: Node authorization and the NodeRestriction plugin. */
export const NODE_API_SERVER_FLAGS = [
  '--authorization-mode=Node,RBAC',
  '--enable-admission-plugins=NodeRestriction',
];

export interface NodeIdentity {
  name: string;
  token: string;
}

/** A node name and bearer token, and the token-file line that makes it system:node:<name>. */
export function nodeIdentity(
  name = `regcred-node-${randomBytes(3).toString('hex')}`,
): NodeIdentity & {
  staticToken: StaticToken;
} {
  const token = randomBytes(24).toString('hex');
  return {
    name,
    token,
    staticToken: {
      token,
      user: `system:node:${name}`,
      uid: `node-${name}`,
      groups: ['system:nodes'],
    },
  };
}

export interface TestNodeOptions {
  plane: ControlPlane;
  identity: NodeIdentity;
  /** Kubelet feature gates, e.g. { KubeletEnsureSecretPulledImages: false }. */
  featureGates?: Record<string, boolean>;
  /** Progress lines; default stderr. */
  log?: (line: string) => void;
}

/** Host state a node may leave behind; what the teardown tests compare before and after. */
export interface HostSnapshot {
  processes: string[];
  mounts: string[];
  cgroups: string[];
  netns: string[];
  interfaces: string[];
}

/** The kubelet's kernel tunables (setupKernelTunables): restored when the node stops. */
const KERNEL_TUNABLES = [
  'vm/overcommit_memory',
  'vm/panic_on_oom',
  'kernel/panic',
  'kernel/panic_on_oops',
  'kernel/keys/root_maxkeys',
  'kernel/keys/root_maxbytes',
];

const live = new Set<TestNode>();
let hooksInstalled = false;

function installHooks(): void {
  if (hooksInstalled) return;
  hooksInstalled = true;
  process.on('exit', () => {
    for (const node of live) node.killNow();
  });
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.on(signal, () => {
      // Synchronously, first: other handlers (the control plane's) may exit the process next.
      for (const node of live) node.killNow();
      if (process.listenerCount(signal) === 1) process.exit(signal === 'SIGINT' ? 130 : 143);
    });
  }
}

/** The machine's first non-loopback IPv4 address: the kubelet refuses 127.0.0.1 as node IP. */
function hostAddress(): string {
  for (const addresses of Object.values(networkInterfaces())) {
    for (const address of addresses ?? []) {
      if (address.family === 'IPv4' && !address.internal) return address.address;
    }
  }
  throw new Error('no non-loopback IPv4 address for the node (the kubelet refuses 127.0.0.1)');
}

const CGROUP_ROOT = '/sys/fs/cgroup';

/** Every cgroup hierarchy's folder (v1: one per controller; v2: the root itself). */
function cgroupHierarchies(): string[] {
  if (existsSync(join(CGROUP_ROOT, 'cgroup.controllers'))) return [CGROUP_ROOT];
  return readdirSync(CGROUP_ROOT)
    .map((entry) => join(CGROUP_ROOT, entry))
    .filter((path) => {
      try {
        return statSync(path).isDirectory() && existsSync(join(path, 'cgroup.procs'));
      } catch {
        return false;
      }
    });
}

/** Mount points from /proc/self/mountinfo whose line mentions `needle` (source, options or point). */
function mountsMentioning(needle: string): string[] {
  return readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .filter((line) => line.includes(needle))
    .map((line) =>
      (line.split(' ')[4] ?? '').replace(/\\(\d{3})/g, (_, o: string) =>
        String.fromCharCode(Number.parseInt(o, 8)),
      ),
    )
    .filter(Boolean);
}

/** Pids (other than ours) whose command line or cgroup mentions one of `needles`. */
function processesMentioning(needles: string[]): Array<{ pid: number; command: string }> {
  const found: Array<{ pid: number; command: string }> = [];
  for (const entry of readdirSync('/proc')) {
    const pid = Number(entry);
    if (!Number.isInteger(pid) || pid === process.pid) continue;
    try {
      const command = readFileSync(`/proc/${pid}/cmdline`, 'utf8').replaceAll('\0', ' ').trim();
      const cgroup = readFileSync(`/proc/${pid}/cgroup`, 'utf8');
      if (needles.some((needle) => command.includes(needle) || cgroup.includes(needle))) {
        found.push({ pid, command: command.slice(0, 200) });
      }
    } catch {
      // gone meanwhile
    }
  }
  return found;
}

function listDir(path: string): string[] {
  try {
    return readdirSync(path);
  } catch {
    return [];
  }
}

function httpStatus(url: string): Promise<number> {
  return new Promise((resolveStatus) => {
    const req = request(url, { timeout: 2_000 }, (res) => {
      res.resume();
      resolveStatus(res.statusCode ?? 0);
    });
    req.on('timeout', () => req.destroy());
    req.on('error', () => resolveStatus(0));
    req.end();
  });
}

export class TestNode {
  readonly name: string;
  readonly dir: string;
  readonly nodeIp: string;
  private readonly options: TestNodeOptions;
  private readonly log: (line: string) => void;
  private bins = { kubelet: '', containerd: '', pause: '', runc: '' };
  private kubeletPort = 0;
  private healthzPort = 0;
  private containerd?: ChildProcess;
  private containerdExited?: Promise<void>;
  private kubelet?: ChildProcess;
  private kubeletExited?: Promise<void>;
  private featureGates: Record<string, boolean>;
  private readonly before: HostBefore;
  /** Every container id this node's containerd has run (its cgroups are /k8s.io/<id>). */
  private readonly ids = new Set<string>();
  private readonly tunables = new Map<string, string>();
  private stopping?: Promise<void>;
  private swept = false;

  private constructor(options: TestNodeOptions) {
    this.options = options;
    this.name = options.identity.name;
    this.log = options.log ?? ((line) => process.stderr.write(`${line}\n`));
    this.featureGates = { ...(options.featureGates ?? {}) };
    // Short: containerd's socket path must stay under 108 bytes.
    this.dir = mkdtempSync('/tmp/regcred-node-');
    this.nodeIp = hostAddress();
    this.before = {
      netns: listDir('/run/netns'),
      interfaces: listDir('/sys/class/net'),
      shimSockets: listDir('/run/containerd/s'),
      containerLogs: existsSync('/var/log/containers'),
      hostDirs: HOST_DIRS.filter((dir) => existsSync(dir)),
    };
    for (const tunable of KERNEL_TUNABLES) {
      try {
        this.tunables.set(tunable, readFileSync(join('/proc/sys', tunable), 'utf8').trim());
      } catch {
        // not on this kernel
      }
    }
  }

  /** Starts containerd, imports the pause image, starts the kubelet; resolves once the Node is registered. */
  static async start(options: TestNodeOptions): Promise<TestNode> {
    installHooks();
    const node = new TestNode(options);
    live.add(node);
    try {
      await node.startAll();
      return node;
    } catch (error) {
      await node.stop();
      throw error;
    }
  }

  get socket(): string {
    return join(this.dir, 'containerd.sock');
  }

  private path(...parts: string[]): string {
    return join(this.dir, ...parts);
  }

  private async startAll(): Promise<void> {
    const started = Date.now();
    const provisioned = await provision(['node'], this.log);
    this.bins = {
      kubelet: join(folderOf(provisioned, 'kubelet'), 'kubelet'),
      containerd: folderOf(provisioned, 'containerd'),
      pause: join(folderOf(provisioned, 'pause'), 'pause'),
      runc: folderOf(provisioned, 'runc'),
    };
    for (const sub of [
      'certs.d',
      'cni/net.d',
      'cni/bin',
      'kubelet',
      'pod-logs',
      'volume-plugins',
      'runc',
    ]) {
      mkdirSync(this.path(sub), { recursive: true });
    }
    await this.startContainerd();
    await this.importPauseImage();
    const containerdReady = Date.now();
    this.kubeletPort = await freePort();
    this.healthzPort = await freePort();
    this.options.plane.writeKubeconfigFor(
      this.path('kubelet.kubeconfig'),
      `system:node:${this.name}`,
      this.options.identity.token,
    );
    await this.startKubelet();
    this.log(
      `[node] ${this.name} registered in ${Date.now() - started} ms (containerd ${containerdReady - started} ms; ${this.dir})`,
    );
  }

  private writeContainerdConfig(): void {
    const d = (...parts: string[]) => JSON.stringify(this.path(...parts));
    writeFileSync(
      this.path('containerd.toml'),
      `version = 3
root = ${d('containerd', 'root')}
state = ${d('containerd', 'state')}
temp = ${d('containerd', 'tmp')}
oom_score = 0
disabled_plugins = ["io.containerd.nri.v1.nri", "io.containerd.tracing.processor.v1.otlp", "io.containerd.internal.v1.tracing", "io.containerd.snapshotter.v1.blockfile", "io.containerd.snapshotter.v1.erofs", "io.containerd.differ.v1.erofs"]

[grpc]
  address = ${d('containerd.sock')}

[ttrpc]
  address = ${d('containerd.sock.ttrpc')}

[debug]
  level = "info"

[plugins]
  [plugins.'io.containerd.internal.v1.opt']
    path = ${d('containerd', 'opt')}
  [plugins.'io.containerd.cri.v1.images']
    snapshotter = "overlayfs"
    [plugins.'io.containerd.cri.v1.images'.pinned_images]
      sandbox = ${JSON.stringify(PAUSE_IMAGE)}
    [plugins.'io.containerd.cri.v1.images'.registry]
      config_path = ${d('certs.d')}
  [plugins.'io.containerd.cri.v1.runtime']
    restrict_oom_score_adj = true
    enable_cdi = false
    [plugins.'io.containerd.cri.v1.runtime'.containerd]
      default_runtime_name = "runc"
      [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc]
        runtime_type = "io.containerd.runc.v2"
        [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc.options]
          BinaryName = ${JSON.stringify(this.bins.runc)}
          Root = ${d('runc')}
          SystemdCgroup = false
    [plugins.'io.containerd.cri.v1.runtime'.cni]
      bin_dirs = [${d('cni', 'bin')}]
      conf_dir = ${d('cni', 'net.d')}
  [plugins.'io.containerd.grpc.v1.cri']
    stream_server_address = "127.0.0.1"
    stream_server_port = "0"
`,
    );
  }

  private spawnLogged(
    name: string,
    binary: string,
    args: string[],
    env: NodeJS.ProcessEnv,
  ): ChildProcess {
    const out = createWriteStream(this.path(`${name}.log`), { flags: 'a' });
    const child = spawn(binary, args, { stdio: ['ignore', 'pipe', 'pipe'], env });
    child.stdout?.pipe(out, { end: false });
    child.stderr?.pipe(out, { end: false });
    child.on('exit', () => out.end());
    child.on('error', (error) => out.end(`failed to start: ${error.message}\n`));
    return child;
  }

  /** The last lines of a component's log (containerd, kubelet). */
  componentLog(name: 'containerd' | 'kubelet', lines = 30): string {
    try {
      return readFileSync(this.path(`${name}.log`), 'utf8')
        .trimEnd()
        .split('\n')
        .slice(-lines)
        .join('\n');
    } catch {
      return '';
    }
  }

  private async startContainerd(): Promise<void> {
    this.writeContainerdConfig();
    const child = this.spawnLogged(
      'containerd',
      join(this.bins.containerd, 'containerd'),
      [`--config=${this.path('containerd.toml')}`],
      // The shim is found on PATH.
      { PATH: `${this.bins.containerd}:${process.env.PATH ?? ''}` },
    );
    this.containerd = child;
    this.containerdExited = new Promise((resolveExit) => {
      child.on('exit', () => resolveExit());
      child.on('error', () => resolveExit());
    });
    const exited = () => child.exitCode !== null || child.signalCode !== null;
    await waitUntil(
      'containerd to answer on its socket',
      async () => exited() || (existsSync(this.socket) && (await this.ctr(['version'])).code === 0),
      { timeoutMs: 30_000, intervalMs: 100 },
    );
    if (exited()) throw new Error(`containerd exited:\n${this.componentLog('containerd')}`);
  }

  /** Runs ctr against this node's containerd in the CRI's namespace; never throws on failure. */
  ctr(
    args: string[],
    timeoutMs = 30_000,
  ): Promise<{ code: number; stdout: string; stderr: string }> {
    return new Promise((resolveRun) => {
      execFile(
        join(this.bins.containerd, 'ctr'),
        [`--address=${this.socket}`, '--namespace=k8s.io', ...args],
        { timeout: timeoutMs, maxBuffer: 16 * 1024 * 1024 },
        (error, stdout, stderr) => {
          const code = error ? (typeof error.code === 'number' ? error.code : 1) : 0;
          resolveRun({ code, stdout, stderr });
        },
      );
    });
  }

  private async importPauseImage(): Promise<void> {
    const layout = this.path('pause-image');
    await writeOciImage(
      layout,
      '1',
      { name: 'README', content: 'the regcred-operator test node sandbox image\n' },
      {
        files: [{ name: 'pause', content: readFileSync(this.bins.pause), mode: 0o755 }],
        cmd: ['/pause'],
        name: PAUSE_IMAGE,
      },
    );
    const files = [
      'oci-layout',
      'index.json',
      ...readdirSync(join(layout, 'blobs', 'sha256')).map((b) => `blobs/sha256/${b}`),
    ];
    const archive = this.path('pause-image.tar');
    writeFileSync(
      archive,
      tarArchive(files.map((name) => ({ name, content: readFileSync(join(layout, name)) }))),
    );
    const result = await this.ctr(['images', 'import', '--local', archive]);
    if (
      result.code !== 0 ||
      !(await this.ctr(['images', 'ls', '-q'])).stdout.includes(PAUSE_IMAGE)
    ) {
      throw new Error(
        `ctr images import of ${PAUSE_IMAGE} failed: ${result.stderr}${result.stdout}`,
      );
    }
  }

  /** Makes containerd trust `caFile` for the registry at `host` (host:port); no credentials. */
  trustRegistry(host: string, caFile: string): void {
    const dir = this.path('certs.d', host);
    mkdirSync(dir, { recursive: true });
    writeFileSync(
      join(dir, 'hosts.toml'),
      `server = "https://${host}"\n\n[host."https://${host}"]\n  capabilities = ["pull", "resolve"]\n  ca = ${JSON.stringify(caFile)}\n`,
    );
  }

  /**
   * Makes containerd pull images named `name/...` (e.g. an ECR host, which does not resolve
   * here) from the registry at `endpoint` (host:port), trusting `caFile`. The kubelet still
   * picks credentials by `name`, as it would for the real registry.
   */
  mirrorRegistry(name: string, endpoint: string, caFile: string): void {
    const dir = this.path('certs.d', name);
    mkdirSync(dir, { recursive: true });
    writeFileSync(
      join(dir, 'hosts.toml'),
      `server = "https://${endpoint}"\n\n[host."https://${endpoint}"]\n  capabilities = ["pull", "resolve"]\n  ca = ${JSON.stringify(caFile)}\n`,
    );
  }

  private writeKubeletConfig(): void {
    const gates = Object.entries(this.featureGates);
    writeFileSync(
      this.path('kubelet.yaml'),
      [
        'apiVersion: kubelet.config.k8s.io/v1beta1',
        'kind: KubeletConfiguration',
        'address: 127.0.0.1',
        `port: ${this.kubeletPort}`,
        'readOnlyPort: 0',
        'healthzBindAddress: 127.0.0.1',
        `healthzPort: ${this.healthzPort}`,
        'authentication: {anonymous: {enabled: false}, webhook: {enabled: false}}',
        'authorization: {mode: AlwaysAllow}',
        `containerRuntimeEndpoint: unix://${this.socket}`,
        // This machine: cgroup v1, no CAP_SYS_RESOURCE, swap possibly on (NODE.md).
        'failCgroupV1: false',
        'cgroupDriver: cgroupfs',
        'cgroupsPerQOS: false',
        'enforceNodeAllocatable: []',
        'failSwapOn: false',
        'oomScoreAdj: 0',
        // A busy disk must not evict test Pods or collect their images.
        'evictionHard: {memory.available: "1Mi", nodefs.available: "1%", nodefs.inodesFree: "1%", imagefs.available: "1%"}',
        'imageGCHighThresholdPercent: 100',
        'imageGCLowThresholdPercent: 99',
        'maxPods: 250',
        'serializeImagePulls: false',
        'kubeAPIQPS: 100',
        'kubeAPIBurst: 200',
        'nodeStatusUpdateFrequency: 10s',
        `podLogsDir: ${this.path('pod-logs')}`,
        `volumePluginDir: ${this.path('volume-plugins')}`,
        'registerNode: true',
        ...(gates.length > 0
          ? ['featureGates:', ...gates.map(([gate, on]) => `  ${gate}: ${on}`)]
          : []),
        '',
      ].join('\n'),
    );
  }

  private async startKubelet(): Promise<void> {
    this.writeKubeletConfig();
    const child = this.spawnLogged(
      'kubelet',
      this.bins.kubelet,
      [
        `--config=${this.path('kubelet.yaml')}`,
        `--kubeconfig=${this.path('kubelet.kubeconfig')}`,
        `--root-dir=${this.path('kubelet')}`,
        `--cert-dir=${this.path('kubelet', 'pki')}`,
        `--hostname-override=${this.name}`,
        `--node-ip=${this.nodeIp}`,
        '--v=2',
      ],
      { PATH: process.env.PATH ?? '' },
    );
    this.kubelet = child;
    this.kubeletExited = new Promise((resolveExit) => {
      child.on('exit', () => resolveExit());
      child.on('error', () => resolveExit());
    });
    const exited = () => child.exitCode !== null || child.signalCode !== null;
    await waitUntil(
      `the kubelet of ${this.name} to be healthy and its Node registered`,
      async () => {
        if (exited()) return true;
        if ((await httpStatus(`http://127.0.0.1:${this.healthzPort}/healthz`)) !== 200)
          return false;
        const got = await this.options.plane.kubectl(['get', 'node', this.name, '-o', 'name']);
        return got.code === 0;
      },
      { timeoutMs: 60_000, intervalMs: 200 },
    );
    if (exited()) throw new Error(`the kubelet exited:\n${this.componentLog('kubelet')}`);
  }

  /** Restarts the kubelet (containerd, its images and the kubelet's state stay) with other feature gates. */
  async restartKubelet(featureGates: Record<string, boolean>): Promise<void> {
    await this.stopKubelet();
    this.featureGates = { ...featureGates };
    await this.startKubelet();
  }

  private async stopChild(
    child: ChildProcess | undefined,
    exited: Promise<void> | undefined,
    graceMs: number,
  ): Promise<void> {
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
    await exited;
    clearTimeout(timer);
  }

  private async stopKubelet(): Promise<void> {
    await this.stopChild(this.kubelet, this.kubeletExited, 10_000);
    this.kubelet = undefined;
  }

  /** The ids of every container (sandboxes included) this node's containerd has made. */
  containerIds(): string[] {
    for (const id of [
      ...listDir(this.path('runc', 'k8s.io')),
      ...listDir(this.path('containerd', 'state', 'io.containerd.runtime.v2.task', 'k8s.io')),
    ]) {
      if (/^[0-9a-f]{64}$/.test(id)) this.ids.add(id);
    }
    return [...this.ids];
  }

  /** The pids of the kubelet, containerd, shims and everything running in the node's Pods. */
  pids(): number[] {
    return processesMentioning(needlesFor(this.dir, this.containerIds())).map((p) => p.pid);
  }

  /**
   * Stops the kubelet (so nothing restarts), then containerd, then sweeps: the containers'
   * processes and shims are killed by the container ids in the node's state, their rootfs and
   * shm mounts unmounted, their cgroups removed. Going through containerd for each container
   * took minutes for a node with 100 Pods; this takes seconds. Safe to call more than once.
   */
  stop(): Promise<void> {
    this.stopping ??= (async () => {
      await this.stopKubelet();
      this.containerIds();
      await this.stopChild(this.containerd, this.containerdExited, 10_000);
      this.containerd = undefined;
      this.sweep();
      live.delete(this);
    })();
    return this.stopping;
  }

  /** Last resort (process exit, signals): synchronous, needs neither the API server nor containerd. */
  killNow(): void {
    this.kubelet?.kill('SIGKILL');
    this.containerd?.kill('SIGKILL');
    this.sweep();
    live.delete(this);
  }

  /** Kills, unmounts and removes whatever the node left: processes, mounts, cgroups, netns, files. */
  private sweep(): void {
    if (this.swept) return;
    this.swept = true;
    const needles = needlesFor(this.dir, this.containerIds());
    // Processes: the shims and container processes outlive a killed containerd.
    const killed = new Set<number>();
    for (const child of [this.kubelet, this.containerd]) {
      if (child?.pid !== undefined && child.exitCode === null && child.signalCode === null) {
        killed.add(child.pid);
      }
    }
    for (let attempt = 0; attempt < 100; attempt++) {
      const left = processesMentioning(needles);
      if (left.length === 0) break;
      for (const { pid } of left) {
        killed.add(pid);
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          // gone
        }
      }
      sleepSync(20);
    }
    // A process being torn down stops mentioning the node (its cmdline reads empty) before it
    // is gone: wait, bounded, until every one killed has exited (a zombie has).
    waitExitedSync(killed);
    // Mounts (rootfs overlays, sandbox shm, volumes): deepest first; lazily if busy.
    for (let attempt = 0; attempt < 5; attempt++) {
      const mounts = mountsMentioning(this.dir).sort((a, b) => b.length - a.length);
      if (mounts.length === 0) break;
      for (const mount of mounts) {
        try {
          execFileSync('umount', [attempt < 3 ? mount : '-l', ...(attempt < 3 ? [] : [mount])], {
            stdio: 'ignore',
          });
        } catch {
          // retried below
        }
      }
    }
    // Cgroups: each container's, in every hierarchy; their parent too once empty.
    for (const hierarchy of cgroupHierarchies()) {
      for (const id of this.ids) removeCgroupTree(join(hierarchy, 'k8s.io', id));
      try {
        rmdirSync(join(hierarchy, 'k8s.io'));
      } catch {
        // absent, or another node's containers are still in it
      }
    }
    // Network namespaces made since the node started (only non-hostNetwork Pods get one).
    for (const netns of listDir('/run/netns').filter((n) => !this.before.netns.includes(n))) {
      try {
        execFileSync('umount', [join('/run/netns', netns)], { stdio: 'ignore' });
      } catch {
        // not mounted
      }
      rmSync(join('/run/netns', netns), { force: true });
    }
    // Shim sockets containerd keeps under /run/containerd/s whatever its state dir; the kubelet's
    // /var/log/containers links into this node's pod logs.
    for (const socket of listDir('/run/containerd/s').filter(
      (s) => !this.before.shimSockets.includes(s),
    )) {
      rmSync(join('/run/containerd/s', socket), { force: true });
    }
    for (const link of listDir('/var/log/containers')) {
      try {
        if (readlinkSync(join('/var/log/containers', link)).startsWith(this.dir)) {
          unlinkSync(join('/var/log/containers', link));
        }
      } catch {
        // not a link
      }
    }
    if ([...live].every((node) => node === this)) {
      for (const dir of HOST_DIRS.filter((d) => !this.before.hostDirs.includes(d))) {
        rmSync(dir, { recursive: true, force: true });
      }
    }
    if (!this.before.containerLogs) {
      try {
        rmdirSync('/var/log/containers');
      } catch {
        // absent, or not empty (someone else's)
      }
    }
    for (const [tunable, value] of this.tunables) {
      try {
        if (readFileSync(join('/proc/sys', tunable), 'utf8').trim() !== value)
          writeFileSync(join('/proc/sys', tunable), value);
      } catch {
        // read-only here
      }
    }
    if (mountsMentioning(this.dir).length === 0) {
      rmSync(this.dir, { recursive: true, force: true });
    } else {
      process.stderr.write(
        `[node] ${this.dir} still has mounts; left in place:\n${mountsMentioning(this.dir).join('\n')}\n`,
      );
    }
  }

  /** What of this node is on the host now: for the teardown tests. */
  leftovers(): HostSnapshot {
    return hostSnapshotFor(this.describe());
  }

  /** What teardown tests need to check a node, from this process or another. */
  describe(): NodeDescription {
    return {
      name: this.name,
      dir: this.dir,
      containerIds: this.containerIds(),
      before: this.before,
    };
  }
}

function removeCgroupTree(path: string): void {
  if (!existsSync(path)) return;
  for (const entry of listDir(path)) {
    const child = join(path, entry);
    try {
      if (statSync(child).isDirectory()) removeCgroupTree(child);
    } catch {
      // gone
    }
  }
  for (let attempt = 0; attempt < 50; attempt++) {
    try {
      rmdirSync(path);
      return;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return;
      sleepSync(20); // EBUSY while the last task exits
    }
  }
}

function needlesFor(dir: string, containerIds: string[]): string[] {
  return [dir, ...containerIds.map((id) => `/k8s.io/${id}`)];
}

/**
 * Folders outside the node's own that its components make whatever their configuration: the
 * kubelet's device-plugin socket (/var/lib/kubelet/device-plugins, fixed by the device plugin
 * API) and containerd's shim sockets (/run/containerd/s). Removed on stop when the host did not
 * have them before and no other node of this process still runs.
 */
const HOST_DIRS = ['/var/lib/kubelet', '/run/containerd'];

interface HostBefore {
  netns: string[];
  interfaces: string[];
  shimSockets: string[];
  containerLogs: boolean;
  hostDirs: string[];
}

export interface NodeDescription {
  name: string;
  dir: string;
  containerIds: string[];
  before: HostBefore;
}

/** The processes, mounts, cgroups, netns and interfaces of a node still on the host. */
export function hostSnapshotFor(node: NodeDescription): HostSnapshot {
  return {
    processes: processesMentioning(needlesFor(node.dir, node.containerIds)).map(
      (p) => `${p.pid} ${p.command}`,
    ),
    mounts: mountsMentioning(node.dir),
    cgroups: cgroupHierarchies().flatMap((hierarchy) =>
      node.containerIds
        .map((id) => join(hierarchy, 'k8s.io', id))
        .filter((path) => existsSync(path)),
    ),
    netns: listDir('/run/netns').filter((n) => !node.before.netns.includes(n)),
    interfaces: listDir('/sys/class/net').filter((n) => !node.before.interfaces.includes(n)),
  };
}

// `npm run dev` (scripts/dev.ts) as a developer runs it: it must always exit, on Ctrl-C and when
// the operator dies, and never leave its control plane running; and offline, with the local
// cloud fakes, every sample reaches Ready and a token rotation reaches every namespace.
import assert from 'node:assert/strict';
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { waitUntil } from '../support/wait.ts';

const repoRoot = join(import.meta.dirname, '..', '..');

interface DevRun {
  child: ChildProcess;
  output: () => string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

function startDev(env: Record<string, string> = {}): DevRun {
  const child = spawn(process.execPath, [join(repoRoot, 'scripts', 'dev.ts')], {
    cwd: repoRoot,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, REGCRED_LOG_LEVEL: 'warn', ...env },
  });
  let output = '';
  child.stdout?.on('data', (chunk: Buffer) => {
    output += chunk.toString();
  });
  child.stderr?.on('data', (chunk: Buffer) => {
    output += chunk.toString();
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('exit', (code, signal) => resolve({ code, signal })),
  );
  return { child, output: () => output, exited };
}

/** The direct children of `pid` with their command lines (Linux /proc). */
function childrenOf(pid: number): Array<{ pid: number; cmdline: string }> {
  const children: number[] = [];
  for (const task of readdirSync(`/proc/${pid}/task`)) {
    const list = readFileSync(`/proc/${pid}/task/${task}/children`, 'utf8').trim();
    if (list) children.push(...list.split(' ').map(Number));
  }
  return children.map((child) => ({ pid: child, cmdline: commandLine(child) }));
}

function commandLine(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').replaceAll('\0', ' ');
  } catch {
    return '';
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    // A zombie still answers signal 0; it has exited all the same.
    return !/\) Z /.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
}

/** Starts dev, waits until its operator runs; returns the operator's and the plane's pids. */
async function devRunning(run: DevRun): Promise<{ operator: number; plane: number[] }> {
  await waitUntil(
    'npm run dev to report the operator running',
    () => {
      if (run.child.exitCode !== null) throw new Error(`dev exited early:\n${run.output()}`);
      return run.output().includes('regcred-operator is running');
    },
    { timeoutMs: 120_000, intervalMs: 200 },
  );
  const pid = run.child.pid ?? 0;
  const children = childrenOf(pid);
  const operator = children.find((c) => c.cmdline.includes(join('src', 'main.ts')));
  const plane = children.filter((c) =>
    /\/(etcd|kube-apiserver|kube-controller-manager) /.test(c.cmdline),
  );
  assert.ok(operator, `the operator among dev's children: ${JSON.stringify(children)}`);
  assert.equal(plane.length, 3, `etcd, kube-apiserver, kube-controller-manager: ${children}`);
  return { operator: operator.pid, plane: plane.map((c) => c.pid) };
}

/** Waits for dev to exit; fails (with its output) if it hangs. */
async function exitOf(
  run: DevRun,
  timeoutMs: number,
): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
  try {
    await waitUntil(
      'npm run dev to exit',
      () => run.child.exitCode !== null || run.child.signalCode !== null,
      { timeoutMs, intervalMs: 100 },
    );
  } catch (error) {
    throw new Error(
      `${error instanceof Error ? error.message : error}; its output:\n${run.output()}`,
    );
  }
  return run.exited;
}

/** The kubectl and kubeconfig dev printed, as a function running kubectl with them. */
function kubectlOf(run: DevRun): (...args: string[]) => Promise<string> {
  const kubeconfig = /export KUBECONFIG=(\S+)/.exec(run.output())?.[1];
  const binary = /alias kubectl=(\S+)/.exec(run.output())?.[1];
  assert.ok(kubeconfig && binary, `dev printed KUBECONFIG and kubectl:\n${run.output()}`);
  return (...args) =>
    new Promise((resolve, reject) =>
      execFile(binary, [`--kubeconfig=${kubeconfig}`, ...args], (error, stdout, stderr) =>
        error
          ? reject(new Error(`kubectl ${args.join(' ')}: ${stderr || error.message}`))
          : resolve(stdout),
      ),
    );
}

const SAMPLES = ['sample-basic', 'sample-dockerconfig', 'sample-ecr', 'sample-gcp', 'sample-acr'];

interface Cred {
  metadata: { name: string };
  status?: {
    targetNamespaces?: number;
    syncedNamespaces?: number;
    conditions?: Array<{ type: string; status: string; reason: string; message: string }>;
    registries?: Array<{ server: string; source: string; expiresAt?: string }>;
    nextRefreshAt?: string;
  };
}

function sha256(value: string): string {
  return createHash('sha256').update(value).digest('hex');
}

describe('npm run dev', function () {
  this.timeout(240_000);
  let run: DevRun | undefined;
  let pids: number[] = [];

  afterEach(() => {
    // A dev that hung must not outlive the test, nor its control plane.
    for (const pid of pids) if (alive(pid)) process.kill(pid, 'SIGKILL');
    if (run && run.child.exitCode === null && run.child.signalCode === null)
      run.child.kill('SIGKILL');
    run = undefined;
    pids = [];
  });

  it('exits non-zero, says so and stops the control plane when the operator is killed by a signal', async () => {
    run = startDev();
    const { operator, plane } = await devRunning(run);
    pids = [operator, ...plane];

    process.kill(operator, 'SIGKILL');
    const exit = await exitOf(run, 60_000);
    assert.notEqual(exit.code, 0);
    assert.notEqual(exit.code, null, 'dev exits by itself, with a code');
    assert.match(run.output(), /the operator was killed by SIGKILL/);
    for (const pid of plane) assert.equal(alive(pid), false, `control-plane pid ${pid} is gone`);
  });

  it('stops the operator and the control plane on Ctrl-C, and exits 130', async () => {
    run = startDev();
    const { operator, plane } = await devRunning(run);
    pids = [operator, ...plane];

    run.child.kill('SIGINT');
    const exit = await exitOf(run, 90_000);
    assert.equal(exit.code, 130);
    assert.doesNotMatch(run.output(), /the operator (was killed|exited)/, 'no crash reported');
    for (const pid of pids) assert.equal(alive(pid), false, `pid ${pid} is gone`);
  });

  it('exits 130 on Ctrl-C while it is still setting up, leaving no control plane behind', async () => {
    run = startDev();
    const dev = run;
    await waitUntil(
      'the control plane to be up (the CRD and samples still to apply)',
      () => {
        if (dev.child.exitCode !== null) throw new Error(`dev exited early:\n${dev.output()}`);
        return dev.output().includes('[controlplane] ready');
      },
      { timeoutMs: 120_000, intervalMs: 20 },
    );
    const plane = childrenOf(dev.child.pid ?? 0).filter((c) =>
      /\/(etcd|kube-apiserver|kube-controller-manager) /.test(c.cmdline),
    );
    pids = plane.map((c) => c.pid);
    assert.ok(plane.length >= 2, `etcd and kube-apiserver at least: ${JSON.stringify(plane)}`);

    dev.child.kill('SIGINT');
    const exit = await exitOf(dev, 60_000);
    assert.equal(exit.code, 130);
    for (const pid of pids) assert.equal(alive(pid), false, `pid ${pid} is gone`);
  });

  it('brings all five samples to Ready offline, and a token rotation reaches every target namespace', async () => {
    const started = Date.now();
    // ECR tokens live 30 s here (Google's 40 s, ACR's 50 s): the first refresh comes at ~20 s.
    run = startDev({ REGCRED_DEV_TOKEN_LIFETIME: '30' });
    const dev = run;
    const { operator, plane } = await devRunning(dev);
    pids = [operator, ...plane];
    const kubectl = kubectlOf(dev);

    await kubectl(
      'wait',
      '--for=condition=Ready',
      '--timeout=120s',
      ...SAMPLES.map((n) => `regcred/${n}`),
    );
    const readyAfter = Date.now() - started;
    const list = JSON.parse(await kubectl('get', 'regcred', '-o', 'json')) as { items: Cred[] };
    const byName = new Map(list.items.map((c) => [c.metadata.name, c]));
    for (const name of SAMPLES) {
      const status = byName.get(name)?.status;
      const ready = status?.conditions?.find((c) => c.type === 'Ready');
      assert.equal(ready?.status, 'True', `${name}: ${JSON.stringify(status)}`);
      assert.ok(
        (status?.targetNamespaces ?? 0) > 0,
        `${name} has targets: ${JSON.stringify(status)}`,
      );
      assert.equal(status?.syncedNamespaces, status?.targetNamespaces, name);
    }
    for (const name of ['sample-ecr', 'sample-gcp', 'sample-acr']) {
      const status = byName.get(name)?.status;
      assert.ok(status?.nextRefreshAt, `${name} shows NEXT REFRESH: ${JSON.stringify(status)}`);
      const expiresAt = Date.parse(status?.registries?.[0]?.expiresAt ?? '');
      assert.ok(
        expiresAt - Date.now() < 60_000,
        `${name}: a token from the local fake, living under a minute: ${JSON.stringify(status)}`,
      );
    }

    // What dev put in place for its fakes is marked as dev-only, and the sources opted in.
    for (const secret of ['aws-keys', 'gcp-key', 'azure-sp']) {
      const meta = JSON.parse(
        await kubectl(
          'get',
          'secret',
          secret,
          '-n',
          'regcred-system',
          '-o',
          'jsonpath={.metadata}',
        ),
      ) as { labels?: Record<string, string>; annotations?: Record<string, string> };
      assert.equal(meta.labels?.['regcred.dev/source'], 'true', secret);
      assert.match(meta.annotations?.['dev.regcred.dev/note'] ?? '', /^DEV ONLY/, secret);
    }
    for (const name of ['sample-ecr', 'sample-gcp', 'sample-acr']) {
      const note = await kubectl(
        'get',
        'regcred',
        name,
        '-o',
        'jsonpath={.metadata.annotations.dev\\.regcred\\.dev/note}',
      );
      assert.match(note, /^DEV ONLY/, name);
    }

    // The ECR Secret in both of its namespaces: one rotation puts the same new token in each.
    const ecrPull = async () =>
      Promise.all(
        ['team-a', 'team-b'].map(async (ns) =>
          sha256(await kubectl('get', 'secret', 'ecr-pull', '-n', ns, '-o', 'jsonpath={.data}')),
        ),
      );
    const before = await ecrPull();
    assert.equal(before[0], before[1], 'team-a and team-b hold the same ECR token');
    await waitUntil(
      'a rotated ECR token in team-a and team-b',
      async () => {
        const now = await ecrPull();
        return now[0] !== before[0] && now[0] === now[1];
      },
      { timeoutMs: 60_000, intervalMs: 500 },
    );
    const rotatedAfter = Date.now() - started;

    // The hints name namespaces that exist (a team-c it asks you to create aside).
    const named = [...dev.output().matchAll(/ -n (\S+)/g)].map((m) => m[1] ?? '');
    assert.ok(named.length > 0, `the hints name a namespace:\n${dev.output()}`);
    for (const ns of named) await kubectl('get', 'namespace', ns);

    // No token the fakes minted shows up in what dev printed.
    const config = JSON.parse(
      Buffer.from(
        await kubectl(
          'get',
          'secret',
          'ecr-pull',
          '-n',
          'team-a',
          '-o',
          'jsonpath={.data.\\.dockerconfigjson}',
        ),
        'base64',
      ).toString('utf8'),
    ) as { auths: Record<string, { password?: string }> };
    for (const entry of Object.values(config.auths)) {
      assert.ok(entry.password, 'the Secret holds a password');
      assert.equal(dev.output().includes(entry.password), false, 'the token is not in the output');
    }
    process.stdout.write(
      `      all five Ready ${readyAfter} ms after start; a rotation in both namespaces after ${rotatedAfter} ms\n`,
    );

    dev.child.kill('SIGINT');
    const exit = await exitOf(dev, 90_000);
    assert.equal(exit.code, 130);
    for (const pid of pids) assert.equal(alive(pid), false, `pid ${pid} is gone`);
  });
});

// The kubelet's own credential matching as a process: test/kubelet-keyring/main.go built from the
// control plane's wrapper module (scripts/controlplane/kubernetes: go.mod and go.sum as they are,
// so it is the same k8s.io/kubernetes the suite's control plane and node run) and cached in
// ~/.cache/regcred-operator/kubelet-keyring-src-<hash> (REGCRED_CACHE_DIR moves it) like
// scripts/provision.sh caches what it builds. A warm run only checks the file.
import { type ChildProcessWithoutNullStreams, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  renameSync,
  rmSync,
} from 'node:fs';
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';

const repoRoot = resolve(import.meta.dirname, '..', '..');
const wrapperModule = join(repoRoot, 'scripts', 'controlplane', 'kubernetes');
const programSource = join(repoRoot, 'test', 'kubelet-keyring', 'main.go');

export interface KubeletCase {
  secrets: Array<{ name: string; type: string; data: Record<string, string> }>;
  images: string[];
  servers: string[];
}

export interface KubeletAnswer {
  keyringError: boolean;
  keys: Record<string, string | null>;
  images: Array<{
    image: string;
    parseError: boolean;
    repository: string;
    tag: string;
    digest: string;
    candidates: Array<{ secret: string; username: string }>;
  }>;
}

function cacheDir(): string {
  return process.env.REGCRED_CACHE_DIR ?? join(homedir(), '.cache', 'regcred-operator');
}

/** Builds the program unless the cache has it; resolves to the binary's path. */
export async function kubeletKeyringBinary(): Promise<string> {
  const inputs = [join(wrapperModule, 'go.mod'), join(wrapperModule, 'go.sum'), programSource];
  const hash = createHash('sha256');
  for (const file of inputs) hash.update(readFileSync(file));
  const dir = join(cacheDir(), `kubelet-keyring-src-${hash.digest('hex').slice(0, 12)}`);
  const binary = join(dir, 'kubelet-keyring');
  if (existsSync(binary)) return binary;
  mkdirSync(cacheDir(), { recursive: true });
  const work = mkdtempSync(join(cacheDir(), '.kubelet-keyring-build-'));
  try {
    for (const file of inputs) copyFileSync(file, join(work, file.split('/').pop() ?? ''));
    await run('go', ['build', '-trimpath', '-o', 'kubelet-keyring', '.'], work);
    mkdirSync(dir, { recursive: true });
    renameSync(join(work, 'kubelet-keyring'), binary);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
  return binary;
}

function run(command: string, args: string[], cwd: string): Promise<void> {
  return new Promise((resolveRun, reject) => {
    const child = spawn(command, args, {
      cwd,
      env: {
        ...process.env,
        CGO_ENABLED: '0',
        GOFLAGS: `${process.env.GOFLAGS ?? ''} -mod=mod`.trim(),
        PATH: `${process.env.PATH ?? ''}:/usr/local/go/bin`,
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => {
      output += chunk.toString();
    });
    child.stderr.on('data', (chunk: Buffer) => {
      output += chunk.toString();
    });
    child.on('error', (error) =>
      reject(
        new Error(
          `cannot run ${command} (Go 1.26+ is needed to build the kubelet's keyring program): ${error.message}`,
        ),
      ),
    );
    child.on('exit', (code) =>
      code === 0
        ? resolveRun()
        : reject(new Error(`${command} ${args.join(' ')} exited ${code}:\n${output}`)),
    );
  });
}

/** One long-running kubelet-keyring process answering cases one line at a time. */
export class KubeletKeyring {
  private readonly waiting: Array<{
    resolve: (a: KubeletAnswer) => void;
    reject: (e: Error) => void;
  }> = [];
  private stderr = '';
  private exited?: Error;
  /** Cases answered so far. */
  answered = 0;

  private readonly child: ChildProcessWithoutNullStreams;

  private constructor(child: ChildProcessWithoutNullStreams) {
    this.child = child;
    createInterface({ input: child.stdout }).on('line', (line) => {
      this.answered++;
      this.waiting.shift()?.resolve(JSON.parse(line) as KubeletAnswer);
    });
    child.stderr.on('data', (chunk: Buffer) => {
      this.stderr = (this.stderr + chunk.toString()).slice(-4000);
    });
    child.on('exit', (code) => {
      this.exited = new Error(`kubelet-keyring exited ${code}: ${this.stderr}`);
      for (const waiter of this.waiting.splice(0)) waiter.reject(this.exited);
    });
  }

  static async start(): Promise<KubeletKeyring> {
    const binary = await kubeletKeyringBinary();
    return new KubeletKeyring(spawn(binary, [], { stdio: ['pipe', 'pipe', 'pipe'] }));
  }

  ask(question: KubeletCase): Promise<KubeletAnswer> {
    if (this.exited) return Promise.reject(this.exited);
    return new Promise((resolveAnswer, reject) => {
      this.waiting.push({ resolve: resolveAnswer, reject });
      this.child.stdin.write(`${JSON.stringify(question)}\n`);
    });
  }

  async close(): Promise<void> {
    if (this.exited) return;
    const exit = new Promise((resolveExit) => this.child.once('exit', resolveExit));
    this.child.stdin.end();
    await exit;
  }
}

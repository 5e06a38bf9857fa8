// A real image registry for the e2e suite: the CNCF distribution registry (v3, built by
// scripts/provision.sh from the Go module proxy) as a child process on a loopback port, serving
// TLS with a certificate from a test CA made at test time with node:crypto, and requiring
// htpasswd (bcrypt) basic auth, whose lines provision.sh's small Go helper writes.
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { randomBytes, X509Certificate } from 'node:crypto';
import { createWriteStream, mkdirSync, readFileSync, rmSync } from 'node:fs';
import { mkdtemp, rename, rm, writeFile } from 'node:fs/promises';
import { request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from './controlplane.ts';
import { makeTestCertificates, type TestCertificates } from './fakes/test-ca.ts';
import { folderOf, provision } from './provision.ts';
import { waitUntil } from './wait.ts';

/** The folder holding `registry`, `crane` and `htpasswd` (built on first use). */
export async function registryTools(): Promise<string> {
  return folderOf(await provision(['registry']), 'registry');
}

export interface CommandResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs a program to completion; never throws on a non-zero exit. */
export function run(
  command: string,
  args: string[],
  options: { input?: string; env?: NodeJS.ProcessEnv; timeoutMs?: number } = {},
): Promise<CommandResult> {
  return new Promise((resolveRun) => {
    const child = execFile(
      command,
      args,
      { env: options.env ?? process.env, timeout: options.timeoutMs ?? 60_000 },
      (error, stdout, stderr) => {
        const code = error ? (typeof error.code === 'number' ? error.code : 1) : 0;
        resolveRun({ code, stdout, stderr: stderr || (error && code !== 0 ? error.message : '') });
      },
    );
    // A program that exits without reading stdin must not fail the test with EPIPE.
    child.stdin?.on('error', () => {});
    child.stdin?.end(options.input ?? '');
  });
}

async function runOk(
  command: string,
  args: string[],
  options?: { input?: string },
): Promise<string> {
  const result = await run(command, args, options);
  if (result.code !== 0) {
    throw new Error(`${command} ${args.join(' ')} exited ${result.code}: ${result.stderr}`);
  }
  return result.stdout;
}

/**
 * A throwaway certificate authority. `certDir` holds only `ca.crt`, so it can be handed to a
 * client as its trust directory (a `.key` there would be read as a client key).
 */
export class TestCA {
  readonly dir: string;
  readonly certPath: string;
  private readonly certificates: TestCertificates;

  private constructor(dir: string, certPath: string, certificates: TestCertificates) {
    this.dir = dir;
    this.certPath = certPath;
    this.certificates = certificates;
  }

  get certDir(): string {
    return join(this.dir, 'trust');
  }

  static async create(): Promise<TestCA> {
    const dir = await mkdtemp(join(tmpdir(), 'regcred-e2e-ca-'));
    mkdirSync(join(dir, 'trust'));
    const certificates = parsableCertificates();
    const certPath = join(dir, 'trust', 'ca.crt');
    await writeFile(certPath, certificates.caCert);
    return new TestCA(dir, certPath, certificates);
  }

  /** Writes a serving certificate for 127.0.0.1, ::1 and localhost, and its key, into `dir`. */
  async issueServerCertificate(dir: string): Promise<{ certPath: string; keyPath: string }> {
    const certPath = join(dir, 'server.crt');
    const keyPath = join(dir, 'server.key');
    await writeFile(certPath, this.certificates.serverCert);
    await writeFile(keyPath, this.certificates.serverKey, { mode: 0o600 });
    return { certPath, keyPath };
  }

  async remove(): Promise<void> {
    await rm(this.dir, { recursive: true, force: true });
  }
}

/**
 * makeTestCertificates() encodes a random serial whose first byte may be 0x00 before a byte
 * below 0x80: not minimal DER, which OpenSSL and Go refuse (about 1 certificate in 120, so a
 * registry that no client could verify). Retried until both certificates parse.
 */
function parsableCertificates(): TestCertificates {
  for (;;) {
    const certificates = makeTestCertificates();
    try {
      const ca = new X509Certificate(certificates.caCert);
      if (new X509Certificate(certificates.serverCert).verify(ca.publicKey)) return certificates;
    } catch {
      // not minimal DER: make another
    }
  }
}

/** One htpasswd line, `user:<bcrypt hash>`, from provision.sh's helper. */
export async function htpasswdLine(username: string, password: string): Promise<string> {
  const tools = await registryTools();
  const line = (await runOk(join(tools, 'htpasswd'), [username], { input: password })).trim();
  if (!line.startsWith(`${username}:$2`)) throw new Error(`htpasswd printed ${line}`);
  return line;
}

const live = new Set<TestRegistry>();
process.on('exit', () => {
  for (const registry of live) registry.killNow();
});

export interface TestRegistryOptions {
  ca: TestCA;
  /** username → password; written to htpasswd with bcrypt. */
  users: Record<string, string>;
}

/** One registry process with its own config.yml, storage, htpasswd file and port. */
export class TestRegistry {
  readonly ca: TestCA;
  private dir = '';
  private port = 0;
  private users = new Map<string, string>();
  private child?: ChildProcess;
  private exited?: Promise<void>;

  private constructor(ca: TestCA) {
    this.ca = ca;
  }

  /** The registry's address as image references and `auths` keys spell it. */
  get host(): string {
    return `127.0.0.1:${this.port}`;
  }

  get logPath(): string {
    return join(this.dir, 'registry.log');
  }

  private get htpasswdPath(): string {
    return join(this.dir, 'htpasswd');
  }

  /** Replaces htpasswd in one rename, so the registry never reads half a file. */
  private async writeHtpasswd(): Promise<void> {
    const next = `${this.htpasswdPath}.next`;
    await writeFile(next, [...this.users.values(), ''].join('\n'), { mode: 0o600 });
    await rename(next, this.htpasswdPath);
  }

  static async start(options: TestRegistryOptions): Promise<TestRegistry> {
    const registry = new TestRegistry(options.ca);
    live.add(registry);
    try {
      await registry.prepare(options.users);
      await registry.launch();
      return registry;
    } catch (error) {
      await registry.stop();
      throw error;
    }
  }

  private async prepare(users: Record<string, string>): Promise<void> {
    this.dir = await mkdtemp(join(tmpdir(), 'regcred-e2e-registry-'));
    this.port = await freePort();
    const { certPath, keyPath } = await this.ca.issueServerCertificate(this.dir);
    this.users = new Map(
      await Promise.all(
        Object.entries(users).map(
          async ([user, password]) => [user, await htpasswdLine(user, password)] as const,
        ),
      ),
    );
    await this.writeHtpasswd();
    await writeFile(
      join(this.dir, 'config.yml'),
      [
        'version: 0.1',
        'log:',
        '  level: info',
        '  accesslog: {disabled: true}',
        'storage:',
        `  filesystem: {rootdirectory: ${join(this.dir, 'storage')}}`,
        'http:',
        `  addr: 127.0.0.1:${this.port}`,
        `  secret: ${randomBytes(16).toString('hex')}`,
        `  tls: {certificate: ${certPath}, key: ${keyPath}}`,
        'auth:',
        `  htpasswd: {realm: regcred-e2e, path: ${this.htpasswdPath}}`,
        '',
      ].join('\n'),
    );
  }

  private async launch(): Promise<void> {
    const out = createWriteStream(this.logPath, { flags: 'a' });
    // Only PATH: REGISTRY_* variables would override config.yml. No trace exporter: the
    // registry would otherwise try to send its spans to an OTLP collector on localhost.
    const child = spawn(
      join(await registryTools(), 'registry'),
      ['serve', join(this.dir, 'config.yml')],
      {
        stdio: ['ignore', 'pipe', 'pipe'],
        env: { PATH: process.env.PATH ?? '', OTEL_TRACES_EXPORTER: 'none' },
      },
    );
    child.stdout?.pipe(out, { end: false });
    child.stderr?.pipe(out, { end: false });
    this.child = child;
    this.exited = new Promise((resolveExit) => {
      child.on('exit', () => {
        out.end();
        resolveExit();
      });
      child.on('error', (error) => {
        out.end(`failed to start: ${error.message}\n`);
        resolveExit();
      });
    });
    await waitUntil(
      `registry ${this.host} to answer /v2/`,
      async () => {
        if (child.exitCode !== null || child.signalCode !== null || !child.pid) {
          throw new Error(`the registry exited:\n${this.lastLogLines()}`);
        }
        return (await this.status()) === 401;
      },
      { timeoutMs: 20_000, intervalMs: 50 },
    ).catch((error: unknown) => {
      throw new Error(
        `${error instanceof Error ? error.message : String(error)}\nlog:\n${this.lastLogLines()}`,
      );
    });
  }

  lastLogLines(count = 20): string {
    try {
      return readFileSync(this.logPath, 'utf8').trimEnd().split('\n').slice(-count).join('\n');
    } catch {
      return '';
    }
  }

  /** The HTTP status of GET /v2/, anonymously or with basic credentials. */
  status(credentials?: { username: string; password: string }): Promise<number> {
    const headers: Record<string, string> = credentials
      ? {
          authorization: `Basic ${Buffer.from(`${credentials.username}:${credentials.password}`).toString('base64')}`,
        }
      : {};
    return new Promise((resolveStatus, reject) => {
      const req = request(
        {
          host: '127.0.0.1',
          port: this.port,
          path: '/v2/',
          ca: readFileSync(this.ca.certPath),
          headers,
          timeout: 5_000,
        },
        (res) => {
          res.resume();
          resolveStatus(res.statusCode ?? 0);
        },
      );
      req.on('timeout', () => req.destroy(new Error(`GET https://${this.host}/v2/ timed out`)));
      req.on('error', reject);
      req.end();
    });
  }

  /**
   * Sets a user's password in htpasswd, as a registry admin rotating it would. distribution
   * re-reads htpasswd when its mtime changes (registry/auth/htpasswd/access.go in v3.1.2), so no
   * restart is needed; this resolves once the registry accepts the new password.
   */
  async setPassword(username: string, password: string): Promise<void> {
    this.users.set(username, await htpasswdLine(username, password));
    await this.writeHtpasswd();
    await waitUntil(
      `registry ${this.host} to accept the new password of ${username}`,
      async () => (await this.status({ username, password })) === 200,
      { timeoutMs: 10_000 },
    );
  }

  /** Kills the process and removes its storage. Safe to call more than once. */
  async stop(): Promise<void> {
    const child = this.child;
    if (child && child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
      await this.exited;
      clearTimeout(timer);
    }
    this.child = undefined;
    live.delete(this);
    if (this.dir) await rm(this.dir, { recursive: true, force: true });
  }

  /** Last resort on process exit: no awaiting is possible there. */
  killNow(): void {
    this.child?.kill('SIGKILL');
    if (this.dir) rmSync(this.dir, { recursive: true, force: true });
  }
}

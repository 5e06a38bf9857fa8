// A real image registry for the e2e suite: Debian's `docker-registry` (the CNCF distribution
// registry) as a child process on a loopback port, serving TLS with a certificate from a test CA
// that openssl makes at test time, and requiring htpasswd (bcrypt) basic auth.
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { accessSync, constants, createWriteStream, mkdirSync, readFileSync, rmSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { request } from 'node:https';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { freePort } from './controlplane.ts';
import { waitUntil } from './wait.ts';

/** The programs the e2e suite runs, and the Debian package that ships each. */
export const E2E_TOOLS = [
  { command: 'docker-registry', debianPackage: 'docker-registry' },
  { command: 'htpasswd', debianPackage: 'apache2-utils' },
  { command: 'skopeo', debianPackage: 'skopeo' },
  { command: 'openssl', debianPackage: 'openssl' },
] as const;

function onPath(command: string): boolean {
  return (process.env.PATH ?? '').split(delimiter).some((dir) => {
    try {
      accessSync(join(dir, command), constants.X_OK);
      return true;
    } catch {
      return false;
    }
  });
}

/** Throws, naming the command that installs them, unless every e2e tool is on PATH. */
export function assertE2eToolsInstalled(): void {
  const missing = E2E_TOOLS.filter((tool) => !onPath(tool.command));
  if (missing.length === 0) return;
  const packages = missing.map((tool) => tool.debianPackage).join(' ');
  throw new Error(
    `the e2e suite needs ${missing.map((tool) => tool.command).join(', ')} on PATH; install with:\n` +
      `  sudo apt-get update && sudo apt-get install -y --no-install-recommends ${packages}`,
  );
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
 * containers/image client as `--cert-dir` (a `.key` there would be read as a client key).
 */
export class TestCA {
  readonly dir: string;
  readonly certPath: string;
  private readonly keyPath: string;

  private constructor(dir: string, certPath: string, keyPath: string) {
    this.dir = dir;
    this.certPath = certPath;
    this.keyPath = keyPath;
  }

  get certDir(): string {
    return join(this.dir, 'trust');
  }

  static async create(): Promise<TestCA> {
    const dir = await mkdtemp(join(tmpdir(), 'regcred-e2e-ca-'));
    mkdirSync(join(dir, 'private'), { mode: 0o700 });
    mkdirSync(join(dir, 'trust'));
    const certPath = join(dir, 'trust', 'ca.crt');
    const keyPath = join(dir, 'private', 'ca.key');
    await runOk('openssl', [
      'req',
      '-x509',
      ...EC_KEY,
      '-keyout',
      keyPath,
      '-out',
      certPath,
      '-days',
      '2',
      '-subj',
      '/CN=regcred-operator e2e test CA',
      '-addext',
      'basicConstraints=critical,CA:TRUE',
      '-addext',
      'keyUsage=critical,keyCertSign,cRLSign',
    ]);
    return new TestCA(dir, certPath, keyPath);
  }

  /** Issues a serving certificate for 127.0.0.1 (and localhost) into `dir`. */
  async issueServerCertificate(dir: string): Promise<{ certPath: string; keyPath: string }> {
    const keyPath = join(dir, 'server.key');
    const csrPath = join(dir, 'server.csr');
    const certPath = join(dir, 'server.crt');
    const extPath = join(dir, 'server.ext');
    await runOk('openssl', [
      'req',
      '-new',
      ...EC_KEY,
      '-keyout',
      keyPath,
      '-out',
      csrPath,
      '-subj',
      '/CN=127.0.0.1',
    ]);
    // Go clients ignore the CN: the address must be a subjectAltName.
    await writeFile(
      extPath,
      [
        'subjectAltName=IP:127.0.0.1,DNS:localhost',
        'basicConstraints=critical,CA:FALSE',
        'keyUsage=critical,digitalSignature',
        'extendedKeyUsage=serverAuth',
        '',
      ].join('\n'),
    );
    await runOk('openssl', [
      'x509',
      '-req',
      '-in',
      csrPath,
      '-CA',
      this.certPath,
      '-CAkey',
      this.keyPath,
      '-set_serial',
      `0x${randomBytes(8).toString('hex')}`,
      '-days',
      '2',
      '-extfile',
      extPath,
      '-out',
      certPath,
    ]);
    return { certPath, keyPath };
  }

  async remove(): Promise<void> {
    await rm(this.dir, { recursive: true, force: true });
  }
}

const EC_KEY = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];

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
    let first = true;
    for (const [user, password] of Object.entries(users)) {
      await runOk('htpasswd', [first ? '-ciB' : '-iB', this.htpasswdPath, user], {
        input: password,
      });
      first = false;
    }
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
    // Only PATH: REGISTRY_* variables would override config.yml.
    const child = spawn('docker-registry', ['serve', join(this.dir, 'config.yml')], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { PATH: process.env.PATH ?? '' },
    });
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
          throw new Error(`docker-registry exited:\n${this.lastLogLines()}`);
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
   * Sets a user's password in htpasswd, as a registry admin rotating it would. distribution 2.8
   * re-reads htpasswd when its mtime changes (checked against 2.8.2), so no restart is needed;
   * this resolves once the registry accepts the new password.
   */
  async setPassword(username: string, password: string): Promise<void> {
    await runOk('htpasswd', ['-iB', this.htpasswdPath, username], { input: password });
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

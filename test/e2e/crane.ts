// The pulling client: crane (go-containerregistry, built by scripts/provision.sh) run with a
// private HOME and DOCKER_CONFIG, so only the auth file a test hands it counts, never the
// machine's ~/.docker/config.json; and with SSL_CERT_FILE/SSL_CERT_DIR naming only the trust a
// test hands it (Go reads its roots from those on Linux).
import { createHash } from 'node:crypto';
import { copyFile, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { OciImage } from '../support/oci-image.ts';
import { type CommandResult, registryTools, run } from '../support/registry.ts';

export class Crane {
  readonly dir: string;
  private readonly binary: string;
  private runs = 0;

  private constructor(dir: string, binary: string) {
    this.dir = dir;
    this.binary = binary;
  }

  static async create(): Promise<Crane> {
    const dir = await mkdtemp(join(tmpdir(), 'regcred-e2e-crane-'));
    await mkdir(join(dir, 'home'));
    return new Crane(dir, join(await registryTools(), 'crane'));
  }

  /**
   * Runs crane with `authFile` as its only docker config and `caFile` as its only trusted root
   * (or the system's roots when `caFile` is undefined).
   */
  private async run(
    args: string[],
    auth:
      | { authFile: string }
      | { credentials: { username: string; password: string }; host: string },
    caFile: string | undefined,
  ): Promise<CommandResult> {
    this.runs += 1;
    const config = join(this.dir, `config-${this.runs}`);
    await mkdir(config);
    if ('authFile' in auth) {
      await copyFile(auth.authFile, join(config, 'config.json'));
    } else {
      const { username, password } = auth.credentials;
      await writeFile(
        join(config, 'config.json'),
        JSON.stringify({
          auths: {
            [auth.host]: { auth: Buffer.from(`${username}:${password}`).toString('base64') },
          },
        }),
        { mode: 0o600 },
      );
    }
    const trust: NodeJS.ProcessEnv = caFile
      ? { SSL_CERT_FILE: caFile, SSL_CERT_DIR: join(this.dir, 'home') }
      : {};
    const result = await run(this.binary, args, {
      env: {
        PATH: process.env.PATH ?? '',
        HOME: join(this.dir, 'home'),
        DOCKER_CONFIG: config,
        ...trust,
      },
      timeoutMs: 60_000,
    });
    await rm(config, { recursive: true, force: true });
    return result;
  }

  /** Pushes an OCI layout to `reference` (host/repository:tag) as `credentials`. */
  async push(
    image: OciImage,
    reference: string,
    credentials: { username: string; password: string },
    caFile: string,
  ): Promise<void> {
    const host = reference.slice(0, reference.indexOf('/'));
    const result = await this.run(['push', image.dir, reference], { credentials, host }, caFile);
    if (result.code !== 0) {
      throw new Error(`crane push to ${reference} exited ${result.code}: ${result.stderr}`);
    }
  }

  /**
   * Reads the image's manifest with only the credentials in `authFile`; on success `digest` is
   * the sha256 of the manifest bytes served.
   */
  async inspect(
    reference: string,
    authFile: string,
    caFile: string | undefined,
  ): Promise<CommandResult & { digest?: string }> {
    const result = await this.run(['manifest', reference], { authFile }, caFile);
    if (result.code !== 0) return result;
    return {
      ...result,
      digest: `sha256:${createHash('sha256').update(result.stdout).digest('hex')}`,
    };
  }

  /** Pulls the whole image (manifest, config and layers) into an OCI layout, as a node would. */
  async pull(
    reference: string,
    authFile: string,
    caFile: string,
  ): Promise<CommandResult & { dir: string }> {
    const dir = await mkdtemp(join(this.dir, 'pulled-'));
    const result = await this.run(['pull', '--format=oci', reference, dir], { authFile }, caFile);
    return { ...result, dir };
  }

  async remove(): Promise<void> {
    await rm(this.dir, { recursive: true, force: true });
  }
}

/** What a refused pull prints: the registry's 401, in go-containerregistry's words. */
export const UNAUTHORIZED = /unauthorized|authentication required/i;

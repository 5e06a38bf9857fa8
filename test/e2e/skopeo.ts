// The pulling client: skopeo (containers/image, the library CRI-O pulls with) run with a private
// HOME, registries.conf and policy, so only the auth file and CA a test hands it count, never the
// machine's ~/.docker/config.json or containers auth.json.
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type CommandResult, run } from '../support/registry.ts';
import type { OciImage } from './oci-image.ts';

export interface InspectedImage {
  Digest: string;
  Architecture: string;
  Os: string;
  Layers: string[];
}

export class Skopeo {
  readonly dir: string;

  private constructor(dir: string) {
    this.dir = dir;
  }

  static async create(): Promise<Skopeo> {
    const dir = await mkdtemp(join(tmpdir(), 'regcred-e2e-skopeo-'));
    await Promise.all([
      mkdir(join(dir, 'home')),
      mkdir(join(dir, 'tmp')),
      mkdir(join(dir, 'registries.d')),
    ]);
    await writeFile(join(dir, 'registries.conf'), '');
    await writeFile(
      join(dir, 'policy.json'),
      JSON.stringify({ default: [{ type: 'insecureAcceptAnything' }] }),
    );
    return new Skopeo(dir);
  }

  private run(args: string[]): Promise<CommandResult> {
    return run(
      'skopeo',
      [
        `--registries.d=${join(this.dir, 'registries.d')}`,
        `--policy=${join(this.dir, 'policy.json')}`,
        ...args,
      ],
      {
        env: {
          PATH: process.env.PATH ?? '',
          HOME: join(this.dir, 'home'),
          TMPDIR: join(this.dir, 'tmp'),
          CONTAINERS_REGISTRIES_CONF: join(this.dir, 'registries.conf'),
        },
        timeoutMs: 60_000,
      },
    );
  }

  /** Pushes an OCI layout to `reference` (host/repository:tag) as `username`. */
  async push(
    image: OciImage,
    reference: string,
    credentials: { username: string; password: string },
    certDir: string,
  ): Promise<void> {
    const result = await this.run([
      'copy',
      '--retry-times=0',
      `--dest-creds=${credentials.username}:${credentials.password}`,
      `--dest-cert-dir=${certDir}`,
      `oci:${image.dir}:${image.tag}`,
      `docker://${reference}`,
    ]);
    if (result.code !== 0) {
      throw new Error(`skopeo copy to ${reference} exited ${result.code}: ${result.stderr}`);
    }
  }

  /** Reads the image's manifest and config with only the credentials in `authFile`. */
  inspect(reference: string, authFile: string, certDir: string): Promise<CommandResult> {
    return this.run([
      'inspect',
      '--retry-times=0',
      `--authfile=${authFile}`,
      `--cert-dir=${certDir}`,
      `docker://${reference}`,
    ]);
  }

  /** Pulls the whole image (manifest, config and layers) into a directory, as a node would. */
  async pull(
    reference: string,
    authFile: string,
    certDir: string,
  ): Promise<CommandResult & { dir: string }> {
    const dir = await mkdtemp(join(this.dir, 'pulled-'));
    const result = await this.run([
      'copy',
      '--retry-times=0',
      `--src-authfile=${authFile}`,
      `--src-cert-dir=${certDir}`,
      `docker://${reference}`,
      `dir:${dir}`,
    ]);
    return { ...result, dir };
  }

  async remove(): Promise<void> {
    await rm(this.dir, { recursive: true, force: true });
  }
}

/** What a refused pull prints: the registry's 401, in containers/image's words. */
export const UNAUTHORIZED = /unauthorized|authentication required/i;

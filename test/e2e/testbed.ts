// What each e2e story starts from: a test CA, registries that trust it and hold the demo image,
// and a pulling client that sees only the credentials a node would find for a namespace.
import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import type { Fixtures } from '../support/fixtures.ts';
import { type CommandResult, TestCA, TestRegistry } from '../support/registry.ts';
import { type NodeCredential, nodePullCredentials, writeAuthFile } from './node-credentials.ts';
import { type OciImage, writeOciImage } from './oci-image.ts';
import { Skopeo } from './skopeo.ts';

export const DEMO_REPOSITORY = 'demo/app';
export const DEMO_FILE = { name: 'hello.txt', content: 'pulled with a regcred-operator Secret\n' };

/** A password no test spells twice. */
export function newPassword(): string {
  return randomBytes(12).toString('base64url');
}

export class PullTestbed {
  readonly image: OciImage;
  private readonly f: Fixtures;
  private readonly ca: TestCA;
  private readonly skopeo: Skopeo;
  private readonly dir: string;
  private readonly registries: TestRegistry[] = [];
  private authFiles = 0;

  private constructor(f: Fixtures, ca: TestCA, skopeo: Skopeo, dir: string, image: OciImage) {
    this.f = f;
    this.ca = ca;
    this.skopeo = skopeo;
    this.dir = dir;
    this.image = image;
  }

  static async create(f: Fixtures): Promise<PullTestbed> {
    const dir = await mkdtemp(join(tmpdir(), 'regcred-e2e-'));
    const [ca, skopeo, image] = await Promise.all([
      TestCA.create(),
      Skopeo.create(),
      writeOciImage(join(dir, 'layout'), 'v1', DEMO_FILE),
    ]);
    return new PullTestbed(f, ca, skopeo, dir, image);
  }

  /** Starts a registry whose htpasswd holds `users` (and a publisher) and pushes the image. */
  async registry(users: Record<string, string>): Promise<TestRegistry> {
    const publisher = { username: 'publisher', password: newPassword() };
    const registry = await TestRegistry.start({
      ca: this.ca,
      users: { ...users, [publisher.username]: publisher.password },
    });
    this.registries.push(registry);
    await this.skopeo.push(this.image, this.imageOn(registry), publisher, this.ca.certDir);
    return registry;
  }

  imageOn(registry: TestRegistry): string {
    return `${registry.host}/${DEMO_REPOSITORY}:${this.image.tag}`;
  }

  /** The credentials a node would find for a Pod in `namespace` running as `serviceAccount`. */
  nodeCredentials(
    namespace: string,
    serviceAccount = 'default',
  ): Promise<Map<string, NodeCredential>> {
    return nodePullCredentials(this.f, namespace, serviceAccount);
  }

  /** Writes those credentials to a fresh auth file; returns its path. */
  async nodeAuthFile(namespace: string, serviceAccount = 'default'): Promise<string> {
    return this.authFile(await this.nodeCredentials(namespace, serviceAccount));
  }

  authFile(credentials: Map<string, NodeCredential>): Promise<string> {
    this.authFiles += 1;
    return writeAuthFile(join(this.dir, `auth-${this.authFiles}.json`), credentials);
  }

  /** Reads the image's manifest and config from `registry` with only `authFile`'s credentials. */
  inspect(registry: TestRegistry, authFile: string): Promise<CommandResult> {
    return this.skopeo.inspect(this.imageOn(registry), authFile, this.ca.certDir);
  }

  /** Like inspect, but trusting no test CA: only the system's roots. */
  async inspectWithoutTestCA(registry: TestRegistry, authFile: string): Promise<CommandResult> {
    const noCertificates = await mkdtemp(join(this.dir, 'no-ca-'));
    return this.skopeo.inspect(this.imageOn(registry), authFile, noCertificates);
  }

  /** Pulls the whole image; resolves with the file the layer holds, or the client's error. */
  async pullFile(
    registry: TestRegistry,
    authFile: string,
  ): Promise<CommandResult & { content?: string }> {
    const result = await this.skopeo.pull(this.imageOn(registry), authFile, this.ca.certDir);
    if (result.code !== 0) return result;
    // skopeo's dir: transport names each blob by the hex of its digest.
    const layer = gunzipSync(
      await readFile(join(result.dir, this.image.layerDigest.slice('sha256:'.length))),
    );
    const header = layer.subarray(0, 512);
    const name = header.subarray(0, 100).toString('utf8').replace(/\0.*$/s, '');
    const size = Number.parseInt(header.subarray(124, 135).toString('ascii'), 8);
    const content = layer.subarray(512, 512 + size).toString('utf8');
    return { ...result, content: name === DEMO_FILE.name ? content : undefined };
  }

  async close(): Promise<void> {
    await Promise.all(this.registries.map((registry) => registry.stop()));
    await Promise.all([this.skopeo.remove(), this.ca.remove()]);
    await rm(this.dir, { recursive: true, force: true });
  }
}

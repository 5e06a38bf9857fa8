// What each e2e story starts from: a test CA, registries that trust it and hold the demo image,
// and a pulling client that sees only the credentials a node would find for a namespace.
import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import type { Fixtures } from '../support/fixtures.ts';
import { type OciImage, writeOciImage } from '../support/oci-image.ts';
import { folderOf, provision } from '../support/provision.ts';
import { type CommandResult, TestCA, TestRegistry } from '../support/registry.ts';
import { Crane } from './crane.ts';
import { type NodeCredential, nodePullCredentials, writeAuthFile } from './node-credentials.ts';

export const DEMO_REPOSITORY = 'demo/app';
/** The image the node's Pods run: the demo file plus the pause binary as its command. */
export const RUN_REPOSITORY = 'demo/run';
export const DEMO_FILE = { name: 'hello.txt', content: 'pulled with a regcred-operator Secret\n' };

/** A password no test spells twice. */
export function newPassword(): string {
  return randomBytes(12).toString('base64url');
}

export class PullTestbed {
  readonly image: OciImage;
  readonly runImage: OciImage;
  private readonly f: Fixtures;
  private readonly ca: TestCA;
  private readonly crane: Crane;
  private readonly dir: string;
  private readonly registries: TestRegistry[] = [];
  private authFiles = 0;

  private constructor(
    f: Fixtures,
    ca: TestCA,
    crane: Crane,
    dir: string,
    image: OciImage,
    runImage: OciImage,
  ) {
    this.f = f;
    this.runImage = runImage;
    this.ca = ca;
    this.crane = crane;
    this.dir = dir;
    this.image = image;
  }

  static async create(f: Fixtures): Promise<PullTestbed> {
    const dir = await mkdtemp(join(tmpdir(), 'regcred-e2e-'));
    const pause = join(folderOf(await provision(['node']), 'pause'), 'pause');
    const [ca, crane, image, runImage] = await Promise.all([
      TestCA.create(),
      Crane.create(),
      writeOciImage(join(dir, 'layout'), 'v1', DEMO_FILE),
      readFile(pause).then((binary) =>
        writeOciImage(join(dir, 'run-layout'), 'v1', DEMO_FILE, {
          files: [{ name: 'pause', content: binary, mode: 0o755 }],
          cmd: ['/pause'],
        }),
      ),
    ]);
    return new PullTestbed(f, ca, crane, dir, image, runImage);
  }

  /** The test CA's certificate: what a node trusts the registries with. */
  get caFile(): string {
    return this.ca.certPath;
  }

  /** Starts a registry whose htpasswd holds `users` (and a publisher) and pushes the image. */
  async registry(users: Record<string, string>): Promise<TestRegistry> {
    const publisher = { username: 'publisher', password: newPassword() };
    const registry = await TestRegistry.start({
      ca: this.ca,
      users: { ...users, [publisher.username]: publisher.password },
    });
    this.registries.push(registry);
    await Promise.all([
      this.crane.push(this.image, this.imageOn(registry), publisher, this.ca.certPath),
      this.crane.push(this.runImage, this.runImageOn(registry), publisher, this.ca.certPath),
    ]);
    return registry;
  }

  imageOn(registry: TestRegistry): string {
    return `${registry.host}/${DEMO_REPOSITORY}:${this.image.tag}`;
  }

  /** The runnable image on `registry`, as a Pod names it. */
  runImageOn(registry: TestRegistry): string {
    return `${registry.host}/${RUN_REPOSITORY}:${this.runImage.tag}`;
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

  /**
   * Reads the image's manifest from `registry` with only `authFile`'s credentials; `digest` is
   * that of the manifest served.
   */
  inspect(registry: TestRegistry, authFile: string): Promise<CommandResult & { digest?: string }> {
    return this.crane.inspect(this.imageOn(registry), authFile, this.ca.certPath);
  }

  /** Like inspect, but trusting no test CA: only the system's roots. */
  inspectWithoutTestCA(registry: TestRegistry, authFile: string): Promise<CommandResult> {
    return this.crane.inspect(this.imageOn(registry), authFile, undefined);
  }

  /** Pulls the whole image; resolves with the file the layer holds, or the client's error. */
  async pullFile(
    registry: TestRegistry,
    authFile: string,
  ): Promise<CommandResult & { content?: string }> {
    const result = await this.crane.pull(this.imageOn(registry), authFile, this.ca.certPath);
    if (result.code !== 0) return result;
    // An OCI layout names each blob by the hex of its digest.
    const layer = gunzipSync(
      await readFile(
        join(result.dir, 'blobs', 'sha256', this.image.layerDigest.slice('sha256:'.length)),
      ),
    );
    const header = layer.subarray(0, 512);
    const name = header.subarray(0, 100).toString('utf8').replace(/\0.*$/s, '');
    const size = Number.parseInt(header.subarray(124, 135).toString('ascii'), 8);
    const content = layer.subarray(512, 512 + size).toString('utf8');
    return { ...result, content: name === DEMO_FILE.name ? content : undefined };
  }

  async close(): Promise<void> {
    await Promise.all(this.registries.map((registry) => registry.stop()));
    await Promise.all([this.crane.remove(), this.ca.remove()]);
    await rm(this.dir, { recursive: true, force: true });
  }
}

// Test fixtures in the user's terms: namespaces, source Secrets, RegistryCredentials, and
// reads of what the operator wrote. All writes go through the admin identity.
import {
  CoreV1Api,
  CustomObjectsApi,
  type KubeConfig,
  PatchStrategy,
  setHeaderOptions,
  type V1Secret,
  type V1ServiceAccount,
} from '@kubernetes/client-node';
import {
  type Condition,
  type ConditionType,
  GROUP,
  PLURAL,
  type RegistryCredential,
  type RegistryCredentialSpec,
  SOURCE_LABEL,
  SOURCE_LABEL_VALUE,
  VERSION,
} from '../../src/api/types.ts';
import { uniqueName } from './names.ts';
import { type WaitOptions, waitFor } from './wait.ts';

// Every credential string the tests wrote into a source Secret (passwords, and the `auth`
// value built from them; usernames are not secret), so the leak check at the end of the suite
// (zz-no-leaks.test.ts) knows what to look for.
const credentialStrings = new Set<string>();
/** Usernames of the basic sources made here, to know the `auth` a new password makes. */
const basicUsernames = new Map<string, string>();
const NOT_SECRET_KEYS = /^(user(name)?|login|email)$/i;

function basicAuth(username: string, password: string): string {
  return Buffer.from(`${username}:${password}`).toString('base64');
}

/** Registers credential strings a test used, for the end-of-suite leak check. */
export function registerCredentialStrings(...values: string[]): void {
  for (const value of values) if (value !== '') credentialStrings.add(value);
}

/** Registers the secret values of a source Secret's stringData (not usernames). */
function registerSecretData(key: string, stringData: Record<string, string>): void {
  for (const [field, value] of Object.entries(stringData)) {
    if (!NOT_SECRET_KEYS.test(field)) registerCredentialStrings(value);
  }
  const username = stringData.username ?? basicUsernames.get(key);
  if (stringData.username !== undefined) basicUsernames.set(key, stringData.username);
  if (username !== undefined && stringData.password !== undefined) {
    registerCredentialStrings(
      `${username}:${stringData.password}`,
      basicAuth(username, stringData.password),
    );
  }
}

/** The credential strings of a dockerconfigjson, and the config itself when it holds any. */
function registerConfigStrings(json: string, config: DockerConfig): void {
  let holdsSecrets = false;
  for (const entry of Object.values(config.auths ?? {})) {
    for (const value of [entry.password, entry.auth, entry.identitytoken, entry.registrytoken]) {
      if (value) {
        registerCredentialStrings(value);
        holdsSecrets = true;
      }
    }
    if (entry.password) registerCredentialStrings(`${entry.username ?? ''}:${entry.password}`);
  }
  if (holdsSecrets) registerCredentialStrings(json);
}

/** Every credential string registered so far in this test run. */
export function usedCredentialStrings(): string[] {
  return [...credentialStrings];
}

/** The label a Secret needs to be read as a credential source (API.md). */
export const SOURCE_LABELS: Readonly<Record<string, string>> = {
  [SOURCE_LABEL]: SOURCE_LABEL_VALUE,
};

export interface DockerConfig {
  auths: Record<
    string,
    {
      username?: string;
      password?: string;
      auth?: string;
      identitytoken?: string;
      registrytoken?: string;
    }
  >;
}

export class Fixtures {
  readonly core: CoreV1Api;
  readonly custom: CustomObjectsApi;

  constructor(kc: KubeConfig) {
    this.core = kc.makeApiClient(CoreV1Api);
    this.custom = kc.makeApiClient(CustomObjectsApi);
  }

  /** Creates a namespace with a unique name and the given labels; returns its name. */
  async namespace(
    prefix: string,
    labels: Record<string, string> = {},
    annotations: Record<string, string> = {},
  ): Promise<string> {
    const name = uniqueName(prefix);
    await this.core.createNamespace({ body: { metadata: { name, labels, annotations } } });
    return name;
  }

  async labelNamespace(name: string, labels: Record<string, string | null>): Promise<void> {
    await this.core.patchNamespace(
      { name, body: { metadata: { labels } } },
      setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
    );
  }

  async annotateNamespace(name: string, annotations: Record<string, string | null>): Promise<void> {
    await this.core.patchNamespace(
      { name, body: { metadata: { annotations } } },
      setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
    );
  }

  /** A username/password Secret as `basic` sources read it, labelled as a source. */
  async basicSecret(
    namespace: string,
    name: string,
    username: string,
    password: string,
  ): Promise<V1Secret> {
    registerCredentialStrings(password, `${username}:${password}`, basicAuth(username, password));
    basicUsernames.set(`${namespace}/${name}`, username);
    return this.core.createNamespacedSecret({
      namespace,
      body: {
        metadata: { name, labels: { ...SOURCE_LABELS } },
        type: 'Opaque',
        stringData: { username, password },
      },
    });
  }

  /** A dockerconfigjson Secret as `dockerConfig` sources read it, labelled as a source. */
  async dockerConfigSecret(
    namespace: string,
    name: string,
    config: DockerConfig,
  ): Promise<V1Secret> {
    registerConfigStrings(JSON.stringify(config), config);
    for (const entry of Object.values(config.auths)) {
      const decoded = entry.auth ? Buffer.from(entry.auth, 'base64').toString('utf8') : '';
      // `user:password` inside auth, and the password alone.
      if (decoded.includes(':')) {
        registerCredentialStrings(decoded, decoded.slice(decoded.indexOf(':') + 1));
      }
    }
    return this.core.createNamespacedSecret({
      namespace,
      body: {
        metadata: { name, labels: { ...SOURCE_LABELS } },
        type: 'kubernetes.io/dockerconfigjson',
        stringData: { '.dockerconfigjson': JSON.stringify(config) },
      },
    });
  }

  /** Adds or removes (null) labels on a Secret. */
  async labelSecret(
    namespace: string,
    name: string,
    labels: Record<string, string | null>,
  ): Promise<void> {
    await this.core.patchNamespacedSecret(
      { namespace, name, body: { metadata: { labels } } },
      setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
    );
  }

  async setSecretData(
    namespace: string,
    name: string,
    stringData: Record<string, string>,
  ): Promise<void> {
    registerSecretData(`${namespace}/${name}`, stringData);
    await this.core.patchNamespacedSecret(
      { namespace, name, body: { stringData } },
      setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
    );
  }

  async createCredential(name: string, spec: RegistryCredentialSpec): Promise<RegistryCredential> {
    return (await this.custom.createClusterCustomObject({
      group: GROUP,
      version: VERSION,
      plural: PLURAL,
      body: {
        apiVersion: `${GROUP}/${VERSION}`,
        kind: 'RegistryCredential',
        metadata: { name },
        spec,
      },
    })) as RegistryCredential;
  }

  async patchCredential(name: string, patch: Record<string, unknown>): Promise<RegistryCredential> {
    return (await this.custom.patchClusterCustomObject(
      { group: GROUP, version: VERSION, plural: PLURAL, name, body: patch },
      setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
    )) as RegistryCredential;
  }

  async getCredential(name: string): Promise<RegistryCredential> {
    return (await this.custom.getClusterCustomObject({
      group: GROUP,
      version: VERSION,
      plural: PLURAL,
      name,
    })) as RegistryCredential;
  }

  async deleteCredential(name: string): Promise<void> {
    await this.custom.deleteClusterCustomObject({
      group: GROUP,
      version: VERSION,
      plural: PLURAL,
      name,
    });
  }

  /** Waits until the RegistryCredential is gone (its finalizer ran). */
  async waitCredentialGone(name: string, options?: WaitOptions): Promise<void> {
    await waitFor(
      `RegistryCredential ${name} to be deleted`,
      async () => {
        try {
          return await this.getCredential(name);
        } catch (error) {
          if ((error as { code?: number }).code === 404) return undefined;
          throw error;
        }
      },
      (cred) => cred === undefined,
      options,
    );
  }

  /** Waits for a condition on the current generation, e.g. ('Ready', 'True'). */
  async waitCondition(
    name: string,
    type: ConditionType,
    status: 'True' | 'False',
    reason?: string,
    options?: WaitOptions,
  ): Promise<RegistryCredential> {
    return waitFor(
      `RegistryCredential ${name} condition ${type}=${status}${reason ? ` reason=${reason}` : ''}`,
      () => this.getCredential(name),
      (cred) => {
        const c: Condition | undefined = cred.status?.conditions?.find((x) => x.type === type);
        return (
          c !== undefined &&
          c.status === status &&
          (reason === undefined || c.reason === reason) &&
          c.observedGeneration === cred.metadata.generation
        );
      },
      options,
    );
  }

  async secret(namespace: string, name: string): Promise<V1Secret | undefined> {
    try {
      return await this.core.readNamespacedSecret({ namespace, name });
    } catch (error) {
      if ((error as { code?: number }).code === 404) return undefined;
      throw error;
    }
  }

  async serviceAccount(namespace: string, name = 'default'): Promise<V1ServiceAccount | undefined> {
    try {
      return await this.core.readNamespacedServiceAccount({ namespace, name });
    } catch (error) {
      if ((error as { code?: number }).code === 404) return undefined;
      throw error;
    }
  }

  /** The imagePullSecrets names of a ServiceAccount, in order ([] when it has none). */
  async pullSecretNames(namespace: string, name = 'default'): Promise<string[]> {
    return ((await this.serviceAccount(namespace, name))?.imagePullSecrets ?? []).map(
      (e) => e.name ?? '',
    );
  }

  /**
   * The decoded .dockerconfigjson of a Secret, or undefined when it does not exist. Every
   * credential form in it is registered for the leak check: each password, `user:password`,
   * `auth` (a cloud token's too, e.g. ACR's), and the whole config (its base64 is the data).
   */
  async dockerConfig(namespace: string, name: string): Promise<DockerConfig | undefined> {
    const secret = await this.secret(namespace, name);
    const data = secret?.data?.['.dockerconfigjson'];
    if (!data) return undefined;
    const json = Buffer.from(data, 'base64').toString('utf8');
    const config = JSON.parse(json) as DockerConfig;
    registerConfigStrings(json, config);
    return config;
  }

  /** Waits until the Secret exists and its dockerconfigjson satisfies `accept`. */
  waitDockerConfig(
    namespace: string,
    name: string,
    accept: (config: DockerConfig) => boolean,
    options?: WaitOptions,
  ): Promise<DockerConfig | undefined> {
    return waitFor(
      `Secret ${namespace}/${name} with the expected .dockerconfigjson`,
      () => this.dockerConfig(namespace, name),
      (config) => config !== undefined && accept(config),
      options,
    );
  }

  waitSecretGone(
    namespace: string,
    name: string,
    options?: WaitOptions,
  ): Promise<V1Secret | undefined> {
    return waitFor(
      `Secret ${namespace}/${name} to be deleted`,
      () => this.secret(namespace, name),
      (s) => s === undefined,
      options,
    );
  }

  waitPullSecrets(
    namespace: string,
    sa: string,
    accept: (names: string[]) => boolean,
    options?: WaitOptions,
  ): Promise<string[]> {
    return waitFor(
      `ServiceAccount ${namespace}/${sa} imagePullSecrets`,
      () => this.pullSecretNames(namespace, sa),
      accept,
      options,
    );
  }

  /** Events recorded on a RegistryCredential (reason and message), oldest first. */
  async events(
    credentialName: string,
  ): Promise<Array<{ type: string; reason: string; message: string; count: number }>> {
    const list = await this.core.listNamespacedEvent({
      namespace: 'default',
      fieldSelector: `involvedObject.kind=RegistryCredential,involvedObject.name=${credentialName}`,
    });
    return list.items.map((e) => ({
      type: e.type ?? '',
      reason: e.reason ?? '',
      message: e.message ?? '',
      count: e.count ?? 1,
    }));
  }
}

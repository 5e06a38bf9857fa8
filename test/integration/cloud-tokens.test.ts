// Cloud registry tokens end to end: an operator process whose SDKs talk to local fakes of ECR,
// STS, Google's token endpoint and metadata server, Entra ID and ACR's token exchange. Tokens
// live for seconds, so real refreshes happen while the test watches: the new token must reach
// every target namespace in one fan-out, with one cloud call per refresh whatever the number of
// namespaces; a failing cloud keeps the last good Secret until the token expires, then the
// registry drops out; a forced refresh is one more call.
//
// This file's operator runs from dist/, the bundle the image ships: the cloud SDKs stay out of
// the bundle and are loaded from node_modules on first use, and these tests are where that
// lazy loading is exercised for all three clouds.
import assert from 'node:assert/strict';
import { randomInt } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  AdmissionregistrationV1Api,
  PatchStrategy,
  setHeaderOptions,
} from '@kubernetes/client-node';
import {
  CREDENTIAL_LABEL,
  REFRESH_REQUESTED_ANNOTATION,
  type Registry,
  type RegistryCredential,
  type RegistryCredentialSpec,
  type RegistryStatus,
} from '../../src/api/types.ts';
import { AwsKeyring, type AwsKeys, FakeEcr, FakeSts } from '../support/fakes/aws.ts';
import { FakeAcr, FakeEntraId, IssuedAadTokens } from '../support/fakes/azure.ts';
import { AWS_CLEAN_ENV, AZURE_CLEAN_ENV, GOOGLE_CLEAN_ENV } from '../support/fakes/env.ts';
import { distinctive, type RecordedCall } from '../support/fakes/fake-server.ts';
import {
  FakeGceMetadata,
  FakeGoogleOAuth,
  makeServiceAccountKey,
  type ServiceAccountKey,
} from '../support/fakes/google.ts';
import { testCertificates } from '../support/fakes/test-ca.ts';
import {
  type DockerConfig,
  Fixtures,
  registerCredentialStrings,
  SOURCE_LABELS,
  usedCredentialStrings,
} from '../support/fixtures.ts';
import { findLeaks } from '../support/leaks.ts';
import { uniqueName } from '../support/names.ts';
import { buildDist, type OperatorProcess, startOperator } from '../support/operator.ts';
import { waitFor, waitUntil } from '../support/wait.ts';
import { cluster, EXTRA_SOURCE_NAMESPACE, OPERATOR_NAMESPACE } from './hooks.ts';

const REGION = 'eu-west-1';
const ROLE = 'arn:aws:iam::123456789012:role/pull';
const IRSA_ROLE = 'arn:aws:iam::123456789012:role/regcred-operator';
const GCP_SERVER = 'europe-west1-docker.pkg.dev';
const ACR_HOST = 'regcredtest.azurecr.io';
const ACR_USERNAME = '00000000-0000-0000-0000-000000000000';
const TENANT = '72f988bf-86f1-41af-91ab-2d7cd011db47';
const SECRET_CLIENT = '0d6c1c8e-5a4b-4c3d-8e2f-000000000001';
const WORKLOAD_CLIENT = '0d6c1c8e-5a4b-4c3d-8e2f-000000000002';
const BASIC_SERVER = 'registry.example.com';

/** A fresh 12-digit AWS account: its registry's calls and tokens are this test's alone. */
function newAccount(): string {
  return String(randomInt(100_000_000_000, 999_999_999_999));
}

function ecrServer(account: string): string {
  return `${account}.dkr.ecr.${REGION}.amazonaws.com`;
}

function b64(value: string): string {
  return Buffer.from(value, 'utf8').toString('base64');
}

/** The API's timestamp format (RFC 3339, whole seconds). */
function rfc3339(date: Date): string {
  return date.toISOString().replace(/\.\d+Z$/, 'Z');
}

function entryOf(username: string, password: string) {
  return { username, password, auth: b64(`${username}:${password}`) };
}

function condition(cred: RegistryCredential, type: 'Ready' | 'CredentialsReady' | 'Synced') {
  return cred.status?.conditions?.find((c) => c.type === type);
}

function statusCode(error: unknown): number | undefined {
  return (error as { code?: number }).code;
}

function ms(value: number): string {
  return `${Math.round(value)} ms`;
}

describe('cloud registry tokens (operator against local cloud fakes)', () => {
  let f: Fixtures;
  let op: OperatorProcess | undefined;
  let dir: string;
  let keyring: AwsKeyring;
  let ecr: FakeEcr;
  let sts: FakeSts;
  let oauth: FakeGoogleOAuth;
  let metadata: FakeGceMetadata;
  let entra: FakeEntraId;
  let acr: FakeAcr;
  let webIdentityToken: string;
  let azureFederatedToken: string;
  let azureClientSecret: string;
  /** Every key, secret and token this file's fakes handed out or were given. */
  const secretStrings = new Set<string>();
  const made = {
    credentials: [] as string[],
    secrets: [] as Array<{ namespace: string; name: string }>,
    namespaces: [] as string[],
  };

  function secretString(...values: Array<string | undefined>): void {
    for (const value of values) {
      if (value === undefined || value === '') continue;
      secretStrings.add(value);
      registerCredentialStrings(value);
    }
  }

  before(async function (this: Mocha.Context) {
    this.timeout(120_000);
    f = new Fixtures(cluster.kc);
    dir = mkdtempSync(join(tmpdir(), 'regcred-cloud-'));

    keyring = new AwsKeyring();
    ecr = await FakeEcr.start(keyring);
    sts = await FakeSts.start(keyring);
    sts.roles.add(ROLE).add(IRSA_ROLE);
    webIdentityToken = distinctive('projected-sa-token');
    sts.webIdentityToken = webIdentityToken;
    writeFileSync(join(dir, 'aws-web-identity-token'), webIdentityToken);

    oauth = await FakeGoogleOAuth.start();
    metadata = await FakeGceMetadata.start();

    const aad = new IssuedAadTokens();
    entra = await FakeEntraId.start(aad);
    acr = await FakeAcr.start(aad, ACR_HOST);
    azureClientSecret = distinctive('azure-client-secret');
    entra.clientSecrets.set(SECRET_CLIENT, azureClientSecret);
    azureFederatedToken = distinctive('azure-federated-token');
    entra.federatedTokens.set(WORKLOAD_CLIENT, azureFederatedToken);
    writeFileSync(join(dir, 'azure-federated-token'), azureFederatedToken);
    writeFileSync(join(dir, 'test-ca.pem'), testCertificates().caCert);
    secretString(webIdentityToken, azureClientSecret, azureFederatedToken);

    // Nothing from this machine may leak into the default chains: GOOGLE_CLEAN_ENV's HOME is
    // left out (CLOUDSDK_CONFIG already hides gcloud's file) so the process keeps a usable HOME.
    const { HOME: _home, ...googleEnv } = GOOGLE_CLEAN_ENV;
    buildDist();
    await cluster.stopOperator();
    op = await startOperator({
      fromDist: true,
      kubeconfigPath: cluster.operatorKubeconfigPath,
      namespace: OPERATOR_NAMESPACE,
      sourceNamespaces: [EXTRA_SOURCE_NAMESPACE],
      env: {
        ...AWS_CLEAN_ENV,
        ...googleEnv,
        ...AZURE_CLEAN_ENV,
        AWS_REGION: REGION,
        AWS_ENDPOINT_URL_ECR: ecr.url,
        AWS_ENDPOINT_URL_STS: sts.url,
        AWS_ROLE_ARN: IRSA_ROLE,
        AWS_WEB_IDENTITY_TOKEN_FILE: join(dir, 'aws-web-identity-token'),
        REGCRED_GCP_TOKEN_URL: oauth.tokenUrl,
        GCE_METADATA_HOST: metadata.host,
        AZURE_FEDERATED_TOKEN_FILE: join(dir, 'azure-federated-token'),
        REGCRED_AZURE_AUTHORITY_HOST: entra.authorityHost,
        REGCRED_ACR_EXCHANGE_URL: `${acr.server.url}/oauth2/exchange?registry={host}`,
        REGCRED_CLOUD_CA_FILE: join(dir, 'test-ca.pem'),
      },
    });
  });

  after(async function (this: Mocha.Context) {
    this.timeout(120_000);
    try {
      await op?.stop();
      await Promise.all([ecr, sts, oauth, metadata, entra, acr].map((fake) => fake?.close()));
      rmSync(dir, { recursive: true, force: true });
    } finally {
      await cluster.startOperator();
    }
  });

  afterEach(async function (this: Mocha.Context) {
    this.timeout(120_000);
    // Tokens handed out so far, for the leak check at the end.
    // A token, and the `user:password` and `auth` the operator writes with it.
    const pull = (username: string, password: string) =>
      secretString(password, `${username}:${password}`, b64(`${username}:${password}`));
    for (const issued of ecr.issued) pull('AWS', issued.password);
    for (const issued of sts.issued)
      secretString(issued.keys.secretAccessKey, issued.keys.sessionToken);
    for (const issued of oauth.issued) pull('oauth2accesstoken', issued.accessToken);
    for (const token of metadata.issued) pull('oauth2accesstoken', token);
    for (const issued of entra.issued) secretString(issued.accessToken);
    for (const issued of acr.issued) pull(ACR_USERNAME, issued.refreshToken);
    ecr.failFor.clear();
    const errors: unknown[] = [];
    const undo = async (step: () => Promise<unknown>) => {
      try {
        await step();
      } catch (error) {
        if (statusCode(error) !== 404) errors.push(error);
      }
    };
    for (const name of made.credentials.splice(0)) {
      await undo(() => f.deleteCredential(name));
      await undo(() => f.waitCredentialGone(name));
    }
    for (const { namespace, name } of made.secrets.splice(0)) {
      await undo(() => f.core.deleteNamespacedSecret({ namespace, name }));
    }
    await Promise.all(
      made.namespaces.splice(0).map((name) => undo(() => f.core.deleteNamespace({ name }))),
    );
    if (errors.length > 0) throw errors[0];
  });

  // ---- arrange, with cleanup registered for everything made ----

  /** `count` namespaces labelled with a fresh tenant; returns the tenant and the names. */
  async function tenantNamespaces(count: number): Promise<{ tenant: string; names: string[] }> {
    const tenant = uniqueName('tenant');
    const names: string[] = [];
    for (let i = 0; i < count; i += 25) {
      const batch = await Promise.all(
        Array.from({ length: Math.min(25, count - i) }, () => f.namespace('cloud', { tenant })),
      );
      names.push(...batch);
      made.namespaces.push(...batch);
    }
    return { tenant, names: names.sort() };
  }

  async function sourceSecret(
    stringData: Record<string, string>,
    namespace = OPERATOR_NAMESPACE,
  ): Promise<string> {
    const name = uniqueName('cloud-src');
    await f.core.createNamespacedSecret({
      namespace,
      body: { metadata: { name, labels: { ...SOURCE_LABELS } }, type: 'Opaque', stringData },
    });
    made.secrets.push({ namespace, name });
    return name;
  }

  /** Long-term AWS keys the fakes know, in a Secret as ecr.credentialsSecretRef reads it. */
  async function awsKeysSecret(): Promise<{ name: string; keys: AwsKeys }> {
    const keys = keyring.mint(false, distinctive('static'));
    secretString(keys.secretAccessKey);
    const name = await sourceSecret({
      AWS_ACCESS_KEY_ID: keys.accessKeyId,
      AWS_SECRET_ACCESS_KEY: keys.secretAccessKey,
    });
    return { name, keys };
  }

  /** A service-account key the fake token endpoint trusts, in a Secret of regcred-sources. */
  async function gcpKeySecret(): Promise<{ name: string; key: ServiceAccountKey }> {
    const key = makeServiceAccountKey(
      `${uniqueName('puller')}@acme-project.iam.gserviceaccount.com`,
    );
    oauth.trust(key);
    secretString(key.json, ...key.privateKey.split('\n').filter((line) => line.length >= 40));
    const name = await sourceSecret({ 'key.json': key.json }, EXTRA_SOURCE_NAMESPACE);
    return { name, key };
  }

  async function credential(spec: RegistryCredentialSpec): Promise<string> {
    const name = uniqueName('cloud');
    await f.createCredential(name, spec);
    made.credentials.push(name);
    return name;
  }

  // ---- observe ----

  /** The dockerconfigjson the credential's Secrets hold, by namespace (one list call). */
  async function secretsOf(
    name: string,
  ): Promise<Map<string, { raw: string; config: DockerConfig }>> {
    const list = await f.core.listSecretForAllNamespaces({
      labelSelector: `${CREDENTIAL_LABEL}=${name}`,
    });
    const out = new Map<string, { raw: string; config: DockerConfig }>();
    for (const secret of list.items) {
      const raw = secret.data?.['.dockerconfigjson'];
      if (raw === undefined) continue;
      out.set(secret.metadata?.namespace ?? '', {
        raw,
        config: JSON.parse(Buffer.from(raw, 'base64').toString('utf8')) as DockerConfig,
      });
    }
    return out;
  }

  /**
   * Waits until every namespace's Secret holds exactly `auths` (server → username, password),
   * read afresh on each poll; resolves with Date.now() at the first poll that saw it.
   */
  async function waitEverywhere(
    name: string,
    namespaces: readonly string[],
    auths: () => Record<string, { username: string; password: string }>,
    what: string,
    options: { timeoutMs?: number; intervalMs?: number } = {},
  ): Promise<number> {
    let seenAt = 0;
    await waitFor(
      `${what} in all ${namespaces.length} namespaces of ${name}`,
      async () => ({ secrets: await secretsOf(name), want: auths() }),
      ({ secrets, want }) => {
        const ok = namespaces.every((ns) => {
          const config = secrets.get(ns)?.config;
          return config !== undefined && holdsExactly(config, want);
        });
        if (ok) seenAt = Date.now();
        return ok;
      },
      { timeoutMs: options.timeoutMs ?? 60_000, intervalMs: options.intervalMs ?? 50 },
    );
    return seenAt;
  }

  /** The config has these servers and no other, each with the login the kubelet would use. */
  function holdsExactly(
    config: DockerConfig,
    want: Record<string, { username: string; password: string }>,
  ): boolean {
    const servers = Object.keys(want);
    if (Object.keys(config.auths).length !== servers.length) return false;
    return servers.every((server) => {
      const got = config.auths[server];
      const expected = want[server];
      if (got === undefined || expected === undefined || expected.password === '') return false;
      const entry = entryOf(expected.username, expected.password);
      return (
        got.username === entry.username &&
        got.password === entry.password &&
        got.auth === entry.auth
      );
    });
  }

  /** Waits until `list()` has at least `count` entries; resolves with them. */
  function waitIssued<T>(
    what: string,
    list: () => readonly T[],
    count: number,
    timeoutMs = 60_000,
  ) {
    return waitFor(
      `${what} (${count})`,
      () => [...list()],
      (items) => items.length >= count,
      {
        timeoutMs,
        intervalMs: 10,
      },
    );
  }

  function waitStatus(
    name: string,
    what: string,
    accept: (cred: RegistryCredential) => boolean,
    timeoutMs = 60_000,
  ): Promise<RegistryCredential> {
    return waitFor(
      `RegistryCredential ${name}: ${what}`,
      () => f.getCredential(name),
      (cred) => cred.status?.observedGeneration === cred.metadata.generation && accept(cred),
      { timeoutMs, intervalMs: 100 },
    );
  }

  /** Reconciles my operator has finished, from its /metrics. */
  async function reconcilesDone(): Promise<number> {
    return (await op?.metric('controller_runtime_reconcile_total')) ?? 0;
  }

  function registryStatus(cred: RegistryCredential, server: string): RegistryStatus | undefined {
    return cred.status?.registries?.find((r) => r.server === server);
  }

  /** Checks status.registries for one cloud registry against the token the fake handed out. */
  function assertRegistryStatus(
    cred: RegistryCredential,
    server: string,
    source: RegistryStatus['source'],
    issuedAt: number,
    expiresAt: Date,
  ): void {
    const status = registryStatus(cred, server);
    assert.ok(
      status,
      `status.registries has ${server}: ${JSON.stringify(cred.status?.registries)}`,
    );
    assert.equal(status.source, source);
    assert.equal(status.expiresAt, rfc3339(expiresAt));
    assert.ok(status.refreshedAt, 'refreshedAt is set');
    const refreshedAt = Date.parse(status.refreshedAt);
    assert.ok(
      Math.abs(refreshedAt - issuedAt) < 3_000,
      `refreshedAt ${status.refreshedAt} is when the token was issued (${new Date(issuedAt).toISOString()})`,
    );
  }

  function callTimes(calls: readonly RecordedCall[]): number[] {
    return calls.map((c) => c.at);
  }

  function gaps(times: readonly number[]): number[] {
    return times.slice(1).map((t, i) => t - (times[i] ?? t));
  }

  // ---- ECR with static keys: fan-out, rotation, one call per refresh ----

  for (const count of [10, 100]) {
    it(`rotates an ECR token into all ${count} namespaces with one GetAuthorizationToken per refresh`, async function (this: Mocha.Context) {
      this.timeout(180_000);
      const account = newAccount();
      const server = ecrServer(account);
      ecr.lifetimeFor.set(account, 9_000);
      const { tenant, names } = await tenantNamespaces(count);
      const aws = await awsKeysSecret();
      const name = await credential({
        namespaceSelector: { matchLabels: { tenant } },
        registries: [{ server, ecr: { credentialsSecretRef: { name: aws.name } } }],
      });

      const cred = await f.waitCondition(name, 'Ready', 'True', 'Ready', { timeoutMs: 120_000 });
      const [first] = ecr.issuedFor(account);
      assert.ok(first, 'the fake issued a token');
      assert.equal(
        ecr.tokenCallsFor(account).length,
        1,
        `one GetAuthorizationToken for ${count} namespaces`,
      );
      assert.equal(first.accessKeyId, aws.keys.accessKeyId, 'signed with the keys from the Secret');
      assert.equal(first.region, REGION);
      // Written under the server as given, never under the https:// proxyEndpoint ECR returns.
      await waitEverywhere(
        name,
        names,
        () => ({ [server]: { username: 'AWS', password: first.password } }),
        'the first ECR token',
      );
      const secrets = await secretsOf(name);
      assert.equal(secrets.size, count);
      for (const { config } of secrets.values()) {
        assert.deepEqual(Object.keys(config.auths), [server]);
      }
      assert.equal(cred.status?.registries?.length, 1);
      assert.equal(cred.status?.registries?.[0]?.server, server);
      assertRegistryStatus(cred, server, 'ecr', first.issuedAt.getTime(), first.expiresAt);
      assert.equal(cred.status?.targetNamespaces, count);
      assert.equal(cred.status?.syncedNamespaces, count);
      const nextRefreshAt = Date.parse(cred.status?.nextRefreshAt ?? '');
      assert.ok(
        nextRefreshAt > first.issuedAt.getTime() && nextRefreshAt < first.expiresAt.getTime(),
        `nextRefreshAt ${cred.status?.nextRefreshAt} lies between issue and expiry`,
      );

      // The second token, issued at about two thirds of the first one's life.
      const [, second] = await waitIssued('a second ECR token', () => ecr.issuedFor(account), 2);
      assert.ok(second);
      const lastNamespaceAt = await waitEverywhere(
        name,
        names,
        () => ({ [server]: { username: 'AWS', password: second.password } }),
        'the rotated ECR token',
        { intervalMs: 20 },
      );
      assert.equal(ecr.tokenCallsFor(account).length, 2, 'exactly one more call for the refresh');
      const latency = lastNamespaceAt - second.issuedAt.getTime();
      process.stdout.write(
        `      rotation: token issued → last of ${count} namespaces updated in ${ms(latency)}\n`,
      );
      assert.ok(
        latency < 10_000,
        `the new token reached every namespace within 10 s (${ms(latency)})`,
      );
      const rotated = await waitStatus(
        name,
        'the refreshed token in status',
        (c) => registryStatus(c, server)?.expiresAt === rfc3339(second.expiresAt),
      );
      assertRegistryStatus(rotated, server, 'ecr', second.issuedAt.getTime(), second.expiresAt);
      assert.equal(condition(rotated, 'Ready')?.status, 'True');
    });
  }

  // ---- each auth mode of each cloud: a token lands, then a rotation ----

  it('assumes ecr.roleArn with the keys from the Secret (STS AssumeRole), and rotates', async function (this: Mocha.Context) {
    this.timeout(180_000);
    const account = newAccount();
    const server = ecrServer(account);
    ecr.lifetimeFor.set(account, 9_000);
    const { names } = await tenantNamespaces(2);
    const aws = await awsKeysSecret();
    const name = await credential({
      namespaces: names,
      registries: [{ server, ecr: { roleArn: ROLE, credentialsSecretRef: { name: aws.name } } }],
    });

    await f.waitCondition(name, 'Ready', 'True', 'Ready');
    const assumed = () => sts.issued.filter((i) => i.callerAccessKeyId === aws.keys.accessKeyId);
    const [role] = assumed();
    assert.ok(role, 'STS saw AssumeRole signed with the static keys');
    assert.equal(role.action, 'AssumeRole');
    assert.equal(role.roleArn, ROLE);
    assert.equal(role.sessionName, 'regcred-operator');
    const [first] = ecr.issuedFor(account);
    assert.equal(first?.accessKeyId, role.keys.accessKeyId, 'ECR was called as the assumed role');
    await waitEverywhere(
      name,
      names,
      () => ({ [server]: { username: 'AWS', password: first?.password ?? '' } }),
      'the first token',
    );

    const [, second] = await waitIssued('a second ECR token', () => ecr.issuedFor(account), 2);
    await waitEverywhere(
      name,
      names,
      () => ({ [server]: { username: 'AWS', password: second?.password ?? '' } }),
      'the rotated token',
    );
    assert.equal(ecr.tokenCallsFor(account).length, 2);
    assert.equal(assumed().length, 2, 'one AssumeRole per refresh');
    assert.equal(second?.accessKeyId, assumed()[1]?.keys.accessKeyId);
  });

  it('uses IRSA web identity from the default chain (AWS_ROLE_ARN + token file), and rotates', async function (this: Mocha.Context) {
    this.timeout(180_000);
    const account = newAccount();
    const server = ecrServer(account);
    ecr.lifetimeFor.set(account, 9_000);
    const { names } = await tenantNamespaces(2);
    const webCallsBefore = sts.callsOf('AssumeRoleWithWebIdentity');
    const name = await credential({ namespaces: names, registries: [{ server, ecr: {} }] });

    await f.waitCondition(name, 'Ready', 'True', 'Ready');
    const web = () => sts.issued.filter((i) => i.action === 'AssumeRoleWithWebIdentity');
    const role = web().at(-1);
    assert.equal(role?.roleArn, IRSA_ROLE);
    const [first] = ecr.issuedFor(account);
    assert.equal(
      first?.accessKeyId,
      role?.keys.accessKeyId,
      'ECR was called with the IRSA session',
    );
    await waitEverywhere(
      name,
      names,
      () => ({ [server]: { username: 'AWS', password: first?.password ?? '' } }),
      'the first token',
    );

    const [, second] = await waitIssued('a second ECR token', () => ecr.issuedFor(account), 2);
    await waitEverywhere(
      name,
      names,
      () => ({ [server]: { username: 'AWS', password: second?.password ?? '' } }),
      'the rotated token',
    );
    assert.equal(ecr.tokenCallsFor(account).length, 2);
    assert.equal(
      sts.callsOf('AssumeRoleWithWebIdentity') - webCallsBefore,
      2,
      'one web identity exchange per refresh',
    );
  });

  it('uses a GCP service-account key from a Secret (oauth2accesstoken), and rotates', async function (this: Mocha.Context) {
    this.timeout(180_000);
    const { names } = await tenantNamespaces(2);
    const gcp = await gcpKeySecret();
    oauth.expiresInFor.set(gcp.key.email, 8);
    const name = await credential({
      namespaces: names,
      registries: [
        {
          server: GCP_SERVER,
          gcp: {
            serviceAccountKeySecretRef: { name: gcp.name, namespace: EXTRA_SOURCE_NAMESPACE },
          },
        },
      ],
    });

    const cred = await f.waitCondition(name, 'Ready', 'True', 'Ready');
    const [first] = oauth.issuedFor(gcp.key.email);
    assert.ok(first);
    assert.equal(first.grant, 'jwt-bearer');
    await waitEverywhere(
      name,
      names,
      () => ({ [GCP_SERVER]: { username: 'oauth2accesstoken', password: first.accessToken } }),
      'the first token',
    );
    const firstCall = oauth.tokenCallsFor(gcp.key.email)[0];
    assert.ok(firstCall);
    const status = registryStatus(cred, GCP_SERVER);
    assert.equal(status?.source, 'gcp');
    const lifetime = Date.parse(status?.expiresAt ?? '') - firstCall.at;
    assert.ok(
      lifetime > 6_000 && lifetime <= 9_000,
      `expiresAt is expires_in after the call (${ms(lifetime)})`,
    );

    const [, second] = await waitIssued(
      'a second Google token',
      () => oauth.issuedFor(gcp.key.email),
      2,
    );
    await waitEverywhere(
      name,
      names,
      () => ({
        [GCP_SERVER]: { username: 'oauth2accesstoken', password: second?.accessToken ?? '' },
      }),
      'the rotated token',
    );
    assert.equal(oauth.tokenCallsFor(gcp.key.email).length, 2);
  });

  it('uses GCP application default credentials from the metadata server (GCE_METADATA_HOST), and rotates', async function (this: Mocha.Context) {
    this.timeout(180_000);
    const { names } = await tenantNamespaces(2);
    metadata.expiresInSeconds = 8;
    const callsBefore = metadata.tokenCalls;
    const issuedBefore = metadata.issued.length;
    try {
      const name = await credential({
        namespaces: names,
        registries: [{ server: GCP_SERVER, gcp: {} }],
      });

      await f.waitCondition(name, 'Ready', 'True', 'Ready');
      const first = metadata.issued[issuedBefore];
      assert.ok(first);
      await waitEverywhere(
        name,
        names,
        () => ({ [GCP_SERVER]: { username: 'oauth2accesstoken', password: first } }),
        'the first token',
      );
      const [call] = metadata.server
        .callsTo('GET', '/computeMetadata/v1/instance/service-accounts/default/token')
        .slice(callsBefore);
      assert.equal(call?.headers['metadata-flavor'], 'Google');

      const issued = await waitIssued(
        'a second metadata token',
        () => metadata.issued.slice(issuedBefore),
        2,
      );
      await waitEverywhere(
        name,
        names,
        () => ({ [GCP_SERVER]: { username: 'oauth2accesstoken', password: issued[1] ?? '' } }),
        'the rotated token',
      );
      assert.equal(metadata.tokenCalls - callsBefore, 2);
    } finally {
      metadata.expiresInSeconds = 3599;
    }
  });

  it('uses an Azure client secret: Entra ID over HTTPS, then the ACR exchange; expiresAt is the JWT exp', async function (this: Mocha.Context) {
    this.timeout(180_000);
    const { names } = await tenantNamespaces(2);
    const secret = await sourceSecret({ clientSecret: azureClientSecret });
    acr.refreshTokenLifetimeMs = 9_000;
    acr.tenant = TENANT;
    const entraBefore = entra.tokenCalls;
    const exchangesBefore = acr.exchangeCalls;
    const issuedBefore = acr.issued.length;
    try {
      const name = await credential({
        namespaces: names,
        registries: [
          {
            server: ACR_HOST,
            acr: { tenantId: TENANT, clientId: SECRET_CLIENT, clientSecretRef: { name: secret } },
          },
        ],
      });

      const cred = await f.waitCondition(name, 'Ready', 'True', 'Ready');
      const first = acr.issued[issuedBefore];
      assert.ok(first);
      assert.equal(entra.issued.at(-1)?.kind, 'client_secret');
      assert.equal(entra.issued.at(-1)?.clientId, SECRET_CLIENT);
      await waitEverywhere(
        name,
        names,
        () => ({ [ACR_HOST]: { username: ACR_USERNAME, password: first.refreshToken } }),
        'the first token',
      );
      const expClaim = (
        JSON.parse(
          Buffer.from(first.refreshToken.split('.')[1] ?? '', 'base64url').toString('utf8'),
        ) as {
          exp: number;
        }
      ).exp;
      assert.equal(registryStatus(cred, ACR_HOST)?.expiresAt, rfc3339(new Date(expClaim * 1000)));
      assert.equal(registryStatus(cred, ACR_HOST)?.source, 'acr');

      const issued = await waitIssued(
        'a second ACR refresh token',
        () => acr.issued.slice(issuedBefore),
        2,
      );
      await waitEverywhere(
        name,
        names,
        () => ({ [ACR_HOST]: { username: ACR_USERNAME, password: issued[1]?.refreshToken ?? '' } }),
        'the rotated token',
      );
      assert.equal(acr.exchangeCalls - exchangesBefore, 2, 'one exchange per refresh');
      assert.equal(entra.tokenCalls - entraBefore, 2, 'one Entra ID token per refresh');
    } finally {
      acr.refreshTokenLifetimeMs = 3 * 60 * 60 * 1000;
      acr.tenant = undefined;
    }
  });

  it('uses Azure workload identity from the default chain (AZURE_FEDERATED_TOKEN_FILE)', async function (this: Mocha.Context) {
    this.timeout(180_000);
    const { names } = await tenantNamespaces(2);
    const issuedBefore = acr.issued.length;
    const entraBefore = entra.issued.length;
    const name = await credential({
      namespaces: names,
      registries: [{ server: ACR_HOST, acr: { tenantId: TENANT, clientId: WORKLOAD_CLIENT } }],
    });

    await f.waitCondition(name, 'Ready', 'True', 'Ready');
    const aad = entra.issued.slice(entraBefore);
    assert.deepEqual(
      aad.map((i) => [i.kind, i.clientId, i.tenantId]),
      [['client_assertion', WORKLOAD_CLIENT, TENANT]],
    );
    const first = acr.issued[issuedBefore];
    assert.ok(first);
    await waitEverywhere(
      name,
      names,
      () => ({ [ACR_HOST]: { username: ACR_USERNAME, password: first.refreshToken } }),
      'the token',
    );
  });

  // ---- failure, backoff, recovery ----

  it('keeps the last good token while the refresh fails (RefreshFailed, Warning Event), then recovers', async function (this: Mocha.Context) {
    this.timeout(180_000);
    const account = newAccount();
    const server = ecrServer(account);
    ecr.lifetimeFor.set(account, 30_000);
    const { names } = await tenantNamespaces(3);
    const aws = await awsKeysSecret();
    const name = await credential({
      namespaces: names,
      registries: [{ server, ecr: { credentialsSecretRef: { name: aws.name } } }],
    });
    await f.waitCondition(name, 'Ready', 'True', 'Ready');
    const [first] = ecr.issuedFor(account);
    assert.ok(first);
    await waitEverywhere(
      name,
      names,
      () => ({ [server]: { username: 'AWS', password: first.password } }),
      'the first token',
    );
    const before = await secretsOf(name);

    // An upstream message that (wrongly) quotes the secret key: it must still come out clean.
    ecr.failFor.set(account, {
      code: 'AccessDeniedException',
      message: `User: arn:aws:iam::${account}:user/puller is not authorized to perform: ecr:GetAuthorizationToken on resource: * (key ${aws.keys.secretAccessKey})`,
    });
    const failed = await waitStatus(
      name,
      'CredentialsReady=False RefreshFailed',
      (c) => condition(c, 'CredentialsReady')?.reason === 'RefreshFailed',
      60_000,
    );
    const calls = ecr.tokenCallsFor(account);
    assert.equal(calls.length, 2, 'one failed refresh so far');
    const failedAt = calls[1]?.at ?? 0;
    assert.ok(failedAt < first.expiresAt.getTime(), 'the refresh was tried before expiry');

    const credentialsReady = condition(failed, 'CredentialsReady');
    const ready = condition(failed, 'Ready');
    assert.equal(credentialsReady?.status, 'False');
    assert.match(credentialsReady?.message ?? '', /AccessDeniedException/);
    assert.match(credentialsReady?.message ?? '', /last good token/);
    assert.equal(ready?.status, 'False');
    assert.equal(ready?.reason, 'RefreshFailed');
    for (const message of [
      credentialsReady?.message ?? '',
      ready?.message ?? '',
      JSON.stringify(failed.status),
    ]) {
      for (const secret of [
        aws.keys.secretAccessKey,
        first.password,
        b64(`AWS:${first.password}`),
      ]) {
        assert.ok(!message.includes(secret), `status leaks a secret: ${message}`);
      }
    }
    // The last good Secret stays, byte for byte, in every namespace.
    const during = await secretsOf(name);
    for (const ns of names)
      assert.equal(during.get(ns)?.raw, before.get(ns)?.raw, `Secret in ${ns} unchanged`);
    const events = await waitFor(
      `a Warning RefreshFailed Event on ${name}`,
      () => f.events(name),
      (list) => list.some((e) => e.type === 'Warning' && e.reason === 'RefreshFailed'),
    );
    for (const event of events) {
      assert.ok(
        !event.message.includes(aws.keys.secretAccessKey),
        `Event leaks the key: ${event.message}`,
      );
    }

    // The cloud answers again: the retry, about 5 s after the failure, brings the new token.
    ecr.failFor.delete(account);
    const recovered = await f.waitCondition(name, 'Ready', 'True', 'Ready', { timeoutMs: 60_000 });
    const [, second] = ecr.issuedFor(account);
    assert.ok(second, 'a new token after recovery');
    await waitEverywhere(
      name,
      names,
      () => ({ [server]: { username: 'AWS', password: second.password } }),
      'the new token',
    );
    const retries = ecr.tokenCallsFor(account);
    assert.equal(retries.length, 3, 'one failure, one successful retry');
    const backoff = (retries[2]?.at ?? 0) - failedAt;
    process.stdout.write(`      retry came ${ms(backoff)} after the failed refresh\n`);
    assert.ok(backoff >= 4_500 && backoff < 9_000, `first backoff is about 5 s (${ms(backoff)})`);
    assert.equal(condition(recovered, 'CredentialsReady')?.status, 'True');
    assert.equal(registryStatus(recovered, server)?.expiresAt, rfc3339(second.expiresAt));
    assert.ok(recovered.status?.nextRefreshAt, 'nextRefreshAt is back');
  });

  it('retries a cloud that refuses the very first token with backoff, and writes the Secrets once it answers', async function (this: Mocha.Context) {
    this.timeout(180_000);
    const account = newAccount();
    const server = ecrServer(account);
    ecr.lifetimeFor.set(account, 60 * 60 * 1000);
    ecr.failFor.set(account, {
      code: 'AccessDeniedException',
      message: 'not authorized to perform: ecr:GetAuthorizationToken',
    });
    const { names } = await tenantNamespaces(2);
    const aws = await awsKeysSecret();
    const name = await credential({
      namespaces: names,
      registries: [{ server, ecr: { credentialsSecretRef: { name: aws.name } } }],
    });

    const failed = await f.waitCondition(name, 'CredentialsReady', 'False', 'RefreshFailed');
    assert.match(condition(failed, 'CredentialsReady')?.message ?? '', /AccessDeniedException/);
    assert.equal(condition(failed, 'Ready')?.reason, 'RefreshFailed');
    assert.equal((await secretsOf(name)).size, 0, 'no Secret without a token');
    const failures = await op?.metric('regcred_refresh_failures_total', {
      registrycredential: name,
      source: 'ecr',
    });
    assert.ok((failures ?? 0) >= 1, `regcred_refresh_failures_total counts it (${failures})`);
    const [firstCall] = ecr.tokenCallsFor(account);
    assert.ok(firstCall);

    ecr.failFor.delete(account);
    await f.waitCondition(name, 'Ready', 'True', 'Ready', { timeoutMs: 30_000 });
    const [token] = ecr.issuedFor(account);
    assert.ok(token);
    await waitEverywhere(
      name,
      names,
      () => ({ [server]: { username: 'AWS', password: token.password } }),
      'the first token',
    );
    const calls = ecr.tokenCallsFor(account);
    const backoff = (calls.at(-1)?.at ?? 0) - firstCall.at;
    process.stdout.write(
      `      first token after ${calls.length - 1} failure(s); retry ${ms(backoff)} after the first call\n`,
    );
    assert.equal(calls.length, 2, 'one failure, then the retry');
    assert.ok(backoff >= 4_500 && backoff < 9_000, `first backoff is about 5 s (${ms(backoff)})`);
  });

  it('drops an expired token nobody could refresh from every Secret, keeping the basic registry', async function (this: Mocha.Context) {
    this.timeout(180_000);
    const account = newAccount();
    const server = ecrServer(account);
    ecr.lifetimeFor.set(account, 8_000);
    const { names } = await tenantNamespaces(3);
    const aws = await awsKeysSecret();
    const basicPassword = distinctive('basic-password');
    secretString(basicPassword, b64(`robot:${basicPassword}`));
    const basic = await sourceSecret({ username: 'robot', password: basicPassword });
    const name = await credential({
      namespaces: names,
      registries: [
        { server: BASIC_SERVER, basic: { secretRef: { name: basic } } },
        { server, ecr: { credentialsSecretRef: { name: aws.name } } },
      ],
    });
    await f.waitCondition(name, 'Ready', 'True', 'Ready');
    const [first] = ecr.issuedFor(account);
    assert.ok(first);
    ecr.failFor.set(account, {
      code: 'AccessDeniedException',
      message: 'not authorized to perform: ecr:GetAuthorizationToken',
    });
    await waitEverywhere(
      name,
      names,
      () => ({
        [BASIC_SERVER]: { username: 'robot', password: basicPassword },
        [server]: { username: 'AWS', password: first.password },
      }),
      'both registries',
    );

    await waitEverywhere(
      name,
      names,
      () => ({ [BASIC_SERVER]: { username: 'robot', password: basicPassword } }),
      'the basic registry alone',
      { timeoutMs: 60_000 },
    );
    const removedSeenAt = Date.now();
    assert.ok(
      removedSeenAt >= first.expiresAt.getTime(),
      `removed only once the token expired (seen ${ms(removedSeenAt - first.expiresAt.getTime())} after expiry)`,
    );
    process.stdout.write(
      `      expired registry removed; seen ${ms(removedSeenAt - first.expiresAt.getTime())} after expiresAt\n`,
    );
    assert.ok(ecr.tokenCallsFor(account).length >= 2, 'a refresh was tried');

    const cred = await waitStatus(name, 'the expiry reported', (c) =>
      /expired/.test(condition(c, 'CredentialsReady')?.message ?? ''),
    );
    const credentialsReady = condition(cred, 'CredentialsReady');
    assert.equal(credentialsReady?.status, 'False');
    assert.equal(credentialsReady?.reason, 'RefreshFailed');
    assert.match(credentialsReady?.message ?? '', new RegExp(server.replaceAll('.', '\\.')));
    assert.match(credentialsReady?.message ?? '', /removed from the Secret/);
    assert.equal(condition(cred, 'Ready')?.status, 'False');
    assert.equal(condition(cred, 'Ready')?.reason, 'RefreshFailed');
    const status = registryStatus(cred, server);
    assert.equal(status?.expiresAt, rfc3339(first.expiresAt), 'status still says when it expired');
    assert.equal(registryStatus(cred, BASIC_SERVER)?.source, 'basic');
    assert.ok(!JSON.stringify(cred.status).includes(first.password));
  });

  // ---- forced refresh ----

  it(`refreshes at once when ${REFRESH_REQUESTED_ANNOTATION} gets a new value, once per value`, async function (this: Mocha.Context) {
    this.timeout(180_000);
    const account = newAccount();
    const server = ecrServer(account);
    ecr.lifetimeFor.set(account, 60 * 60 * 1000);
    const { names } = await tenantNamespaces(5);
    const aws = await awsKeysSecret();
    const name = await credential({
      namespaces: names,
      registries: [{ server, ecr: { credentialsSecretRef: { name: aws.name } } }],
    });
    await f.waitCondition(name, 'Ready', 'True', 'Ready');
    const [first] = ecr.issuedFor(account);
    assert.ok(first);
    await waitEverywhere(
      name,
      names,
      () => ({ [server]: { username: 'AWS', password: first.password } }),
      'the first token',
    );
    assert.equal(ecr.tokenCallsFor(account).length, 1);

    const requestedAt = Date.now();
    await f.patchCredential(name, {
      metadata: { annotations: { [REFRESH_REQUESTED_ANNOTATION]: 'first' } },
    });
    const [, second] = await waitIssued('a forced token', () => ecr.issuedFor(account), 2, 30_000);
    const landedAt = await waitEverywhere(
      name,
      names,
      () => ({ [server]: { username: 'AWS', password: second?.password ?? '' } }),
      'the forced token',
      { intervalMs: 20 },
    );
    process.stdout.write(
      `      forced refresh: annotation → ${names.length} namespaces in ${ms(landedAt - requestedAt)}\n`,
    );
    assert.ok(landedAt - requestedAt < 10_000, 'within seconds');
    assert.equal(ecr.tokenCallsFor(account).length, 2, 'one call for the request');

    // Other changes to the object, and the same value again, refresh nothing.
    const reconciles = await reconcilesDone();
    await f.patchCredential(name, { metadata: { annotations: { 'test.regcred.dev/touch': '1' } } });
    await waitUntil(
      'a reconcile after the touch',
      async () => (await reconcilesDone()) > reconciles,
    );
    assert.equal(ecr.tokenCallsFor(account).length, 2, 'an unrelated change does not refresh');

    await f.patchCredential(name, {
      metadata: { annotations: { [REFRESH_REQUESTED_ANNOTATION]: 'second' } },
    });
    const [, , third] = await waitIssued(
      'a second forced token',
      () => ecr.issuedFor(account),
      3,
      30_000,
    );
    await waitEverywhere(
      name,
      names,
      () => ({ [server]: { username: 'AWS', password: third?.password ?? '' } }),
      'the second forced token',
    );
    assert.equal(ecr.tokenCallsFor(account).length, 3);
  });

  it('fetches a new token at once when the keys in the source Secret change', async function (this: Mocha.Context) {
    this.timeout(180_000);
    const account = newAccount();
    const server = ecrServer(account);
    ecr.lifetimeFor.set(account, 60 * 60 * 1000);
    const { names } = await tenantNamespaces(3);
    const aws = await awsKeysSecret();
    const name = await credential({
      namespaces: names,
      registries: [{ server, ecr: { credentialsSecretRef: { name: aws.name } } }],
    });
    await f.waitCondition(name, 'Ready', 'True', 'Ready');
    const [first] = ecr.issuedFor(account);
    assert.equal(first?.accessKeyId, aws.keys.accessKeyId);

    const rotatedKeys = keyring.mint(false, distinctive('rotated'));
    secretString(rotatedKeys.secretAccessKey);
    await f.setSecretData(OPERATOR_NAMESPACE, aws.name, {
      AWS_ACCESS_KEY_ID: rotatedKeys.accessKeyId,
      AWS_SECRET_ACCESS_KEY: rotatedKeys.secretAccessKey,
    });
    const [, second] = await waitIssued(
      'a token signed with the new keys',
      () => ecr.issuedFor(account),
      2,
      30_000,
    );
    assert.equal(second?.accessKeyId, rotatedKeys.accessKeyId);
    await waitEverywhere(
      name,
      names,
      () => ({ [server]: { username: 'AWS', password: second?.password ?? '' } }),
      'the new token',
    );
    assert.equal(ecr.tokenCallsFor(account).length, 2);
  });

  // ---- several clouds in one credential ----

  it('refreshes ECR and GCP registries of one credential each on its own schedule into one Secret', async function (this: Mocha.Context) {
    this.timeout(180_000);
    const account = newAccount();
    const server = ecrServer(account);
    const ecrLifetimeMs = 6_000;
    const gcpLifetimeS = 20;
    ecr.lifetimeFor.set(account, ecrLifetimeMs);
    const { names } = await tenantNamespaces(3);
    const aws = await awsKeysSecret();
    const gcp = await gcpKeySecret();
    oauth.expiresInFor.set(gcp.key.email, gcpLifetimeS);
    const registries: Registry[] = [
      { server, ecr: { credentialsSecretRef: { name: aws.name } } },
      {
        server: GCP_SERVER,
        gcp: { serviceAccountKeySecretRef: { name: gcp.name, namespace: EXTRA_SOURCE_NAMESPACE } },
      },
    ];
    const name = await credential({ namespaces: names, registries });
    await f.waitCondition(name, 'Ready', 'True', 'Ready');
    const latest = () => ({
      [server]: { username: 'AWS', password: ecr.issuedFor(account).at(-1)?.password ?? '' },
      [GCP_SERVER]: {
        username: 'oauth2accesstoken',
        password: oauth.issuedFor(gcp.key.email).at(-1)?.accessToken ?? '',
      },
    });
    await waitEverywhere(name, names, latest, 'both first tokens');

    // Until Google's second token lands, ECR's shorter-lived one rotates several times.
    await waitIssued('a second Google token', () => oauth.issuedFor(gcp.key.email), 2, 60_000);
    await waitEverywhere(name, names, latest, 'the latest token of each registry, merged');
    const ecrTimes = callTimes(ecr.tokenCallsFor(account));
    const gcpTimes = callTimes(oauth.tokenCallsFor(gcp.key.email));
    process.stdout.write(
      `      calls: ECR ${ecrTimes.length} (gaps ${gaps(ecrTimes).map(ms).join(', ')}),` +
        ` Google ${gcpTimes.length} (gaps ${gaps(gcpTimes).map(ms).join(', ')})\n`,
    );
    assert.equal(gcpTimes.length, 2, 'Google: one call per refresh');
    assert.ok(
      ecrTimes.length >= 3,
      `ECR refreshed on its own, faster schedule (${ecrTimes.length} calls)`,
    );
    // Two thirds of a lifetime (ECR truncates expiry to the second), less 5 % jitter, less slack.
    for (const gap of gaps(ecrTimes)) {
      assert.ok(
        gap > ((ecrLifetimeMs - 1_000) * 2 * 0.95) / 3 - 250,
        `ECR refresh not early (${ms(gap)})`,
      );
    }
    const [gcpGap = 0] = gaps(gcpTimes);
    assert.ok(
      gcpGap > (gcpLifetimeS * 1000 * 2 * 0.95) / 3 - 250,
      `Google refresh not early (${ms(gcpGap)})`,
    );
    const cred = await f.getCredential(name);
    assert.deepEqual(
      cred.status?.registries?.map((r) => [r.server, r.source]),
      [
        [server, 'ecr'],
        [GCP_SERVER, 'gcp'],
      ],
    );
  });

  // ---- restart ----

  it('after an operator restart, keeps serving the unexpired token it wrote: no cloud call, no rewrite', async function (this: Mocha.Context) {
    this.timeout(180_000);
    const account = newAccount();
    const server = ecrServer(account);
    ecr.lifetimeFor.set(account, 60 * 60 * 1000);
    const { names } = await tenantNamespaces(3);
    const aws = await awsKeysSecret();
    const name = await credential({
      namespaces: names,
      registries: [{ server, ecr: { credentialsSecretRef: { name: aws.name } } }],
    });
    await f.waitCondition(name, 'Ready', 'True', 'Ready');
    const [first] = ecr.issuedFor(account);
    assert.ok(first);
    await waitEverywhere(
      name,
      names,
      () => ({ [server]: { username: 'AWS', password: first.password } }),
      'the token',
    );
    // A refresh requested before the restart was served before it: it must not run again.
    await f.patchCredential(name, {
      metadata: { annotations: { [REFRESH_REQUESTED_ANNOTATION]: 'before-restart' } },
    });
    const [, forced] = await waitIssued(
      'the forced token',
      () => ecr.issuedFor(account),
      2,
      30_000,
    );
    await waitEverywhere(
      name,
      names,
      () => ({ [server]: { username: 'AWS', password: forced?.password ?? '' } }),
      'the forced token',
    );
    const settled = await waitStatus(
      name,
      'the forced token in status',
      (c) => registryStatus(c, server)?.expiresAt === rfc3339(forced?.expiresAt ?? new Date(0)),
    );
    const versions = new Map(
      (
        await f.core.listSecretForAllNamespaces({ labelSelector: `${CREDENTIAL_LABEL}=${name}` })
      ).items.map((s) => [s.metadata?.namespace ?? '', s.metadata?.resourceVersion ?? '']),
    );

    await op?.stop();
    await op?.start();
    await waitUntil(
      'a reconcile by the restarted operator',
      async () => (await reconcilesDone()) > 0,
    );
    // Every credential of the cluster has had its first reconcile once the queue drains; wait
    // until this one's status has been looked at (the reconcile count settles) and compare.
    let last = -1;
    await waitFor(
      'the restarted operator to settle',
      async () => {
        const now = await reconcilesDone();
        const stable = now === last;
        last = now;
        return stable;
      },
      (stable) => stable,
      { intervalMs: 1_000, timeoutMs: 60_000 },
    );
    assert.equal(ecr.tokenCallsFor(account).length, 2, 'no new token after the restart');
    const after = await f.getCredential(name);
    assert.equal(condition(after, 'Ready')?.status, 'True');
    assert.deepEqual(registryStatus(after, server), registryStatus(settled, server));
    const versionsAfter = new Map(
      (
        await f.core.listSecretForAllNamespaces({ labelSelector: `${CREDENTIAL_LABEL}=${name}` })
      ).items.map((s) => [s.metadata?.namespace ?? '', s.metadata?.resourceVersion ?? '']),
    );
    assert.deepEqual(versionsAfter, versions, 'no Secret rewritten');

    // A new value still forces a refresh after the restart.
    await f.patchCredential(name, {
      metadata: { annotations: { [REFRESH_REQUESTED_ANNOTATION]: 'after-restart' } },
    });
    const [, , third] = await waitIssued(
      'a token forced after the restart',
      () => ecr.issuedFor(account),
      3,
      30_000,
    );
    await waitEverywhere(
      name,
      names,
      () => ({ [server]: { username: 'AWS', password: third?.password ?? '' } }),
      'the new forced token',
    );
  });

  it('after a restart, never adopts a token a tenant wrote into its copy: every namespace gets the genuine one, without a cloud call', async function (this: Mocha.Context) {
    this.timeout(180_000);
    const account = newAccount();
    const server = ecrServer(account);
    ecr.lifetimeFor.set(account, 60 * 60 * 1000);
    const { names } = await tenantNamespaces(3);
    const aws = await awsKeysSecret();
    const name = await credential({
      namespaces: names,
      registries: [{ server, ecr: { credentialsSecretRef: { name: aws.name } } }],
    });
    await f.waitCondition(name, 'Ready', 'True', 'Ready');
    const [genuine] = ecr.issuedFor(account);
    assert.ok(genuine);
    const real = () => ({ [server]: { username: 'AWS', password: genuine.password } });
    await waitEverywhere(name, names, real, 'the token');
    const settled = await f.getCredential(name);

    // While no operator runs, the tenant of the first namespace (the first a cache lists)
    // writes a password of its choosing into its copy.
    await op?.stop();
    const forged = distinctive('forged');
    const first = names[0] ?? '';
    await f.core.patchNamespacedSecret(
      {
        namespace: first,
        name,
        body: {
          data: {
            '.dockerconfigjson': b64(
              JSON.stringify({ auths: { [server]: entryOf('AWS', forged) } }),
            ),
          },
        },
      },
      setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
    );
    await op?.start();
    await waitEverywhere(name, names, real, 'the genuine token, the forged copy rewritten');
    const after = await f.getCredential(name);
    assert.equal(condition(after, 'Ready')?.status, 'True');
    assert.deepEqual(registryStatus(after, server), registryStatus(settled, server));
    assert.equal(
      ecr.tokenCallsFor(account).length,
      1,
      'adopted from its own namespace: no new token',
    );
    for (const ns of names) {
      const cfg = await f.dockerConfig(ns, name);
      assert.notEqual(cfg?.auths[server]?.password, forged, `${ns} carries the tenant's string`);
    }
  });

  it('refreshes on a refresh-requested-at value set while no leader ran (status records the value acted on)', async function (this: Mocha.Context) {
    this.timeout(180_000);
    const account = newAccount();
    const server = ecrServer(account);
    ecr.lifetimeFor.set(account, 60 * 60 * 1000);
    const { names } = await tenantNamespaces(2);
    const aws = await awsKeysSecret();
    const name = await credential({
      namespaces: names,
      registries: [{ server, ecr: { credentialsSecretRef: { name: aws.name } } }],
    });
    await f.waitCondition(name, 'Ready', 'True', 'Ready');
    assert.equal(ecr.tokenCallsFor(account).length, 1);

    // A rollout: no operator runs when the request is made.
    await op?.stop();
    await f.patchCredential(name, {
      metadata: { annotations: { [REFRESH_REQUESTED_ANNOTATION]: 'during-rollout' } },
    });
    await op?.start();
    const [, forced] = await waitIssued(
      'the token requested during the rollout',
      () => ecr.issuedFor(account),
      2,
      30_000,
    );
    await waitEverywhere(
      name,
      names,
      () => ({ [server]: { username: 'AWS', password: forced?.password ?? '' } }),
      'the requested token',
    );
    await waitStatus(
      name,
      'the request recorded as acted on',
      (c) => c.status?.lastRefreshRequest === 'during-rollout',
    );
    // Acted on once: a restart does not act on it again.
    await op?.stop();
    await op?.start();
    await waitStatus(
      name,
      'a reconcile by the restarted operator',
      (c) => condition(c, 'Ready')?.status === 'True',
    );
    await f.patchCredential(name, { metadata: { labels: { touched: 'yes' } } });
    await waitEverywhere(
      name,
      names,
      () => ({ [server]: { username: 'AWS', password: forced?.password ?? '' } }),
      'the same token after the restart',
    );
    assert.equal(ecr.tokenCallsFor(account).length, 2, 'no third token');
  });

  it('refreshes on schedule while one namespace refuses every write (a denying admission policy)', async function (this: Mocha.Context) {
    this.timeout(180_000);
    const account = newAccount();
    const server = ecrServer(account);
    const lifetimeMs = 30_000;
    ecr.lifetimeFor.set(account, lifetimeMs);
    const { names } = await tenantNamespaces(3);
    const [denied, ...healthy] = names;
    assert.ok(denied);
    const deny = uniqueName('deny-secrets');
    const admission = cluster.kc.makeApiClient(AdmissionregistrationV1Api);
    await admission.createValidatingAdmissionPolicy({
      body: {
        metadata: { name: deny },
        spec: {
          failurePolicy: 'Fail',
          matchConstraints: {
            resourceRules: [
              {
                apiGroups: [''],
                apiVersions: ['v1'],
                operations: ['CREATE', 'UPDATE'],
                resources: ['secrets'],
              },
            ],
          },
          validations: [{ expression: 'false', message: 'this namespace takes no Secret' }],
        },
      },
    });
    await admission.createValidatingAdmissionPolicyBinding({
      body: {
        metadata: { name: deny },
        spec: {
          policyName: deny,
          validationActions: ['Deny'],
          matchResources: {
            namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': denied } },
          },
        },
      },
    });
    try {
      await waitUntil('the policy to deny Secrets there', async () => {
        try {
          await f.core.createNamespacedSecret({
            namespace: denied,
            body: { metadata: { name: uniqueName('probe') } },
          });
          return false;
        } catch (error) {
          return statusCode(error) === 422 || statusCode(error) === 403;
        }
      });
      const aws = await awsKeysSecret();
      const name = await credential({
        namespaces: names,
        registries: [{ server, ecr: { credentialsSecretRef: { name: aws.name } } }],
      });
      const [first] = await waitIssued('the first token', () => ecr.issuedFor(account), 1, 30_000);
      await waitEverywhere(
        name,
        healthy,
        () => ({ [server]: { username: 'AWS', password: first?.password ?? '' } }),
        'the first token where writes are allowed',
      );
      await waitStatus(name, `${denied} reported failing`, (c) =>
        (c.status?.failedNamespaces ?? []).some((x) => x.name === denied),
      );
      // Refreshed at two thirds of the lifetime: the new token must reach every healthy
      // namespace before the first one expires, however long the failing namespace's backoff.
      const [, second] = await waitIssued(
        'the refreshed token',
        () => ecr.issuedFor(account),
        2,
        lifetimeMs,
      );
      await waitEverywhere(
        name,
        healthy,
        () => ({ [server]: { username: 'AWS', password: second?.password ?? '' } }),
        'the refreshed token where writes are allowed',
      );
      assert.ok(
        Date.now() < (first?.expiresAt.getTime() ?? 0),
        'fanned out before the first token expired',
      );
    } finally {
      await admission.deleteValidatingAdmissionPolicyBinding({ name: deny });
      await admission.deleteValidatingAdmissionPolicy({ name: deny });
    }
  });

  it('makes no cloud call for a credential once it is deleted', async function (this: Mocha.Context) {
    this.timeout(180_000);
    // Two credentials whose tokens are refreshed every 6 s (two thirds of 9 s); one is deleted.
    // The other one's refreshes are the barrier, not a clock: once it has been refreshed twice
    // after the deletion, a schedule left behind for the deleted one would have called too.
    const lifetimeMs = 9_000;
    const [deleted, kept] = [newAccount(), newAccount()];
    for (const account of [deleted, kept]) ecr.lifetimeFor.set(account, lifetimeMs);
    const { names } = await tenantNamespaces(1);
    const ecrCredential = async (account: string) => {
      const aws = await awsKeysSecret();
      return credential({
        namespaces: names,
        registries: [
          { server: ecrServer(account), ecr: { credentialsSecretRef: { name: aws.name } } },
        ],
      });
    };
    const [doomed, live] = await Promise.all([ecrCredential(deleted), ecrCredential(kept)]);
    const calls = (account: string) => ecr.tokenCallsFor(account).length;
    await waitIssued('a refresh before the deletion', () => ecr.tokenCallsFor(deleted), 2);
    await f.deleteCredential(doomed);
    await f.waitCredentialGone(doomed);

    // Every other ECR registry of this file belongs to a credential deleted by now, too.
    const accounts = [...ecr.lifetimeFor.keys()].filter((account) => account !== kept);
    assert.ok(accounts.includes(deleted));
    const counts = accounts.map(calls);
    const refreshes = calls(kept);
    await waitIssued(
      `two refreshes of ${live} after the deletion`,
      () => ecr.tokenCallsFor(kept),
      refreshes + 2,
      4 * lifetimeMs,
    );
    assert.deepEqual(accounts.map(calls), counts, 'no GetAuthorizationToken after deletion');
  });

  it("no key, secret or token appears in this operator's logs", () => {
    assert.ok(op !== undefined && op.logs.length > 0, 'the operator logged');
    assert.ok(secretStrings.size >= 3, `checked ${secretStrings.size} strings`);
    // Every form (as is, base64, JSON-escaped) of this file's keys, tokens, `user:password`s and
    // `auth`s, and of every credential string the suite registered so far (the configs read
    // from the Secrets written here among them).
    const strings = [...secretStrings, ...usedCredentialStrings()].filter((s) => s.length >= 4);
    assert.deepEqual(findLeaks(strings, [{ where: 'operator logs', lines: op.logs }]), []);
  });
});

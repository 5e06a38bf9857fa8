// What a person reads when a cloud token cannot be had: each SDK's common failures, driven
// through the real SDKs (AWS SDK v3, google-auth-library, @azure/identity) against the local
// fakes, come out as one sentence naming the cloud (region, tenant, client), the Secret and key
// the credential came from, what is wrong and what to do. The SDK's own error is kept, scrubbed,
// for the debug log (CredentialError.detail), and no credential shows up in either.
import assert from 'node:assert/strict';
import { PassThrough } from 'node:stream';
import type { Registry } from '../../src/api/types.ts';
import { Reconciler } from '../../src/controller/reconciler.ts';
import { fetchAcrToken } from '../../src/credentials/cloud/acr.ts';
import type { CloudEndpoints, CloudTokenInput } from '../../src/credentials/cloud/cloud-token.ts';
import { fetchEcrToken } from '../../src/credentials/cloud/ecr.ts';
import { fetchGcpToken } from '../../src/credentials/cloud/gcp.ts';
import { CredentialError } from '../../src/credentials/errors.ts';
import { TokenCache } from '../../src/credentials/token-cache.ts';
import { createLogger, type LogLevel } from '../../src/observability/logger.ts';
import { freePort } from '../support/controlplane.ts';
import { AwsKeyring, type AwsKeys, FakeEcr, FakeSts } from '../support/fakes/aws.ts';
import { FakeAcr, FakeEntraId, IssuedAadTokens } from '../support/fakes/azure.ts';
import {
  AWS_CLEAN_ENV,
  AZURE_CLEAN_ENV,
  EnvPatch,
  GOOGLE_CLEAN_ENV,
} from '../support/fakes/env.ts';
import { distinctive, FakeServer } from '../support/fakes/fake-server.ts';
import {
  FakeGoogleOAuth,
  makeServiceAccountKey,
  type ServiceAccountKey,
} from '../support/fakes/google.ts';
import { testCertificates } from '../support/fakes/test-ca.ts';
import { InMemoryCluster } from '../support/in-memory-cluster.ts';

const ECR_SERVER = '123456789012.dkr.ecr.eu-west-1.amazonaws.com';
const ROLE = 'arn:aws:iam::123456789012:role/pull';
const GCP_SERVER = 'europe-west1-docker.pkg.dev';
const ACR_HOST = 'myregistry.azurecr.io';
const TENANT = '72f988bf-86f1-41af-91ab-2d7cd011db47';
const CLIENT = '0d6c1c8e-5a4b-4c3d-8e2f-000000000001';
/** A name no resolver answers (RFC 6761): the DNS failure, without any network. */
const NOWHERE = 'regcred.invalid';

interface Row {
  name: string;
  /** Sets the failure up; returns the fetch's input and the values that must not leak. */
  run: () => Promise<{ error: CredentialError; secrets: string[] }>;
  /** The whole sentence, or a pattern where a port differs per run. */
  expect: string | RegExp;
  reason?: 'RefreshFailed' | 'SourceInvalid';
  /** What the debug detail keeps of the SDK's error. */
  detail?: RegExp;
}

async function failure(promise: Promise<unknown>): Promise<CredentialError> {
  try {
    await promise;
  } catch (err) {
    assert.ok(err instanceof CredentialError, `expected CredentialError, got ${String(err)}`);
    return err;
  }
  assert.fail('expected the fetch to fail');
}

function escaped(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/** An HTTPS server whose certificate (from the test CA) nobody here trusts. */
async function untrustedTls(): Promise<FakeServer> {
  return FakeServer.start(() => ({ status: 200, body: {} }), { tls: true });
}

function check(row: Row): void {
  it(row.name, async () => {
    const { error, secrets } = await row.run();
    assert.equal(error.reason, row.reason ?? 'RefreshFailed', error.message);
    if (typeof row.expect === 'string') assert.equal(error.message, row.expect);
    else assert.match(error.message, row.expect);
    assert.doesNotMatch(error.message, /[\r\n]/, 'one line');
    if (row.detail) {
      assert.ok(error.detail, 'the SDK error is kept for the debug log');
      assert.match(error.detail, row.detail);
    }
    for (const secret of secrets) {
      assert.ok(!error.message.includes(secret), `message leaks ${secret}: ${error.message}`);
      assert.ok(!(error.detail ?? '').includes(secret), `detail leaks ${secret}: ${error.detail}`);
    }
  });
}

describe('Cloud errors a person can act on', function () {
  this.timeout(30_000);
  let env: EnvPatch;
  const closers: Array<() => Promise<void>> = [];

  beforeEach(() => {
    env = new EnvPatch().set({ ...AWS_CLEAN_ENV, ...GOOGLE_CLEAN_ENV, ...AZURE_CLEAN_ENV });
  });

  afterEach(async () => {
    env.restore();
    await Promise.all(closers.splice(0).map((close) => close()));
  });

  async function closedPortUrl(scheme: 'http' | 'https'): Promise<string> {
    return `${scheme}://127.0.0.1:${await freePort()}`;
  }

  describe('Amazon ECR and STS (AWS SDK v3)', () => {
    let keyring: AwsKeyring;
    let ecr: FakeEcr;
    let sts: FakeSts;
    let keys: AwsKeys;

    beforeEach(async () => {
      keyring = new AwsKeyring();
      ecr = await FakeEcr.start(keyring);
      sts = await FakeSts.start(keyring);
      sts.roles.add(ROLE);
      keys = keyring.mint(false, distinctive('ecr'));
      closers.push(
        () => ecr.close(),
        () => sts.close(),
      );
    });

    function input(
      endpoints: CloudEndpoints,
      withKeys: AwsKeys = keys,
      roleArn?: string,
    ): CloudTokenInput {
      return {
        registry: {
          server: ECR_SERVER,
          ecr: { credentialsSecretRef: { name: 'aws-keys' }, ...(roleArn ? { roleArn } : {}) },
        },
        secretData: {
          AWS_ACCESS_KEY_ID: withKeys.accessKeyId,
          AWS_SECRET_ACCESS_KEY: withKeys.secretAccessKey,
          ...(withKeys.sessionToken ? { AWS_SESSION_TOKEN: withKeys.sessionToken } : {}),
        },
        secretName: 'regcred-system/aws-keys',
        endpoints,
      };
    }
    const secretsOf = (k: AwsKeys): string[] =>
      [k.secretAccessKey, k.sessionToken].filter((v): v is string => v !== undefined);

    check({
      name: 'STS unreachable (DNS) while assuming a role',
      run: async () => ({
        error: await failure(
          fetchEcrToken(
            input(
              { ecrEndpoint: ecr.url, stsEndpoint: `https://sts.eu-west-1.${NOWHERE}` },
              keys,
              ROLE,
            ),
          ),
        ),
        secrets: secretsOf(keys),
      }),
      expect: `ECR in eu-west-1: cannot reach sts.eu-west-1.${NOWHERE} (DNS): check egress or set AWS_ENDPOINT_URL_STS`,
      detail: /ENOTFOUND/,
    });

    check({
      name: 'ECR refusing connections',
      run: async () => {
        const url = await closedPortUrl('http');
        return {
          error: await failure(fetchEcrToken(input({ ecrEndpoint: url, stsEndpoint: sts.url }))),
          secrets: secretsOf(keys),
        };
      },
      expect:
        /^ECR in eu-west-1: cannot reach 127\.0\.0\.1:\d+ \(connection refused\): check egress or set AWS_ENDPOINT_URL_ECR$/,
      detail: /ECONNREFUSED/,
    });

    check({
      name: 'ECR behind a certificate nobody trusts (TLS)',
      run: async () => {
        const proxy = await untrustedTls();
        closers.push(() => proxy.close());
        return {
          error: await failure(
            fetchEcrToken(input({ ecrEndpoint: proxy.url, stsEndpoint: sts.url })),
          ),
          secrets: secretsOf(keys),
        };
      },
      expect:
        /^ECR in eu-west-1: cannot reach 127\.0\.0\.1:\d+ \(TLS: the certificate is not trusted\): a TLS-inspecting proxy\? trust its CA with NODE_EXTRA_CA_CERTS$/,
    });

    check({
      name: 'an access key id AWS does not know',
      run: async () => {
        const unknown = { accessKeyId: 'AKIAUNKNOWNKEY000000', secretAccessKey: distinctive('x') };
        return {
          error: await failure(
            fetchEcrToken(input({ ecrEndpoint: ecr.url, stsEndpoint: sts.url }, unknown)),
          ),
          secrets: [unknown.secretAccessKey, unknown.accessKeyId],
        };
      },
      expect:
        'ECR in eu-west-1: AWS does not know the access key id in Secret regcred-system/aws-keys key AWS_ACCESS_KEY_ID (UnrecognizedClientException, HTTP 400): the key was deleted or deactivated, or belongs to another partition',
      detail: /UnrecognizedClientException/,
    });

    check({
      name: 'a secret access key that does not belong to the key id',
      run: async () => {
        const wrong = { accessKeyId: keys.accessKeyId, secretAccessKey: distinctive('wrong') };
        return {
          error: await failure(
            fetchEcrToken(input({ ecrEndpoint: ecr.url, stsEndpoint: sts.url }, wrong)),
          ),
          secrets: [wrong.secretAccessKey, keys.secretAccessKey],
        };
      },
      expect:
        'ECR in eu-west-1: the secret access key in Secret regcred-system/aws-keys key AWS_SECRET_ACCESS_KEY does not belong to the access key id in key AWS_ACCESS_KEY_ID (InvalidSignatureException, HTTP 400)',
    });

    check({
      name: 'permission denied on ecr:GetAuthorizationToken',
      run: async () => {
        ecr.failWith = {
          code: 'AccessDeniedException',
          message: `User: arn:aws:iam::123456789012:user/ci is not authorized to perform: ecr:GetAuthorizationToken on resource: * (key ${keys.secretAccessKey})`,
        };
        return {
          error: await failure(
            fetchEcrToken(input({ ecrEndpoint: ecr.url, stsEndpoint: sts.url })),
          ),
          secrets: secretsOf(keys),
        };
      },
      expect:
        'ECR in eu-west-1: arn:aws:iam::123456789012:user/ci may not call ecr:GetAuthorizationToken (AccessDeniedException, HTTP 400): allow it in an IAM policy (AmazonEC2ContainerRegistryReadOnly has it)',
    });

    check({
      name: 'a role STS will not let the keys assume (HTTP 403)',
      run: async () => ({
        error: await failure(
          fetchEcrToken(
            input(
              { ecrEndpoint: ecr.url, stsEndpoint: sts.url },
              keys,
              'arn:aws:iam::123456789012:role/other',
            ),
          ),
        ),
        secrets: secretsOf(keys),
      }),
      expect:
        "ECR in eu-west-1: STS does not let these credentials assume arn:aws:iam::123456789012:role/other (AccessDenied, HTTP 403): check the role's trust policy and the caller's sts:AssumeRole permission",
    });

    check({
      name: 'an expired session token in the Secret',
      run: async () => {
        const temporary = keyring.mint(true, distinctive('expired'));
        ecr.failWith = {
          code: 'ExpiredTokenException',
          message: 'The security token included in the request is expired',
        };
        return {
          error: await failure(
            fetchEcrToken(input({ ecrEndpoint: ecr.url, stsEndpoint: sts.url }, temporary)),
          ),
          secrets: secretsOf(temporary),
        };
      },
      expect:
        'ECR in eu-west-1: the session token in Secret regcred-system/aws-keys key AWS_SESSION_TOKEN has expired (ExpiredTokenException, HTTP 400): put fresh temporary keys in the Secret, or long-term keys without AWS_SESSION_TOKEN',
    });

    check({
      name: 'no credentials anywhere in the default chain',
      run: async () => ({
        error: await failure(
          fetchEcrToken({
            registry: { server: ECR_SERVER, ecr: {} },
            endpoints: { ecrEndpoint: ecr.url, stsEndpoint: sts.url },
          }),
        ),
        secrets: [],
      }),
      expect:
        "ECR in eu-west-1: no AWS credentials in the default chain (IRSA web identity, EKS Pod Identity, environment, instance metadata): set ecr.credentialsSecretRef, or give the operator's ServiceAccount an IAM role",
      detail: /CredentialsProviderError/,
    });

    check({
      name: 'throttling',
      run: async () => {
        ecr.failWith = { code: 'ThrottlingException', message: 'Rate exceeded' };
        return {
          error: await failure(
            fetchEcrToken(input({ ecrEndpoint: ecr.url, stsEndpoint: sts.url })),
          ),
          secrets: secretsOf(keys),
        };
      },
      expect:
        'ECR in eu-west-1: ECR is throttling requests (ThrottlingException, HTTP 400): retrying with backoff',
    });

    check({
      name: 'a failure on AWS’s side (HTTP 500)',
      run: async () => {
        ecr.failWith = { code: 'ServerException', message: 'internal', status: 500 };
        return {
          error: await failure(
            fetchEcrToken(input({ ecrEndpoint: ecr.url, stsEndpoint: sts.url })),
          ),
          secrets: secretsOf(keys),
        };
      },
      expect:
        'ECR in eu-west-1: ECR failed on its side (ServerException, HTTP 500): retrying with backoff',
    });
  });

  describe('Google (google-auth-library)', () => {
    let oauth: FakeGoogleOAuth;
    let key: ServiceAccountKey;

    beforeEach(async () => {
      oauth = await FakeGoogleOAuth.start();
      key = makeServiceAccountKey();
      oauth.trust(key);
      closers.push(() => oauth.close());
    });

    const registry: Registry = {
      server: GCP_SERVER,
      gcp: { serviceAccountKeySecretRef: { name: 'gcp-key' } },
    };
    const input = (tokenUrl: string, json = key.json): CloudTokenInput => ({
      registry,
      secretData: { 'key.json': json },
      secretName: 'regcred-system/gcp-key',
      endpoints: { gcpTokenUrl: tokenUrl },
    });
    const keySecrets = (): string[] => [
      key.json,
      ...key.privateKey.split('\n').filter((line) => line.length > 20 && !line.startsWith('---')),
    ];

    check({
      name: 'the token endpoint unreachable (DNS)',
      run: async () => ({
        error: await failure(fetchGcpToken(input(`https://oauth2.${NOWHERE}/token`))),
        secrets: keySecrets(),
      }),
      expect: `Secret regcred-system/gcp-key key key.json: cannot reach oauth2.${NOWHERE} (DNS): check egress`,
      detail: /ENOTFOUND/,
    });

    check({
      name: 'the token endpoint refusing connections',
      run: async () => ({
        error: await failure(fetchGcpToken(input(`${await closedPortUrl('http')}/token`))),
        secrets: keySecrets(),
      }),
      expect:
        /^Secret regcred-system\/gcp-key key key\.json: cannot reach 127\.0\.0\.1:\d+ \(connection refused\): check egress$/,
      detail: /ECONNREFUSED/,
    });

    check({
      name: 'the token endpoint behind a certificate nobody trusts (TLS)',
      run: async () => {
        const proxy = await untrustedTls();
        closers.push(() => proxy.close());
        return { error: await failure(fetchGcpToken(input(`${proxy.url}/token`))), secrets: [] };
      },
      expect:
        /^Secret regcred-system\/gcp-key key key\.json: cannot reach 127\.0\.0\.1:\d+ \(TLS: the certificate is not trusted\): a TLS-inspecting proxy\? trust its CA with NODE_EXTRA_CA_CERTS$/,
    });

    check({
      name: 'a deleted key (HTTP 400 invalid_grant)',
      run: async () => {
        const deleted = makeServiceAccountKey('deleted@acme-project.iam.gserviceaccount.com');
        return {
          error: await failure(fetchGcpToken(input(oauth.tokenUrl, deleted.json))),
          secrets: [deleted.json],
        };
      },
      expect:
        'Secret regcred-system/gcp-key key key.json: Google refused the service-account key (HTTP 400 invalid_grant: Invalid JWT Signature.): it was deleted or disabled; create a new key for the service account',
      detail: /invalid_grant/,
    });

    check({
      name: 'a client Google does not accept (HTTP 401)',
      run: async () => {
        oauth.failWith = {
          error: 'unauthorized_client',
          description: 'Client is unauthorized to retrieve access tokens using this method.',
          status: 401,
        };
        return {
          error: await failure(fetchGcpToken(input(oauth.tokenUrl))),
          secrets: keySecrets(),
        };
      },
      expect:
        'Secret regcred-system/gcp-key key key.json: Google denied the token request (HTTP 401 unauthorized_client: Client is unauthorized to retrieve access tokens using this method.)',
    });

    check({
      name: 'a token outside its valid time (clock skew)',
      run: async () => {
        oauth.failWith = {
          error: 'invalid_grant',
          description:
            'Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable timeframe. Check your iat and exp values in the JWT claim.',
        };
        return {
          error: await failure(fetchGcpToken(input(oauth.tokenUrl))),
          secrets: keySecrets(),
        };
      },
      expect:
        'Secret regcred-system/gcp-key key key.json: Google refused the service-account key (HTTP 400 invalid_grant: Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable timeframe. Check your iat and exp values in the JWT claim.)',
    });

    check({
      name: 'throttling (HTTP 429)',
      run: async () => {
        oauth.failWith = { error: 'rate_limit_exceeded', description: 'slow down', status: 429 };
        return {
          error: await failure(fetchGcpToken(input(oauth.tokenUrl))),
          secrets: keySecrets(),
        };
      },
      expect:
        'Secret regcred-system/gcp-key key key.json: Google is throttling requests (rate_limit_exceeded, HTTP 429): retrying with backoff',
    });

    check({
      name: 'a failure on Google’s side (HTTP 503)',
      run: async () => {
        oauth.failWith = { error: 'internal_failure', description: 'backend', status: 503 };
        return {
          error: await failure(fetchGcpToken(input(oauth.tokenUrl))),
          secrets: keySecrets(),
        };
      },
      expect:
        'Secret regcred-system/gcp-key key key.json: Google failed on its side (internal_failure, HTTP 503): retrying with backoff',
    });

    check({
      name: 'no metadata server (not on GKE or Compute Engine)',
      run: async () => {
        env.set({ GCE_METADATA_HOST: new URL(await closedPortUrl('http')).host });
        return {
          error: await failure(fetchGcpToken({ registry: { server: GCP_SERVER, gcp: {} } })),
          secrets: [],
        };
      },
      expect:
        /^Google \(metadata server\): cannot reach 127\.0\.0\.1:\d+ \(connection refused\): check egress; not on GKE or Compute Engine\? set gcp\.serviceAccountKeySecretRef$/,
    });

    check({
      name: 'a private_key that is not PEM',
      reason: 'SourceInvalid',
      run: async () => {
        const garbled = distinctive('not-a-pem');
        const json = JSON.stringify({ ...JSON.parse(key.json), private_key: garbled });
        const error = await failure(fetchGcpToken(input(oauth.tokenUrl, json)));
        assert.equal(oauth.tokenCalls, 0, 'nothing is sent with a key that cannot sign');
        return { error, secrets: [garbled] };
      },
      expect: 'Secret regcred-system/gcp-key key key.json: private_key is not a PEM private key',
    });

    check({
      name: 'key JSON cut short',
      reason: 'SourceInvalid',
      run: async () => {
        const cut = key.json.slice(0, 80);
        return { error: await failure(fetchGcpToken(input(oauth.tokenUrl, cut))), secrets: [cut] };
      },
      expect: 'Secret regcred-system/gcp-key key key.json is not valid JSON',
    });
  });

  describe('Entra ID and the ACR token exchange (@azure/identity)', () => {
    let entra: FakeEntraId;
    let acr: FakeAcr;
    let clientSecret: string;

    beforeEach(async () => {
      const tokens = new IssuedAadTokens();
      entra = await FakeEntraId.start(tokens);
      acr = await FakeAcr.start(tokens, ACR_HOST);
      clientSecret = distinctive('azure-client-secret');
      entra.clientSecrets.set(CLIENT, clientSecret);
      closers.push(
        () => entra.close(),
        () => acr.close(),
      );
    });

    const input = (endpoints: CloudEndpoints, secret = clientSecret): CloudTokenInput => ({
      registry: {
        server: ACR_HOST,
        acr: { tenantId: TENANT, clientId: CLIENT, clientSecretRef: { name: 'azure-sp' } },
      },
      secretData: { clientSecret: secret },
      secretName: 'regcred-system/azure-sp',
      endpoints,
    });
    const trusted = (authorityHost: string): CloudEndpoints => ({
      azureAuthorityHost: authorityHost,
      tlsCa: testCertificates().caCert,
      acrExchangeUrlFor: () => acr.exchangeUrl,
    });
    const who = `Entra ID tenant ${TENANT}, client ${CLIENT}`;

    check({
      name: 'the authority unreachable (DNS)',
      run: async () => ({
        error: await failure(fetchAcrToken(input(trusted(`https://login.${NOWHERE}`)))),
        secrets: [clientSecret],
      }),
      expect: `${who}: cannot reach login.${NOWHERE} (DNS): check egress`,
      detail: /endpoints_resolution_error/,
    });

    check({
      name: 'the authority refusing connections',
      run: async () => ({
        error: await failure(fetchAcrToken(input(trusted(await closedPortUrl('https'))))),
        secrets: [clientSecret],
      }),
      expect: new RegExp(
        `^${escaped(who)}: cannot reach 127\\.0\\.0\\.1:\\d+ \\(connection refused\\): check egress$`,
      ),
    });

    check({
      name: 'the authority behind a certificate nobody trusts (TLS)',
      run: async () => ({
        error: await failure(
          fetchAcrToken(
            input({
              azureAuthorityHost: entra.authorityHost,
              acrExchangeUrlFor: () => acr.exchangeUrl,
            }),
          ),
        ),
        secrets: [clientSecret],
      }),
      expect: new RegExp(
        `^${escaped(who)}: cannot reach 127\\.0\\.0\\.1:\\d+ \\(TLS: the certificate is not trusted\\): a TLS-inspecting proxy\\? trust its CA with NODE_EXTRA_CA_CERTS$`,
      ),
    });

    check({
      name: 'a wrong client secret (HTTP 401 invalid_client)',
      run: async () => {
        const wrong = distinctive('wrong-secret');
        return {
          error: await failure(fetchAcrToken(input(trusted(entra.authorityHost), wrong))),
          secrets: [wrong, clientSecret],
        };
      },
      expect: `${who}: the client secret in Secret regcred-system/azure-sp key clientSecret is not a secret of this app (HTTP 401 invalid_client AADSTS7000215)`,
      detail: /AADSTS7000215/,
    });

    check({
      name: 'an expired client secret',
      run: async () => {
        entra.failWith = {
          error: 'invalid_client',
          description: `AADSTS7000222: The provided client secret keys for app '${CLIENT}' are expired.`,
        };
        return {
          error: await failure(fetchAcrToken(input(trusted(entra.authorityHost)))),
          secrets: [clientSecret],
        };
      },
      expect: `${who}: the client secret in Secret regcred-system/azure-sp key clientSecret has expired: add a new one to the app registration and put it in the Secret (HTTP 401 invalid_client AADSTS7000222)`,
    });

    check({
      name: 'an unknown tenant (HTTP 400)',
      run: async () => {
        entra.failWith = {
          error: 'invalid_request',
          description: `AADSTS90002: Tenant '${TENANT}' not found.`,
          status: 400,
        };
        return {
          error: await failure(fetchAcrToken(input(trusted(entra.authorityHost)))),
          secrets: [clientSecret],
        };
      },
      expect: `${who}: the tenant does not exist (HTTP 400 invalid_request AADSTS90002)`,
    });

    check({
      name: 'throttling (HTTP 429)',
      run: async () => {
        entra.failWith = {
          error: 'temporarily_unavailable',
          description:
            'AADSTS50196: The server terminated an operation because it encountered a client request loop.',
          status: 429,
        };
        return {
          error: await failure(fetchAcrToken(input(trusted(entra.authorityHost)))),
          secrets: [clientSecret],
        };
      },
      expect: `${who}: Entra ID is throttling requests (temporarily_unavailable, HTTP 429): retrying with backoff`,
    });

    check({
      name: 'the registry refusing the Entra ID token (HTTP 401)',
      run: async () => {
        acr.failWith = { status: 401, code: 'UNAUTHORIZED', message: 'authentication required' };
        return {
          error: await failure(fetchAcrToken(input(trusted(entra.authorityHost)))),
          secrets: [clientSecret, ...entra.issued.map((i) => i.accessToken)],
        };
      },
      expect: `ACR ${ACR_HOST}: the registry refused the Entra ID token of client ${CLIENT} in tenant ${TENANT} (HTTP 401 UNAUTHORIZED): authentication required: give that identity the AcrPull role on the registry`,
    });

    check({
      name: 'the registry’s exchange failing on its side (HTTP 503)',
      run: async () => {
        acr.failWith = { status: 503, code: 'UNAVAILABLE', message: 'try later' };
        return {
          error: await failure(fetchAcrToken(input(trusted(entra.authorityHost)))),
          secrets: [clientSecret],
        };
      },
      expect: `ACR ${ACR_HOST}: the registry's token exchange failed on its side (HTTP 503): retrying with backoff`,
    });

    check({
      name: 'the registry unreachable',
      run: async () => {
        const closed = await closedPortUrl('http');
        return {
          error: await failure(
            fetchAcrToken(
              input({
                ...trusted(entra.authorityHost),
                acrExchangeUrlFor: () => `${closed}/oauth2/exchange`,
              }),
            ),
          ),
          secrets: [clientSecret],
        };
      },
      expect: new RegExp(
        `^ACR ${escaped(ACR_HOST)}: cannot reach 127\\.0\\.0\\.1:\\d+ \\(connection refused\\): check egress$`,
      ),
    });
  });

  describe('in the operator’s log', () => {
    let keyring: AwsKeyring;
    let ecr: FakeEcr;

    beforeEach(async () => {
      keyring = new AwsKeyring();
      ecr = await FakeEcr.start(keyring);
      closers.push(() => ecr.close());
    });

    /** Reconciles an ECR credential whose keys AWS does not know; returns the JSON log lines. */
    async function reconcileAt(level: LogLevel, secretAccessKey: string): Promise<string[]> {
      const cluster = new InMemoryCluster();
      cluster.addNamespace('regcred-system');
      cluster.addNamespace('team-a', { tenant: 'acme' });
      cluster.addServiceAccount('team-a', 'default', []);
      const b64 = (s: string): string => Buffer.from(s, 'utf8').toString('base64');
      cluster.addSecret({
        metadata: {
          name: 'aws-keys',
          namespace: 'regcred-system',
          labels: { 'regcred.dev/source': 'true' },
        },
        type: 'Opaque',
        data: {
          AWS_ACCESS_KEY_ID: b64('AKIAUNKNOWNKEY000000'),
          AWS_SECRET_ACCESS_KEY: b64(secretAccessKey),
        },
      });
      cluster.addCredential('acme', {
        namespaceSelector: { matchLabels: { tenant: 'acme' } },
        registries: [{ server: ECR_SERVER, ecr: { credentialsSecretRef: { name: 'aws-keys' } } }],
      });
      const out = new PassThrough();
      let text = '';
      out.on('data', (chunk: Buffer) => {
        text += chunk.toString();
      });
      const reconciler = new Reconciler({
        view: cluster,
        api: cluster,
        events: { record: async () => {} },
        log: createLogger(level, out),
        policy: {
          operatorNamespace: 'regcred-system',
          allowedSourceNamespaces: new Set(['regcred-system']),
        },
        fanoutConcurrency: 4,
        tokens: new TokenCache(),
        endpoints: { ecrEndpoint: ecr.url, stsEndpoint: ecr.url },
        now: () => new Date(),
      });
      await reconciler.reconcile('acme');
      await new Promise<void>((resolve) => setImmediate(resolve));
      return text.split('\n').filter((line) => line.trim() !== '');
    }

    const sentence =
      'ECR in eu-west-1: AWS does not know the access key id in Secret regcred-system/aws-keys key AWS_ACCESS_KEY_ID (UnrecognizedClientException, HTTP 400): the key was deleted or deactivated, or belongs to another partition';

    it('warns with the sentence; the SDK’s own error only at debug, scrubbed', async () => {
      const secret = distinctive('aws-secret');
      const info = await reconcileAt('info', secret);
      const warned = info
        .map((l) => JSON.parse(l))
        .filter((l) => l.message === 'token refresh failed');
      assert.equal(warned.length, 1, info.join('\n'));
      assert.equal(warned[0].error, sentence);
      assert.ok(!info.some((l) => l.includes('the cloud SDK said')), 'no SDK error at info');

      const debug = await reconcileAt('debug', secret);
      const said = debug
        .map((l) => JSON.parse(l))
        .filter((l) => l.message === 'token refresh failed: the cloud SDK said');
      assert.equal(said.length, 1, debug.join('\n'));
      assert.equal(said[0].level, 'debug');
      assert.equal(
        said[0].detail,
        '[UnrecognizedClientException] The security token included in the request is invalid.',
      );
      for (const line of [...info, ...debug]) assert.ok(!line.includes(secret), line);
    });
  });
});

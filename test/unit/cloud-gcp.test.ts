import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Registry } from '../../src/api/types.ts';
import { fetchGcpToken, GCP_USERNAME, isGoogleApisUrl } from '../../src/credentials/cloud/gcp.ts';
import { CredentialError } from '../../src/credentials/errors.ts';
import { secretValues } from '../../src/observability/redact.ts';
import { EnvPatch, GOOGLE_CLEAN_ENV } from '../support/fakes/env.ts';
import { distinctive, header } from '../support/fakes/fake-server.ts';
import {
  CLOUD_PLATFORM_SCOPE,
  FakeGceMetadata,
  FakeGoogleOAuth,
  makeServiceAccountKey,
  type ServiceAccountKey,
} from '../support/fakes/google.ts';

const SERVER = 'europe-west1-docker.pkg.dev';
const AUDIENCE =
  '//iam.googleapis.com/projects/123/locations/global/workloadIdentityPools/k8s/providers/cluster';

async function failure(promise: Promise<unknown>): Promise<CredentialError> {
  try {
    await promise;
  } catch (err) {
    assert.ok(err instanceof CredentialError, `expected CredentialError, got ${String(err)}`);
    return err;
  }
  assert.fail('expected the fetch to fail');
}

/** Neither the key nor any line of its PEM body may show up. */
function assertNoKeyMaterial(message: string, key: ServiceAccountKey): void {
  assert.ok(!message.includes(key.json));
  for (const line of key.privateKey.split('\n')) {
    if (line.length > 20 && !line.startsWith('-----')) assert.ok(!message.includes(line), message);
  }
}

describe('Google URL checks for external_account files', () => {
  it('accepts https googleapis.com hosts only', () => {
    for (const url of [
      'https://sts.googleapis.com/v1/token',
      'https://iamcredentials.googleapis.com/v1/projects/-/serviceAccounts/a@b.iam.gserviceaccount.com:generateAccessToken',
      'https://sts.us-east-1.rep.googleapis.com/v1/token',
    ]) {
      assert.equal(isGoogleApisUrl(url), true, url);
    }
    for (const url of [
      'http://sts.googleapis.com/v1/token',
      'https://sts.googleapis.com:8443/v1/token',
      'https://sts.googleapis.com.evil.example/v1/token',
      'https://evilgoogleapis.com/v1/token',
      'https://user:pw@sts.googleapis.com/v1/token',
      'https://127.0.0.1/v1/token',
      'https://169.254.169.254/computeMetadata/v1/',
      'not a url',
    ]) {
      assert.equal(isGoogleApisUrl(url), false, url);
    }
  });

  it('accepts loopback only when told to', () => {
    assert.equal(isGoogleApisUrl('http://127.0.0.1:8080/token'), false);
    assert.equal(isGoogleApisUrl('http://127.0.0.1:8080/token', true), true);
    assert.equal(isGoogleApisUrl('http://10.0.0.1:8080/token', true), false);
  });
});

describe('Google tokens', function () {
  this.timeout(20_000);
  let env: EnvPatch;
  let oauth: FakeGoogleOAuth;
  let metadata: FakeGceMetadata;
  let key: ServiceAccountKey;
  let dir: string;

  before(() => {
    key = makeServiceAccountKey();
  });

  beforeEach(async () => {
    env = new EnvPatch().set(GOOGLE_CLEAN_ENV);
    oauth = await FakeGoogleOAuth.start();
    metadata = await FakeGceMetadata.start();
    oauth.trust(key);
    dir = mkdtempSync(join(tmpdir(), 'regcred-gcp-'));
  });

  afterEach(async () => {
    env.restore();
    await Promise.all([oauth.close(), metadata.close()]);
    rmSync(dir, { recursive: true, force: true });
  });

  const keyRegistry: Registry = {
    server: SERVER,
    gcp: { serviceAccountKeySecretRef: { name: 'gcp-key' } },
  };
  const adcRegistry: Registry = { server: SERVER, gcp: {} };

  describe('with a service-account key from a Secret', () => {
    it('exchanges a signed assertion for an access token', async () => {
      const before = Date.now();
      const token = await fetchGcpToken({
        registry: keyRegistry,
        secretData: { 'key.json': key.json },
        endpoints: { gcpTokenUrl: oauth.tokenUrl },
      });

      assert.equal(oauth.callsOf('jwt-bearer'), 1);
      const [issued] = oauth.issued;
      assert.equal(issued?.subject, key.email);
      assert.equal(token.username, GCP_USERNAME);
      assert.equal(token.password, issued?.accessToken);
      const lifetime = token.expiresAt.getTime() - before;
      assert.ok(lifetime > 3590_000 && lifetime <= 3599_000 + 1000, `lifetime ${lifetime}`);
      assert.equal(secretValues.scrub(token.password), '[REDACTED]');
      assert.equal(secretValues.scrub(key.privateKey), '[REDACTED]');
    });

    it('reads the key named in the reference, one call per fetch', async () => {
      const registry: Registry = {
        server: SERVER,
        gcp: { serviceAccountKeySecretRef: { name: 'gcp-key', key: 'sa.json' } },
      };
      const input = {
        registry,
        secretData: { 'sa.json': key.json },
        endpoints: { gcpTokenUrl: oauth.tokenUrl },
      };
      const first = await fetchGcpToken(input);
      const second = await fetchGcpToken(input);
      assert.equal(oauth.tokenCalls, 2);
      assert.notEqual(first.password, second.password);
    });

    it('maps a rejected assertion to RefreshFailed without key material', async () => {
      const stranger = makeServiceAccountKey('stranger@acme-project.iam.gserviceaccount.com');
      const err = await failure(
        fetchGcpToken({
          registry: keyRegistry,
          secretData: { 'key.json': stranger.json },
          endpoints: { gcpTokenUrl: oauth.tokenUrl },
        }),
      );
      assert.equal(err.reason, 'RefreshFailed');
      assert.equal(
        err.message,
        'key key.json: Google refused the service-account key (HTTP 400 invalid_grant: Invalid JWT Signature.): it was deleted or disabled; create a new key for the service account',
      );
      assertNoKeyMaterial(err.message, stranger);
    });

    it('scrubs key material an upstream message might quote', async () => {
      oauth.failWith = {
        error: 'invalid_grant',
        description: `bad key ${key.privateKey}`,
      };
      const err = await failure(
        fetchGcpToken({
          registry: keyRegistry,
          secretData: { 'key.json': key.json },
          endpoints: { gcpTokenUrl: oauth.tokenUrl },
        }),
      );
      assert.equal(err.reason, 'RefreshFailed');
      assert.match(
        err.message,
        /^key key\.json: Google refused the service-account key \(HTTP 400 invalid_grant: bad key /,
      );
      assertNoKeyMaterial(err.message, key);
    });

    it('refuses what is not a service-account key, without quoting it', async () => {
      const cases: Array<[Record<string, string>, RegExp]> = [
        [{}, /has no key key\.json$/],
        [{ 'key.json': `{"private_key": "${distinctive('half')}"` }, /is not valid JSON$/],
        [
          { 'key.json': JSON.stringify({ type: 'external_account', audience: AUDIENCE }) },
          /is not a service account key/,
        ],
        [
          { 'key.json': JSON.stringify({ type: 'service_account', client_email: key.email }) },
          /has no private_key$/,
        ],
      ];
      for (const [secretData, pattern] of cases) {
        const err = await failure(
          fetchGcpToken({
            registry: keyRegistry,
            secretData,
            secretName: 'regcred-system/gcp-key',
            endpoints: { gcpTokenUrl: oauth.tokenUrl },
          }),
        );
        assert.equal(err.reason, 'SourceInvalid');
        assert.match(err.message, pattern);
        assert.match(err.message, /^Secret regcred-system\/gcp-key /);
        for (const value of Object.values(secretData)) assert.ok(!err.message.includes(value));
      }
      assert.equal(oauth.tokenCalls, 0);
    });
  });

  describe('with application default credentials', () => {
    it('asks the metadata server (GCE_METADATA_HOST) with Metadata-Flavor: Google', async () => {
      env.set({ GCE_METADATA_HOST: metadata.host });
      metadata.expiresInSeconds = 1800;
      const before = Date.now();
      const token = await fetchGcpToken({ registry: adcRegistry });

      assert.equal(metadata.tokenCalls, 1);
      const [call] = metadata.server.calls;
      assert.ok(call);
      assert.equal(header(call, 'metadata-flavor'), 'Google');
      assert.equal(call.query.get('scopes'), CLOUD_PLATFORM_SCOPE);
      assert.equal(token.username, GCP_USERNAME);
      assert.equal(token.password, metadata.issued[0]);
      const lifetime = token.expiresAt.getTime() - before;
      assert.ok(lifetime > 1790_000 && lifetime <= 1801_000, `lifetime ${lifetime}`);
      assert.equal(metadata.server.calls.length, 1, 'no detection ping, no project id lookup');
    });

    it('reports a metadata server that refuses', async () => {
      env.set({ GCE_METADATA_HOST: metadata.host });
      metadata.failWith = { status: 403, body: 'scopes not allowed' };
      const err = await failure(fetchGcpToken({ registry: adcRegistry }));
      assert.equal(err.reason, 'RefreshFailed');
      assert.match(
        err.message,
        /^Google \(metadata server\): Google denied the token request \(HTTP 403/,
      );
    });

    it('uses a service-account key file named by GOOGLE_APPLICATION_CREDENTIALS', async () => {
      writeFileSync(join(dir, 'key.json'), key.json);
      env.set({ GOOGLE_APPLICATION_CREDENTIALS: join(dir, 'key.json') });
      const token = await fetchGcpToken({
        registry: adcRegistry,
        endpoints: { gcpTokenUrl: oauth.tokenUrl },
      });
      assert.equal(oauth.callsOf('jwt-bearer'), 1);
      assert.equal(token.password, oauth.issued[0]?.accessToken);
      assert.equal(metadata.server.calls.length, 0);
    });

    function writeExternalAccount(extra: Record<string, unknown> = {}): string {
      const subjectToken = distinctive('projected-k8s-token');
      writeFileSync(join(dir, 'subject-token'), subjectToken);
      writeFileSync(
        join(dir, 'adc.json'),
        JSON.stringify({
          type: 'external_account',
          audience: AUDIENCE,
          subject_token_type: 'urn:ietf:params:oauth:token-type:jwt',
          token_url: oauth.tokenUrl,
          credential_source: { file: join(dir, 'subject-token') },
          ...extra,
        }),
      );
      env.set({ GOOGLE_APPLICATION_CREDENTIALS: join(dir, 'adc.json') });
      oauth.subjectToken = subjectToken;
      oauth.audience = AUDIENCE;
      return subjectToken;
    }

    it('exchanges a workload identity federation subject token at STS', async () => {
      oauth.expiresInSeconds = 1200;
      writeExternalAccount();
      const before = Date.now();
      const token = await fetchGcpToken({
        registry: adcRegistry,
        endpoints: { gcpAllowLoopbackUrls: true },
      });
      assert.equal(oauth.callsOf('token-exchange'), 1);
      assert.equal(oauth.server.calls.length, 1);
      assert.equal(token.password, oauth.issued[0]?.accessToken);
      const lifetime = token.expiresAt.getTime() - before;
      assert.ok(lifetime > 1190_000 && lifetime <= 1201_000, `lifetime ${lifetime}`);
    });

    it('impersonates a service account after the exchange', async () => {
      const email = 'puller@acme-project.iam.gserviceaccount.com';
      writeExternalAccount({ service_account_impersonation_url: oauth.impersonationUrl(email) });
      const token = await fetchGcpToken({
        registry: adcRegistry,
        endpoints: { gcpAllowLoopbackUrls: true },
      });
      assert.equal(oauth.callsOf('token-exchange'), 1);
      assert.equal(oauth.callsOf('impersonation'), 1);
      const impersonated = oauth.issued.find((i) => i.grant === 'impersonation');
      assert.equal(impersonated?.subject, email);
      assert.equal(token.password, impersonated?.accessToken);
      const lifetime = token.expiresAt.getTime() - Date.now();
      assert.ok(lifetime > 3500_000 && lifetime <= 3600_000, `lifetime ${lifetime}`);
    });

    it('refuses an external_account file whose URLs are not googleapis.com', async () => {
      const cases: Array<Record<string, unknown>> = [
        {},
        { token_url: 'https://sts.googleapis.com.evil.example/v1/token' },
        {
          token_url: 'https://sts.googleapis.com/v1/token',
          service_account_impersonation_url: 'https://attacker.example/v1/x:generateAccessToken',
        },
      ];
      for (const extra of cases) {
        const subjectToken = writeExternalAccount(extra);
        const err = await failure(fetchGcpToken({ registry: adcRegistry }));
        assert.equal(err.reason, 'RefreshFailed');
        assert.match(err.message, /is not an https:\/\/\*\.googleapis\.com URL$/);
        assert.ok(!err.message.includes(subjectToken));
      }
      assert.equal(oauth.server.calls.length, 0, 'nothing was sent anywhere');
    });

    it('reports a rejected subject token without it', async () => {
      const subjectToken = writeExternalAccount();
      oauth.subjectToken = 'another-token';
      const err = await failure(
        fetchGcpToken({ registry: adcRegistry, endpoints: { gcpAllowLoopbackUrls: true } }),
      );
      assert.equal(err.reason, 'RefreshFailed');
      assert.match(err.message, /invalid_grant/);
      assert.ok(!err.message.includes(subjectToken));
    });

    it('reports an unreadable or unsupported credentials file', async () => {
      env.set({ GOOGLE_APPLICATION_CREDENTIALS: join(dir, 'missing.json') });
      const missing = await failure(fetchGcpToken({ registry: adcRegistry }));
      assert.equal(
        missing.message,
        'gcp: cannot read the GOOGLE_APPLICATION_CREDENTIALS file: ENOENT',
      );

      writeFileSync(join(dir, 'gdch.json'), JSON.stringify({ type: 'gdch_service_account' }));
      env.set({ GOOGLE_APPLICATION_CREDENTIALS: join(dir, 'gdch.json') });
      const unsupported = await failure(fetchGcpToken({ registry: adcRegistry }));
      assert.match(unsupported.message, /has an unsupported type/);
    });
  });
});

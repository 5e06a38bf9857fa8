import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Registry } from '../../src/api/types.ts';
import { ACR_USERNAME, fetchAcrToken } from '../../src/credentials/cloud/acr.ts';
import type { CloudEndpoints } from '../../src/credentials/cloud/cloud-token.ts';
import { CredentialError } from '../../src/credentials/errors.ts';
import { secretValues } from '../../src/observability/redact.ts';
import { FakeAcr, FakeAzureImds, FakeEntraId, IssuedAadTokens } from '../support/fakes/azure.ts';
import { AZURE_CLEAN_ENV, EnvPatch } from '../support/fakes/env.ts';
import { distinctive, formOf } from '../support/fakes/fake-server.ts';
import { testCertificates } from '../support/fakes/test-ca.ts';

const REGISTRY_HOST = 'myregistry.azurecr.io';
const TENANT = '72f988bf-86f1-41af-91ab-2d7cd011db47';
const CLIENT = '0d6c1c8e-5a4b-4c3d-8e2f-000000000001';

async function failure(promise: Promise<unknown>): Promise<CredentialError> {
  try {
    await promise;
  } catch (err) {
    assert.ok(err instanceof CredentialError, `expected CredentialError, got ${String(err)}`);
    return err;
  }
  assert.fail('expected the fetch to fail');
}

describe('ACR tokens', function () {
  this.timeout(30_000);
  let env: EnvPatch;
  let tokens: IssuedAadTokens;
  let entra: FakeEntraId;
  let imds: FakeAzureImds;
  let acr: FakeAcr;
  let clientSecret: string;
  let endpoints: CloudEndpoints;
  let dir: string;

  beforeEach(async () => {
    env = new EnvPatch().set(AZURE_CLEAN_ENV);
    tokens = new IssuedAadTokens();
    entra = await FakeEntraId.start(tokens);
    imds = await FakeAzureImds.start(tokens);
    acr = await FakeAcr.start(tokens, REGISTRY_HOST);
    clientSecret = distinctive('azure-client-secret');
    entra.clientSecrets.set(CLIENT, clientSecret);
    endpoints = {
      azureAuthorityHost: entra.authorityHost,
      tlsCa: testCertificates().caCert,
      acrExchangeUrlFor: (host) => {
        assert.equal(host, REGISTRY_HOST);
        return acr.exchangeUrl;
      },
    };
    dir = mkdtempSync(join(tmpdir(), 'regcred-acr-'));
  });

  afterEach(async () => {
    env.restore();
    await Promise.all([entra.close(), imds.close(), acr.close()]);
    rmSync(dir, { recursive: true, force: true });
  });

  const secretRegistry: Registry = {
    server: REGISTRY_HOST,
    acr: { tenantId: TENANT, clientId: CLIENT, clientSecretRef: { name: 'azure-sp' } },
  };

  describe('with a service principal secret', () => {
    it('exchanges an Entra ID token for an ACR refresh token', async () => {
      acr.tenant = TENANT;
      const token = await fetchAcrToken({
        registry: secretRegistry,
        secretData: { clientSecret },
        endpoints,
      });

      assert.equal(entra.tokenCalls, 1);
      assert.equal(entra.issued[0]?.kind, 'client_secret');
      assert.equal(entra.issued[0]?.tenantId, TENANT);
      assert.equal(acr.exchangeCalls, 1);
      const [call] = acr.server.callsTo('POST', '/oauth2/exchange');
      assert.ok(call);
      const form = formOf(call);
      assert.equal(form.get('grant_type'), 'access_token');
      assert.equal(form.get('service'), REGISTRY_HOST);
      assert.equal(form.get('tenant'), TENANT);
      assert.equal(form.get('access_token'), entra.issued[0]?.accessToken);

      const [issued] = acr.issued;
      assert.deepEqual(token, {
        username: ACR_USERNAME,
        password: issued?.refreshToken,
        expiresAt: issued?.expiresAt,
      });
      assert.equal(secretValues.scrub(token.password), '[REDACTED]');
      // The auth field a pull Secret carries for it, before it reaches one.
      const auth = Buffer.from(`${ACR_USERNAME}:${token.password}`).toString('base64');
      assert.equal(secretValues.scrub(auth), '[REDACTED]');
      assert.equal(secretValues.scrub(clientSecret), '[REDACTED]');
    });

    it('parses the expiry from the refresh token and makes one exchange per fetch', async () => {
      acr.refreshTokenLifetimeMs = 45 * 60 * 1000;
      const before = Date.now();
      const input = { registry: secretRegistry, secretData: { clientSecret }, endpoints };
      const first = await fetchAcrToken(input);
      const second = await fetchAcrToken(input);
      assert.equal(acr.exchangeCalls, 2);
      assert.equal(entra.tokenCalls, 2);
      assert.notEqual(first.password, second.password);
      // The fake stamps exp from its own clock, a few ms after `before`.
      const lifetime = first.expiresAt.getTime() - before;
      const elapsed = Date.now() - before;
      assert.ok(
        lifetime > 44 * 60 * 1000 && lifetime <= 45 * 60 * 1000 + elapsed,
        `lifetime ${lifetime}`,
      );
    });

    it('reads the key named in the reference, and sends the bare host as service', async () => {
      const registry: Registry = {
        server: `https://${REGISTRY_HOST}/v2/`,
        acr: {
          tenantId: TENANT,
          clientId: CLIENT,
          clientSecretRef: { name: 'azure-sp', key: 'password' },
        },
      };
      await fetchAcrToken({ registry, secretData: { password: clientSecret }, endpoints });
      assert.equal(acr.issued[0]?.service, REGISTRY_HOST);
    });

    it('maps a wrong secret to RefreshFailed without the secret', async () => {
      const wrong = distinctive('wrong-client-secret');
      const err = await failure(
        fetchAcrToken({ registry: secretRegistry, secretData: { clientSecret: wrong }, endpoints }),
      );
      assert.equal(err.reason, 'RefreshFailed');
      assert.equal(
        err.message,
        `Entra ID tenant ${TENANT}, client ${CLIENT}: the client secret in key clientSecret of the Secret is not a secret of this app (HTTP 401 invalid_client AADSTS7000215)`,
      );
      assert.ok(!err.message.includes(wrong));
      assert.equal(acr.exchangeCalls, 0);
    });

    it('maps a refused exchange to RefreshFailed without any token', async () => {
      acr.failWith = { status: 401, code: 'UNAUTHORIZED', message: 'authentication required' };
      const err = await failure(
        fetchAcrToken({ registry: secretRegistry, secretData: { clientSecret }, endpoints }),
      );
      assert.equal(err.reason, 'RefreshFailed');
      assert.equal(
        err.message,
        `ACR ${REGISTRY_HOST}: the registry refused the Entra ID token of client ${CLIENT} in tenant ${TENANT} (HTTP 401 UNAUTHORIZED): authentication required: give that identity the AcrPull role on the registry`,
      );
      const aadToken = entra.issued[0]?.accessToken ?? '';
      assert.ok(aadToken.length > 0 && !err.message.includes(aadToken));
      assert.ok(!err.message.includes(clientSecret));
    });

    it('scrubs a token an exchange error might quote', async () => {
      acr.failWith = { status: 400, code: 'DENIED', message: 'rejected:', echoToken: true };
      const err = await failure(
        fetchAcrToken({ registry: secretRegistry, secretData: { clientSecret }, endpoints }),
      );
      const aadToken = entra.issued[0]?.accessToken ?? '';
      assert.ok(aadToken.length > 0);
      assert.equal(
        err.message,
        `ACR ${REGISTRY_HOST}: the token exchange refused the Entra ID token of client ${CLIENT} in tenant ${TENANT} (HTTP 400 DENIED): rejected: [REDACTED]`,
      );
    });

    it('needs tenantId and clientId with a secret', async () => {
      const err = await failure(
        fetchAcrToken({
          registry: { server: REGISTRY_HOST, acr: { clientSecretRef: { name: 'azure-sp' } } },
          secretData: { clientSecret },
          endpoints,
        }),
      );
      assert.equal(err.reason, 'InvalidSpec');
    });

    it('sends the Entra token to Azure Container Registry hosts only', async () => {
      for (const server of [
        'registry.example.com',
        'myregistry.azurecr.io.evil.example',
        'azurecr.io',
      ]) {
        const err = await failure(
          fetchAcrToken({
            registry: { ...secretRegistry, server },
            secretData: { clientSecret },
            endpoints,
          }),
        );
        assert.equal(err.reason, 'InvalidSpec', server);
      }
      assert.equal(entra.tokenCalls, 0);
      assert.equal(acr.exchangeCalls, 0);
    });

    it('names a missing secret key as SourceInvalid', async () => {
      const err = await failure(
        fetchAcrToken({
          registry: secretRegistry,
          secretData: {},
          secretName: 'regcred-system/azure-sp',
          endpoints,
        }),
      );
      assert.equal(err.reason, 'SourceInvalid');
      assert.equal(err.message, 'Secret regcred-system/azure-sp has no key clientSecret');
    });

    it('does not trust the authority without the CA', async () => {
      const { tlsCa: _ca, ...untrusted } = endpoints;
      const err = await failure(
        fetchAcrToken({
          registry: secretRegistry,
          secretData: { clientSecret },
          endpoints: untrusted,
        }),
      );
      assert.equal(err.reason, 'RefreshFailed');
      assert.equal(entra.tokenCalls, 0);
    });
  });

  describe('without a secret', () => {
    it('uses workload identity (AZURE_FEDERATED_TOKEN_FILE)', async () => {
      const federated = distinctive('projected-sa-token');
      writeFileSync(join(dir, 'azure-identity-token'), federated);
      entra.federatedTokens.set(CLIENT, federated);
      env.set({ AZURE_FEDERATED_TOKEN_FILE: join(dir, 'azure-identity-token') });
      acr.tenant = TENANT;

      const token = await fetchAcrToken({
        registry: { server: REGISTRY_HOST, acr: { tenantId: TENANT, clientId: CLIENT } },
        endpoints,
      });

      assert.equal(entra.tokenCalls, 1);
      assert.equal(entra.issued[0]?.kind, 'client_assertion');
      assert.equal(acr.exchangeCalls, 1);
      assert.equal(token.password, acr.issued[0]?.refreshToken);
    });

    it('takes tenant and client from AZURE_TENANT_ID / AZURE_CLIENT_ID as the webhook sets them', async () => {
      const federated = distinctive('projected-sa-token');
      writeFileSync(join(dir, 'azure-identity-token'), federated);
      entra.federatedTokens.set(CLIENT, federated);
      env.set({
        AZURE_FEDERATED_TOKEN_FILE: join(dir, 'azure-identity-token'),
        AZURE_TENANT_ID: TENANT,
        AZURE_CLIENT_ID: CLIENT,
      });
      await fetchAcrToken({ registry: { server: REGISTRY_HOST, acr: {} }, endpoints });
      assert.equal(entra.issued[0]?.tenantId, TENANT);
      assert.equal(acr.issued[0]?.tenant, TENANT);
    });

    it('reports a federated token Entra ID rejects, without it', async () => {
      const federated = distinctive('rejected-sa-token');
      writeFileSync(join(dir, 'azure-identity-token'), federated);
      env.set({ AZURE_FEDERATED_TOKEN_FILE: join(dir, 'azure-identity-token') });
      const err = await failure(
        fetchAcrToken({
          registry: { server: REGISTRY_HOST, acr: { tenantId: TENANT, clientId: CLIENT } },
          endpoints,
        }),
      );
      assert.equal(err.reason, 'RefreshFailed');
      assert.match(
        err.message,
        /^Entra ID tenant \S+, client \S+: no federated credential of the app names the ServiceAccount token's issuer: .*\(HTTP 401 invalid_client AADSTS700211\)$/,
      );
      assert.ok(!err.message.includes(federated));
    });

    it('uses managed identity, taking the tenant from the token', async () => {
      // MSAL keeps managed identity tokens in a process-wide cache: this is the one test that
      // asks IMDS for one.
      env.set({ AZURE_POD_IDENTITY_AUTHORITY_HOST: imds.url });
      acr.tenant = imds.tenantId;

      const token = await fetchAcrToken({
        registry: { server: REGISTRY_HOST, acr: {} },
        endpoints,
      });

      assert.equal(imds.tokenCalls, 1);
      assert.equal(acr.exchangeCalls, 1);
      assert.equal(acr.issued[0]?.tenant, imds.tenantId);
      assert.equal(token.username, ACR_USERNAME);
      assert.equal(token.password, acr.issued[0]?.refreshToken);
    });
  });
});

import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Registry } from '../../src/api/types.ts';
import type { CloudTokenInput } from '../../src/credentials/cloud/cloud-token.ts';
import { ecrRegistry, fetchEcrToken } from '../../src/credentials/cloud/ecr.ts';
import { CredentialError } from '../../src/credentials/errors.ts';
import { secretValues } from '../../src/observability/redact.ts';
import {
  AwsKeyring,
  type AwsKeys,
  FakeEcr,
  FakePodIdentityAgent,
  FakeSts,
} from '../support/fakes/aws.ts';
import { AWS_CLEAN_ENV, EnvPatch } from '../support/fakes/env.ts';
import { distinctive } from '../support/fakes/fake-server.ts';

const SERVER = '123456789012.dkr.ecr.eu-west-1.amazonaws.com';
const ROLE = 'arn:aws:iam::123456789012:role/pull';
const IRSA_ROLE = 'arn:aws:iam::123456789012:role/regcred-operator';

async function refreshFailure(promise: Promise<unknown>): Promise<CredentialError> {
  try {
    await promise;
  } catch (err) {
    assert.ok(err instanceof CredentialError, `expected CredentialError, got ${String(err)}`);
    return err;
  }
  assert.fail('expected the fetch to fail');
}

function assertNoSecrets(message: string, ...secrets: Array<string | undefined>): void {
  for (const secret of secrets) {
    if (secret !== undefined)
      assert.ok(!message.includes(secret), `message leaks a secret: ${message}`);
  }
}

describe('ECR registry parsing', () => {
  it('takes the account and region from the server host', () => {
    assert.deepEqual(ecrRegistry(SERVER, undefined), {
      accountId: '123456789012',
      region: 'eu-west-1',
    });
    assert.deepEqual(ecrRegistry(`https://${SERVER}/v2/`, undefined), {
      accountId: '123456789012',
      region: 'eu-west-1',
    });
    assert.deepEqual(
      ecrRegistry('123456789012.dkr.ecr.cn-north-1.amazonaws.com.cn:443', undefined),
      {
        accountId: '123456789012',
        region: 'cn-north-1',
      },
    );
    assert.deepEqual(
      ecrRegistry('123456789012.dkr.ecr-fips.us-gov-west-1.amazonaws.com', undefined),
      {
        accountId: '123456789012',
        region: 'us-gov-west-1',
      },
    );
    assert.deepEqual(ecrRegistry('123456789012.dkr-ecr.us-east-1.on.aws', undefined), {
      accountId: '123456789012',
      region: 'us-east-1',
    });
  });

  it('prefers ecr.region, and needs it for a host that is not ECR', () => {
    assert.deepEqual(ecrRegistry(SERVER, 'us-east-1'), {
      accountId: '123456789012',
      region: 'us-east-1',
    });
    assert.deepEqual(ecrRegistry('registry.example.com', 'us-east-1'), { region: 'us-east-1' });
    assert.throws(
      () => ecrRegistry('registry.example.com', undefined),
      (err: unknown) => err instanceof CredentialError && err.reason === 'InvalidSpec',
    );
    assert.throws(
      () => ecrRegistry('123456789012.dkr.ecr.evil.example.com', undefined),
      (err: unknown) => err instanceof CredentialError && err.reason === 'InvalidSpec',
    );
    assert.throws(
      () => ecrRegistry(SERVER, 'eu-west-1.evil.example/'),
      (err: unknown) => err instanceof CredentialError && err.reason === 'InvalidSpec',
    );
  });
});

describe('ECR tokens', function () {
  this.timeout(20_000);
  let env: EnvPatch;
  let keyring: AwsKeyring;
  let ecr: FakeEcr;
  let sts: FakeSts;
  let agent: FakePodIdentityAgent;
  let staticKeys: AwsKeys;
  let dir: string;

  beforeEach(async () => {
    env = new EnvPatch().set(AWS_CLEAN_ENV);
    keyring = new AwsKeyring();
    ecr = await FakeEcr.start(keyring);
    sts = await FakeSts.start(keyring);
    agent = await FakePodIdentityAgent.start(keyring);
    sts.roles.add(ROLE).add(IRSA_ROLE);
    staticKeys = keyring.mint(false, distinctive('static'));
    dir = mkdtempSync(join(tmpdir(), 'regcred-ecr-'));
  });

  afterEach(async () => {
    env.restore();
    await Promise.all([ecr.close(), sts.close(), agent.close()]);
    rmSync(dir, { recursive: true, force: true });
  });

  function withKeys(registry: Registry, keys: AwsKeys = staticKeys): CloudTokenInput {
    return {
      registry,
      secretData: {
        AWS_ACCESS_KEY_ID: keys.accessKeyId,
        AWS_SECRET_ACCESS_KEY: keys.secretAccessKey,
        ...(keys.sessionToken === undefined ? {} : { AWS_SESSION_TOKEN: keys.sessionToken }),
      },
      secretName: 'regcred-system/aws-keys',
      endpoints: { ecrEndpoint: ecr.url, stsEndpoint: sts.url },
    };
  }

  const keysRegistry: Registry = {
    server: SERVER,
    ecr: { credentialsSecretRef: { name: 'aws-keys' } },
  };

  it('signs GetAuthorizationToken with the keys from the Secret', async () => {
    const token = await fetchEcrToken(withKeys(keysRegistry));

    assert.equal(ecr.tokenCalls, 1);
    const [issued] = ecr.issued;
    assert.ok(issued);
    assert.equal(issued.accessKeyId, staticKeys.accessKeyId);
    assert.equal(issued.region, 'eu-west-1');
    assert.deepEqual(issued.registryIds, ['123456789012']);
    assert.deepEqual(token, {
      username: 'AWS',
      password: issued.password,
      expiresAt: issued.expiresAt,
    });
    assert.equal(
      secretValues.scrub(`pw=${token.password}`),
      'pw=[REDACTED]',
      'the token is registered for redaction',
    );
    assert.equal(secretValues.scrub(staticKeys.secretAccessKey), '[REDACTED]');
  });

  it('parses the expiry and makes exactly one call per fetch', async () => {
    ecr.tokenLifetimeMs = 90 * 60 * 1000;
    const before = Date.now();
    const first = await fetchEcrToken(withKeys(keysRegistry));
    const second = await fetchEcrToken(withKeys(keysRegistry));
    assert.equal(ecr.tokenCalls, 2);
    assert.notEqual(first.password, second.password);
    // The fake stamps the expiry from its own clock, a few ms after `before`.
    const lifetime = first.expiresAt.getTime() - before;
    const elapsed = Date.now() - before;
    assert.ok(
      lifetime > 89 * 60 * 1000 && lifetime <= 90 * 60 * 1000 + elapsed,
      `lifetime ${lifetime}`,
    );
  });

  it('uses a session token from the Secret', async () => {
    const temporary = keyring.mint(true, distinctive('session'));
    await fetchEcrToken(withKeys(keysRegistry, temporary));
    assert.equal(ecr.issued[0]?.accessKeyId, temporary.accessKeyId);
  });

  it('takes ecr.region over the region in the host', async () => {
    await fetchEcrToken(
      withKeys({
        server: SERVER,
        ecr: { region: 'us-east-1', credentialsSecretRef: { name: 'aws-keys' } },
      }),
    );
    assert.equal(ecr.issued[0]?.region, 'us-east-1');
  });

  it('assumes roleArn with the keys from the Secret, then signs with the role', async () => {
    const token = await fetchEcrToken(
      withKeys({
        server: SERVER,
        ecr: { roleArn: ROLE, credentialsSecretRef: { name: 'aws-keys' } },
      }),
    );
    assert.equal(sts.callsOf('AssumeRole'), 1);
    const [assumed] = sts.issued;
    assert.equal(assumed?.roleArn, ROLE);
    assert.equal(assumed?.sessionName, 'regcred-operator');
    assert.equal(assumed?.callerAccessKeyId, staticKeys.accessKeyId);
    assert.equal(assumed?.region, 'eu-west-1');
    assert.equal(ecr.tokenCalls, 1);
    assert.equal(ecr.issued[0]?.accessKeyId, assumed?.keys.accessKeyId);
    assert.equal(token.password, ecr.issued[0]?.password);
  });

  it('uses IRSA web identity from the default chain', async () => {
    const webToken = distinctive('projected-sa-token');
    writeFileSync(join(dir, 'token'), webToken);
    sts.webIdentityToken = webToken;
    env.set({ AWS_ROLE_ARN: IRSA_ROLE, AWS_WEB_IDENTITY_TOKEN_FILE: join(dir, 'token') });

    const token = await fetchEcrToken({
      registry: { server: SERVER, ecr: {} },
      endpoints: { ecrEndpoint: ecr.url, stsEndpoint: sts.url },
    });

    assert.equal(sts.callsOf('AssumeRoleWithWebIdentity'), 1);
    assert.equal(sts.issued[0]?.roleArn, IRSA_ROLE);
    assert.equal(ecr.tokenCalls, 1);
    assert.equal(ecr.issued[0]?.accessKeyId, sts.issued[0]?.keys.accessKeyId);
    assert.equal(token.password, ecr.issued[0]?.password);
  });

  it('assumes roleArn on top of IRSA', async () => {
    const webToken = distinctive('projected-sa-token');
    writeFileSync(join(dir, 'token'), webToken);
    sts.webIdentityToken = webToken;
    env.set({ AWS_ROLE_ARN: IRSA_ROLE, AWS_WEB_IDENTITY_TOKEN_FILE: join(dir, 'token') });

    await fetchEcrToken({
      registry: { server: SERVER, ecr: { roleArn: ROLE } },
      endpoints: { ecrEndpoint: ecr.url, stsEndpoint: sts.url },
    });

    assert.deepEqual(
      sts.issued.map((i) => [i.action, i.roleArn]),
      [
        ['AssumeRoleWithWebIdentity', IRSA_ROLE],
        ['AssumeRole', ROLE],
      ],
    );
    assert.equal(sts.issued[1]?.callerAccessKeyId, sts.issued[0]?.keys.accessKeyId);
    assert.equal(ecr.issued[0]?.accessKeyId, sts.issued[1]?.keys.accessKeyId);
  });

  it('uses EKS Pod Identity from the default chain', async () => {
    const agentToken = distinctive('eks-pod-identity-token');
    writeFileSync(join(dir, 'eks-pod-identity-token'), agentToken);
    agent.authorizationToken = agentToken;
    env.set({
      AWS_CONTAINER_CREDENTIALS_FULL_URI: agent.credentialsUri,
      AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE: join(dir, 'eks-pod-identity-token'),
    });

    await fetchEcrToken({
      registry: { server: SERVER, ecr: {} },
      endpoints: { ecrEndpoint: ecr.url },
    });

    assert.equal(agent.credentialCalls, 1);
    assert.equal(ecr.issued[0]?.accessKeyId, agent.issued[0]?.accessKeyId);
  });

  it('uses keys from the environment, and the endpoint variables the SDK reads itself', async () => {
    env.set({
      AWS_ACCESS_KEY_ID: staticKeys.accessKeyId,
      AWS_SECRET_ACCESS_KEY: staticKeys.secretAccessKey,
      AWS_ENDPOINT_URL_ECR: ecr.url,
      AWS_ENDPOINT_URL_STS: sts.url,
    });
    await fetchEcrToken({ registry: { server: SERVER, ecr: { roleArn: ROLE } } });
    assert.equal(sts.issued[0]?.callerAccessKeyId, staticKeys.accessKeyId);
    assert.equal(ecr.issued[0]?.accessKeyId, sts.issued[0]?.keys.accessKeyId);
  });

  it('maps AccessDeniedException to RefreshFailed without secret material', async () => {
    const session = keyring.mint(true, distinctive('leaky-session'));
    // An upstream message that (wrongly) quotes the credentials must still come out clean.
    ecr.failWith = {
      code: 'AccessDeniedException',
      message: `User: arn:aws:sts::123456789012:assumed-role/pull/x is not authorized to perform: ecr:GetAuthorizationToken (key ${session.secretAccessKey}, token ${session.sessionToken})`,
    };
    const err = await refreshFailure(fetchEcrToken(withKeys(keysRegistry, session)));
    assert.equal(err.reason, 'RefreshFailed');
    assert.match(
      err.message,
      /^ECR in eu-west-1: arn:aws:sts::123456789012:assumed-role\/pull\/x may not call ecr:GetAuthorizationToken \(AccessDeniedException, HTTP 400\)/,
    );
    assertNoSecrets(
      err.message,
      session.secretAccessKey,
      session.sessionToken,
      session.accessKeyId,
    );
    assert.equal(ecr.tokenCalls, 1);
  });

  it('reports keys AWS does not know', async () => {
    const unknown = {
      accessKeyId: 'AKIAUNKNOWNKEY000000',
      secretAccessKey: distinctive('unknown-secret'),
    };
    const err = await refreshFailure(fetchEcrToken(withKeys(keysRegistry, unknown)));
    assert.equal(err.reason, 'RefreshFailed');
    assert.match(err.message, /UnrecognizedClientException/);
    assertNoSecrets(err.message, unknown.secretAccessKey, unknown.accessKeyId);
  });

  it('reports a role that may not be assumed', async () => {
    const err = await refreshFailure(
      fetchEcrToken(
        withKeys({
          server: SERVER,
          ecr: {
            roleArn: 'arn:aws:iam::123456789012:role/other',
            credentialsSecretRef: { name: 'aws-keys' },
          },
        }),
      ),
    );
    assert.equal(err.reason, 'RefreshFailed');
    assert.match(err.message, /AccessDenied/);
    assert.equal(ecr.tokenCalls, 0);
    assertNoSecrets(err.message, staticKeys.secretAccessKey);
  });

  it('reports a web identity token STS rejects, without the token', async () => {
    const webToken = distinctive('rejected-sa-token');
    writeFileSync(join(dir, 'token'), webToken);
    sts.webIdentityToken = 'something-else';
    env.set({ AWS_ROLE_ARN: IRSA_ROLE, AWS_WEB_IDENTITY_TOKEN_FILE: join(dir, 'token') });
    const err = await refreshFailure(
      fetchEcrToken({
        registry: { server: SERVER, ecr: {} },
        endpoints: { ecrEndpoint: ecr.url, stsEndpoint: sts.url },
      }),
    );
    assert.equal(err.reason, 'RefreshFailed');
    assert.match(err.message, /InvalidIdentityToken/);
    assertNoSecrets(err.message, webToken);
    assert.equal(ecr.tokenCalls, 0);
  });

  it('reports that no credentials were found', async () => {
    const err = await refreshFailure(
      fetchEcrToken({
        registry: { server: SERVER, ecr: {} },
        endpoints: { ecrEndpoint: ecr.url, stsEndpoint: sts.url },
      }),
    );
    assert.equal(err.reason, 'RefreshFailed');
    assert.match(err.message, /^ECR in eu-west-1: no AWS credentials in the default chain/);
    assert.equal(ecr.tokenCalls, 0);
  });

  it('names a missing key of the Secret as SourceInvalid', async () => {
    const input = withKeys(keysRegistry);
    const err = await refreshFailure(
      fetchEcrToken({ ...input, secretData: { AWS_ACCESS_KEY_ID: staticKeys.accessKeyId } }),
    );
    assert.equal(err.reason, 'SourceInvalid');
    assert.equal(err.message, 'Secret regcred-system/aws-keys has no key AWS_SECRET_ACCESS_KEY');
    assert.equal(ecr.tokenCalls, 0);
  });

  it('stops when aborted', async () => {
    const controller = new AbortController();
    controller.abort();
    const err = await refreshFailure(
      fetchEcrToken({ ...withKeys(keysRegistry), signal: controller.signal }),
    );
    assert.equal(err.reason, 'RefreshFailed');
  });
});

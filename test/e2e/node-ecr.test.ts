// An ECR source on the real node: the suite's operator is restarted with its AWS SDK pointed at
// the fake ECR (as test/integration/cloud-tokens.test.ts does); the test registry accepts the
// token the fake issued as the password of `AWS`, and containerd reaches it under the ECR host
// name through a certs.d mirror entry, so the kubelet picks the credential by that name.
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cluster, EXTRA_SOURCE_NAMESPACE, OPERATOR_NAMESPACE } from '../integration/hooks.ts';
import { AwsKeyring, FakeEcr } from '../support/fakes/aws.ts';
import { AWS_CLEAN_ENV } from '../support/fakes/env.ts';
import { testCertificates } from '../support/fakes/test-ca.ts';
import { Fixtures, SOURCE_LABELS } from '../support/fixtures.ts';
import { uniqueName } from '../support/names.ts';
import { type OperatorProcess, startOperator } from '../support/operator.ts';
import type { TestRegistry } from '../support/registry.ts';
import { waitFor } from '../support/wait.ts';
import { e2eNode } from './hooks.ts';
import { createPod, PULL_UNAUTHORIZED, waitPullRefused, waitRunning } from './pods.ts';
import { newPassword, PullTestbed, RUN_REPOSITORY } from './testbed.ts';

const ACCOUNT = '210987654321';
const REGION = 'eu-west-1';
const ECR_HOST = `${ACCOUNT}.dkr.ecr.${REGION}.amazonaws.com`;

describe('an ECR token on a real node', () => {
  let f: Fixtures;
  let testbed: PullTestbed;
  let registry: TestRegistry;
  let ecr: FakeEcr;
  let operator: OperatorProcess | undefined;
  let dir: string;
  const keyring = new AwsKeyring();

  before(async function (this: Mocha.Context) {
    this.timeout(180_000);
    f = new Fixtures(cluster.kc);
    const node = await e2eNode();
    testbed = await PullTestbed.create(f);
    // The fake's first token is not known yet: AWS gets a placeholder until it is issued.
    registry = await testbed.registry({ AWS: newPassword() });
    node.mirrorRegistry(ECR_HOST, registry.host, testbed.caFile);
    ecr = await FakeEcr.start(keyring);
    dir = await mkdtemp(join(tmpdir(), 'regcred-e2e-ecr-'));
    await writeFile(join(dir, 'test-ca.pem'), testCertificates().caCert);
    await cluster.stopOperator();
    operator = await startOperator({
      kubeconfigPath: cluster.operatorKubeconfigPath,
      namespace: OPERATOR_NAMESPACE,
      sourceNamespaces: [EXTRA_SOURCE_NAMESPACE],
      env: {
        ...AWS_CLEAN_ENV,
        AWS_REGION: REGION,
        AWS_ENDPOINT_URL_ECR: ecr.url,
        REGCRED_CLOUD_CA_FILE: join(dir, 'test-ca.pem'),
      },
    });
  });

  after(async function (this: Mocha.Context) {
    this.timeout(180_000);
    await operator?.stop();
    await cluster.startOperator();
    await ecr?.close();
    await testbed?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it("runs a tenant's Pod with the token, and after a refresh the status reports, with the new one", async function () {
    this.timeout(300_000);
    const keys = keyring.mint(false, 'e2e-ecr');
    const source = uniqueName('ecr-keys');
    await f.core.createNamespacedSecret({
      namespace: OPERATOR_NAMESPACE,
      body: {
        metadata: { name: source, labels: { ...SOURCE_LABELS } },
        type: 'Opaque',
        stringData: {
          AWS_ACCESS_KEY_ID: keys.accessKeyId,
          AWS_SECRET_ACCESS_KEY: keys.secretAccessKey,
        },
      },
    });
    const tenant = uniqueName('ecr');
    const name = uniqueName('ecr');
    await f.createCredential(name, {
      namespaceSelector: { matchLabels: { tenant } },
      registries: [{ server: ECR_HOST, ecr: { credentialsSecretRef: { name: source } } }],
    });
    await f.waitCondition(name, 'Ready', 'True', undefined, { timeoutMs: 120_000 });
    const first = ecr.issuedFor(ACCOUNT).at(-1);
    assert.ok(first, 'the fake ECR issued a token');
    // The registry accepts exactly the token ECR issued, as ECR's registry would.
    await registry.setPassword('AWS', first.password);

    const namespace = await f.namespace('ecr-app', { tenant });
    await f.waitPullSecrets(namespace, 'default', (names) => names.includes(name));
    const image = `${ECR_HOST}/${RUN_REPOSITORY}:${testbed.runImage.tag}`;
    const before = await waitRunning(
      f.core,
      namespace,
      await createPod(f.core, namespace, image, { pullPolicy: 'Always' }),
    );

    // A forced refresh: the fake issues a new token and the registry stops taking the old one.
    const requested = new Date().toISOString();
    await cluster.kubectlOk([
      'annotate',
      '--overwrite',
      `registrycredential/${name}`,
      `regcred.dev/refresh-requested-at=${requested}`,
    ]);
    const reported = await waitFor(
      `${name}'s status to report the refresh`,
      () => f.getCredential(name),
      (cred) =>
        (cred.status as { lastRefreshRequest?: string } | undefined)?.lastRefreshRequest ===
          requested &&
        cred.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') === true,
    );
    const second = ecr.issuedFor(ACCOUNT).at(-1);
    assert.ok(second && second.password !== first.password, 'a new token was issued');
    assert.equal(reported.status?.registries?.[0]?.source, 'ecr');
    await registry.setPassword('AWS', second.password);
    await f.waitDockerConfig(
      namespace,
      name,
      (config) => config.auths[ECR_HOST]?.password === second.password,
    );

    const after = await waitRunning(
      f.core,
      namespace,
      await createPod(f.core, namespace, image, { pullPolicy: 'Always' }),
    );
    assert.equal(after.status?.phase, 'Running');
    const still = await f.core.readNamespacedPod({ namespace, name: before.metadata?.name ?? '' });
    assert.equal(still.status?.phase, 'Running');

    // A namespace the credential does not select gets the registry's refusal.
    const outsider = await f.namespace('ecr-outsider');
    await waitFor(
      `${outsider}'s default ServiceAccount`,
      () => f.serviceAccount(outsider),
      (sa) => sa !== undefined,
    );
    const refused = await waitPullRefused(
      f.core,
      outsider,
      await createPod(f.core, outsider, image, { pullPolicy: 'Always' }),
    );
    assert.match(refused.error, PULL_UNAUTHORIZED, refused.error);
    await f.deleteCredential(name);
  });
});

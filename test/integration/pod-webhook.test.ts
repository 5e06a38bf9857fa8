// The Pod webhook called by the real kube-apiserver (issue #18): the shipped configuration
// pointed at the operator on loopback, the operator's own CA published as the caBundle, Pods
// patched as they are created, certificates rotated (serving and CA) while Pods are being
// created without one refused, and the latency the API server measures.
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { mkdtemp, rename, rm, symlink, writeFile } from 'node:fs/promises';
import { availableParallelism, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect } from 'node:tls';
import type { V1Pod } from '@kubernetes/client-node';
import { AdmissionregistrationV1Api } from '@kubernetes/client-node';
import { createCertificateAuthority, issueServingCertificate } from '../../src/webhook/x509.ts';
import { Fixtures } from '../support/fixtures.ts';
import { uniqueName } from '../support/names.ts';
import { type OperatorProcess, startOperator } from '../support/operator.ts';
import {
  bucketDelta,
  podWebhookArgs,
  quantile,
  WEBHOOK_CONFIG_DIR,
  webhookConfigurationYaml,
  webhookDurations,
} from '../support/pod-webhook.ts';
import { waitFor, waitUntil } from '../support/wait.ts';
import { cluster, EXTRA_SOURCE_NAMESPACE, OPERATOR_NAMESPACE } from './hooks.ts';

/** The operator's own histogram of answered reviews, cumulative buckets by upper bound. */
async function operatorDurations(op: OperatorProcess): Promise<Map<number, number>> {
  const buckets = new Map<number, number>();
  for (const sample of await op.samples()) {
    if (sample.name !== 'regcred_pod_webhook_duration_seconds_bucket') continue;
    const le = sample.labels.le === '+Inf' ? Number.POSITIVE_INFINITY : Number(sample.labels.le);
    buckets.set(le, sample.value);
  }
  return buckets;
}

function pod(extra: Partial<NonNullable<V1Pod['spec']>> = {}): V1Pod {
  return {
    metadata: { generateName: 'app-' },
    spec: { containers: [{ name: 'app', image: 'registry.example.com/app:1' }], ...extra },
  };
}

/** The certificate the webhook presents to a new connection right now. */
function servedCertificate(port: number): Promise<X509Certificate> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port, rejectUnauthorized: false }, () => {
      const raw = socket.getPeerCertificate().raw;
      socket.end();
      resolve(new X509Certificate(raw));
    });
    socket.on('error', reject);
  });
}

describe('the Pod webhook, called by the real API server', () => {
  let f: Fixtures;
  let admission: AdmissionregistrationV1Api;
  // The shipped name: config/webhook's RBAC lets the operator patch only that configuration.
  const configuration = 'regcred-operator-pod-webhook';
  const testLabel = { 'regcred.dev/webhook-test': uniqueName('run') };
  let operator: OperatorProcess;
  let port = 0;
  let credential = '';
  const tenant = uniqueName('tenant');

  before(async function () {
    this.timeout(120_000);
    f = new Fixtures(cluster.kc);
    admission = cluster.kc.makeApiClient(AdmissionregistrationV1Api);
    // One operator at a time: this file runs its own, serving the webhook, with certificates
    // that live seconds (renewed at two thirds) so rotations happen while the tests run.
    await cluster.stopOperator();
    await cluster.kubectlOk(['apply', '-f', join(WEBHOOK_CONFIG_DIR, 'rbac.yaml')]);
    const webhook = await podWebhookArgs(configuration, [
      '--pod-webhook-cert-lifetime=12s',
      '--pod-webhook-ca-lifetime=30s',
    ]);
    port = webhook.port;
    operator = await startOperator({
      kubeconfigPath: cluster.operatorKubeconfigPath,
      namespace: OPERATOR_NAMESPACE,
      sourceNamespaces: [EXTRA_SOURCE_NAMESPACE],
      args: webhook.args,
      logLevel: 'info',
    });
    // Fail, not the shipped Ignore: any call that fails (TLS included) refuses the Pod.
    await cluster.kubectlOk(['apply', '-f', '-'], {
      input: webhookConfigurationYaml({
        name: configuration,
        port,
        matchLabels: testLabel,
        failurePolicy: 'Fail',
      }),
    });
    credential = uniqueName('hook');
    const source = uniqueName('hook-src');
    await f.basicSecret(OPERATOR_NAMESPACE, source, 'robot', 'integration-webhook-password');
    await f.createCredential(credential, {
      namespaceSelector: { matchLabels: { tenant } },
      registries: [{ server: 'registry.example.com', basic: { secretRef: { name: source } } }],
    });
    await f.waitCondition(credential, 'Ready', 'True');
    // Each test starts once the API server calls the webhook over a trusted connection, so any
    // one of them can run alone: a dry-run Pod comes back with the credential's entry only when
    // the API server has loaded the configuration and the operator's caBundle (before that the
    // webhook is either not called or refused, failurePolicy Fail).
    const probe = await namespace({ tenant });
    await waitUntil('the API server to call the webhook over a trusted connection', () =>
      f.core.createNamespacedPod({ namespace: probe, body: pod(), dryRun: 'All' }).then(
        (created) => (created.spec?.imagePullSecrets ?? []).some((s) => s.name === credential),
        () => false,
      ),
    );
  });

  after(async function () {
    this.timeout(120_000);
    await admission
      .deleteMutatingWebhookConfiguration({ name: configuration })
      .catch(() => undefined);
    await operator?.stop();
    if (credential) await f.deleteCredential(credential).catch(() => undefined);
    await f.core
      .deleteNamespacedSecret({ namespace: OPERATOR_NAMESPACE, name: `${configuration}-tls` })
      .catch(() => undefined);
    await cluster.startOperator();
  });

  async function namespace(labels: Record<string, string>): Promise<string> {
    const name = await f.namespace('hook', { ...testLabel, ...labels });
    await waitUntil(
      `ServiceAccount default in ${name}`,
      async () => (await f.serviceAccount(name)) !== undefined,
    );
    return name;
  }

  async function createPod(ns: string, spec: Partial<NonNullable<V1Pod['spec']>> = {}) {
    return f.core.createNamespacedPod({ namespace: ns, body: pod(spec) });
  }

  it("publishes its own CA as the configuration's caBundle, and serves a certificate it signed", async () => {
    const config = await waitFor(
      'the operator to fill the caBundle',
      () => admission.readMutatingWebhookConfiguration({ name: configuration }),
      (found) => (found.webhooks?.[0]?.clientConfig.caBundle ?? '') !== '',
    );
    const bundle = Buffer.from(config.webhooks?.[0]?.clientConfig.caBundle ?? '', 'base64')
      .toString('utf8')
      .match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g);
    assert.ok(bundle && bundle.length >= 1);
    const served = await servedCertificate(port);
    assert.ok(
      bundle.some((pem) => served.checkIssued(new X509Certificate(pem))),
      'the served certificate is signed by a CA of the bundle',
    );
    assert.equal(served.checkIP('127.0.0.1'), '127.0.0.1');
    assert.ok(served.checkHost(`regcred-operator-webhook.${OPERATOR_NAMESPACE}.svc`));
  });

  it("adds the credential's Secret after the Pod's own entries, only where the credential applies", async () => {
    const targeted = await namespace({ tenant });
    const other = await namespace({ tenant: 'someone-else' });
    const withOwn = await createPod(targeted, {
      imagePullSecrets: [{ name: 'mine' }, { name: 'also-mine' }],
    });
    assert.deepEqual(
      withOwn.spec?.imagePullSecrets?.map((s) => s.name),
      ['mine', 'also-mine', credential],
    );
    const bare = await createPod(targeted);
    assert.deepEqual(
      bare.spec?.imagePullSecrets?.map((s) => s.name),
      [credential],
    );
    const untargeted = await createPod(other);
    assert.deepEqual(untargeted.spec?.imagePullSecrets ?? [], []);
    // spec.serviceAccounts defaults to [default]: a Pod running as another is left alone.
    await f.core.createNamespacedServiceAccount({
      namespace: targeted,
      body: { metadata: { name: 'builder' } },
    });
    const builder = await createPod(targeted, { serviceAccountName: 'builder' });
    assert.deepEqual(builder.spec?.imagePullSecrets ?? [], []);
    // A dry run is answered the same way (sideEffects: None).
    const dry = await f.core.createNamespacedPod({
      namespace: targeted,
      body: pod(),
      dryRun: 'All',
    });
    assert.deepEqual(
      dry.spec?.imagePullSecrets?.map((s) => s.name),
      [credential],
    );
  });

  it('a Pod in a namespace created a moment before it still gets the entry', async () => {
    // The Secret and ServiceAccount entry come later; the webhook only needs the namespace,
    // which it waits for when its cache has not seen it yet.
    let patched = 0;
    for (let i = 0; i < 10; i++) {
      const ns = await namespace({ tenant });
      const created = await createPod(ns);
      if (created.spec?.imagePullSecrets?.some((s) => s.name === credential)) patched += 1;
    }
    assert.equal(patched, 10);
  });

  it('rotates its serving certificate and its CA while Pods are being created, and refuses none', async function () {
    this.timeout(180_000);
    const ns = await namespace({ tenant });
    const servedSerials = new Set<string>();
    const bundles = new Set<string>();
    const before = await webhookDurations(cluster.controlPlane);
    let created = 0;
    const failures: string[] = [];
    const started = Date.now();
    // Until two CAs and three serving certificates have been seen (a 30 s CA renewed at 20 s,
    // a 12 s certificate at 8 s), creating Pods without a pause.
    while (!(bundles.size >= 2 && servedSerials.size >= 3)) {
      assert.ok(
        Date.now() - started < 150_000,
        `rotations not seen in time: ${servedSerials.size} certificates, ${bundles.size} bundles`,
      );
      try {
        const created_ = await createPod(ns);
        assert.deepEqual(
          created_.spec?.imagePullSecrets?.map((s) => s.name),
          [credential],
        );
        created += 1;
      } catch (error) {
        failures.push(error instanceof Error ? error.message.slice(0, 300) : String(error));
      }
      servedSerials.add((await servedCertificate(port)).serialNumber);
      const config = await admission.readMutatingWebhookConfiguration({ name: configuration });
      bundles.add(config.webhooks?.[0]?.clientConfig.caBundle ?? '');
    }
    assert.deepEqual(
      failures,
      [],
      `${failures.length} of ${created + failures.length} Pods refused`,
    );
    const calls = bucketDelta(await webhookDurations(cluster.controlPlane), before);
    process.stdout.write(
      `      ${created} Pods created across ${servedSerials.size} serving certificates and ` +
        `${bundles.size} caBundles; API server's webhook latency p50 ${(quantile(calls, 0.5) * 1000).toFixed(2)} ms, ` +
        `p99 ${(quantile(calls, 0.99) * 1000).toFixed(2)} ms (${calls.get(Number.POSITIVE_INFINITY)} calls)\n`,
    );
  });

  it('reports PullIsolation=False once Pods using its registries arrive with IfNotPresent, Ready untouched', async () => {
    // Every Pod above named registry.example.com/app:1, which the API server defaults to
    // IfNotPresent, and the credential does not ask for Always.
    const cred = await f.waitCondition(credential, 'PullIsolation', 'False', 'IfNotPresentSeen', {
      timeoutMs: 30_000,
    });
    assert.equal(cred.status?.conditions?.find((c) => c.type === 'Ready')?.status, 'True');
    assert.ok(
      ((await operator.metric('regcred_pod_private_image_pull_policy_total', {
        registrycredential: credential,
        policy: 'IfNotPresent',
      })) ?? 0) > 0,
    );
  });

  it('sets Always on an ephemeral container (kubectl debug) of a credential asking for it, and on no other', async function () {
    this.timeout(60_000);
    // Always in every namespace the webhook sees, targeted or not (the tenants without it).
    const isolated = uniqueName('isolated');
    const source = uniqueName('isolated-src');
    await f.basicSecret(OPERATOR_NAMESPACE, source, 'robot', 'integration-isolated-password');
    await f.createCredential(isolated, {
      namespaceSelector: { matchLabels: { tenant: uniqueName('nobody') } },
      registries: [{ server: 'isolated.example.com', basic: { secretRef: { name: source } } }],
      imagePullPolicy: 'Always',
    });
    try {
      await f.waitCondition(isolated, 'PullIsolation', 'True', 'PullPolicyAlways', {
        timeoutMs: 30_000,
      });
      const ns = await namespace({});
      const created = await createPod(ns);
      const name = created.metadata?.name ?? '';
      // What kubectl debug does: the ephemeralcontainers subresource (no node needed).
      const addEphemeral = async (containers: Array<{ name: string; image: string }>) => {
        const current = await f.core.readNamespacedPod({ namespace: ns, name });
        current.spec = {
          ...(current.spec ?? { containers: [] }),
          ephemeralContainers: [
            ...(current.spec?.ephemeralContainers ?? []),
            ...containers.map((c) => ({ ...c, imagePullPolicy: 'IfNotPresent' })),
          ],
        };
        return f.core.replaceNamespacedPodEphemeralcontainers({
          namespace: ns,
          name,
          body: current,
        });
      };
      await addEphemeral([
        { name: 'debug-private', image: 'isolated.example.com/tools:1' },
        { name: 'debug-public', image: 'public.example.com/busybox:1' },
      ]);
      const policies = async () =>
        Object.fromEntries(
          (
            (await f.core.readNamespacedPod({ namespace: ns, name })).spec?.ephemeralContainers ??
            []
          ).map((c) => [c.name, c.imagePullPolicy]),
        );
      assert.deepEqual(await policies(), {
        'debug-private': 'Always',
        'debug-public': 'IfNotPresent',
      });
      // A later kubectl debug: the new container is set, the earlier ones left as they are
      // (the API server refuses any change to an ephemeral container already there).
      await addEphemeral([{ name: 'debug-private-2', image: 'isolated.example.com/tools:2' }]);
      assert.deepEqual(await policies(), {
        'debug-private': 'Always',
        'debug-public': 'IfNotPresent',
        'debug-private-2': 'Always',
      });
    } finally {
      await f.deleteCredential(isolated).catch(() => undefined);
    }
  });

  it('answers 200 Pods with a median under 5 ms at the API server, and prints its p99', async function () {
    this.timeout(120_000);
    const ns = await namespace({ tenant });
    const before = await webhookDurations(cluster.controlPlane);
    const ownBefore = await operatorDurations(operator);
    for (let i = 0; i < 200; i++) await createPod(ns);
    const calls = bucketDelta(await webhookDurations(cluster.controlPlane), before);
    const own = bucketDelta(await operatorDurations(operator), ownBefore);
    const total = calls.get(Number.POSITIVE_INFINITY) ?? 0;
    const ms = (seconds: number) => `${(seconds * 1000).toFixed(2)} ms`;
    process.stdout.write(
      `      webhook latency over ${total} Pods (load average ${loadavg()[0]?.toFixed(1)} on ${availableParallelism()} cores): ` +
        `at the API server p50 ${ms(quantile(calls, 0.5))}, p99 ${ms(quantile(calls, 0.99))}, ` +
        `${calls.get(0.005)} within 5 ms; in the operator p50 ${ms(quantile(own, 0.5))}, p99 ${ms(quantile(own, 0.99))}\n`,
    );
    assert.equal(total, 200);
    // The API server's buckets are 5 ms, 25 ms, ...; on this shared 2-core machine (load
    // average 6 to 20 while other suites run) its p99 is whichever process waits for a core
    // (measured 21 to 50 ms), so only the medians are asserted; the p99 is printed.
    assert.ok((calls.get(0.005) ?? 0) >= total / 2, 'median within 5 ms at the API server');
    assert.ok(quantile(own, 0.5) < 0.005, `operator p50 ${ms(quantile(own, 0.5))}`);
  });
});

describe('the Pod webhook serving certificates from files (the cert-manager overlay)', () => {
  let f: Fixtures;
  let operator: OperatorProcess;
  let dir = '';
  let port = 0;
  let credential = '';
  const tenant = uniqueName('files');
  const configuration = 'regcred-operator-pod-webhook';
  const testLabel = { 'regcred.dev/webhook-test': uniqueName('files') };
  /** The Secret the operator would keep its own CA in, were it not serving files. */
  const certSecret = uniqueName('files-tls');
  const ca = createCertificateAuthority('cert-manager stand-in', {
    notBefore: new Date(Date.now() - 60_000),
    notAfter: new Date(Date.now() + 3_600_000),
  });

  /** Writes a new pair as the kubelet updates a mounted Secret: all at once (a rename). */
  async function writePair(): Promise<string> {
    const pair = issueServingCertificate(ca, ['127.0.0.1'], {
      notBefore: new Date(Date.now() - 60_000),
      notAfter: new Date(Date.now() + 3_600_000),
    });
    const next = await mkdtemp(join(dir, 'pair-'));
    await writeFile(join(next, 'tls.crt'), pair.cert);
    await writeFile(join(next, 'tls.key'), pair.key);
    await rm(join(dir, 'current.tmp'), { force: true });
    await symlink(next, join(dir, 'current.tmp'));
    await rename(join(dir, 'current.tmp'), join(dir, 'current'));
    return new X509Certificate(pair.cert).serialNumber;
  }

  before(async function () {
    this.timeout(120_000);
    f = new Fixtures(cluster.kc);
    await cluster.stopOperator();
    await cluster.kubectlOk(['apply', '-f', join(WEBHOOK_CONFIG_DIR, 'rbac.yaml')]);
    dir = await mkdtemp(join(tmpdir(), 'regcred-webhook-certs-'));
    await writePair();
    const webhook = await podWebhookArgs(configuration, [
      `--pod-webhook-cert-dir=${join(dir, 'current')}`,
      '--pod-webhook-configuration=',
      `--pod-webhook-cert-secret=${certSecret}`,
    ]);
    port = webhook.port;
    operator = await startOperator({
      kubeconfigPath: cluster.operatorKubeconfigPath,
      namespace: OPERATOR_NAMESPACE,
      sourceNamespaces: [EXTRA_SOURCE_NAMESPACE],
      args: webhook.args,
      logLevel: 'info',
    });
    await cluster.kubectlOk(['apply', '-f', '-'], {
      input: webhookConfigurationYaml({
        name: configuration,
        port,
        matchLabels: testLabel,
        failurePolicy: 'Fail',
        caBundle: ca.cert,
      }),
    });
    credential = uniqueName('files');
    const source = uniqueName('files-src');
    await f.basicSecret(OPERATOR_NAMESPACE, source, 'robot', 'integration-files-password');
    await f.createCredential(credential, {
      namespaceSelector: { matchLabels: { tenant } },
      registries: [{ server: 'registry.example.com', basic: { secretRef: { name: source } } }],
    });
    await f.waitCondition(credential, 'Ready', 'True');
  });

  after(async function () {
    this.timeout(120_000);
    await cluster.kc
      .makeApiClient(AdmissionregistrationV1Api)
      .deleteMutatingWebhookConfiguration({ name: configuration })
      .catch(() => undefined);
    await operator?.stop();
    if (credential) await f.deleteCredential(credential).catch(() => undefined);
    if (dir) await rm(dir, { recursive: true, force: true });
    await cluster.startOperator();
  });

  it('serves the mounted pair, picks up a new one without a restart, and makes no CA, Secret or caBundle of its own', async function () {
    this.timeout(120_000);
    const ns = await f.namespace('files', { ...testLabel, tenant });
    await waitUntil(
      `ServiceAccount default in ${ns}`,
      async () => (await f.serviceAccount(ns)) !== undefined,
    );
    const create = () =>
      f.core.createNamespacedPod({
        namespace: ns,
        body: {
          metadata: { generateName: 'app-' },
          spec: { containers: [{ name: 'app', image: 'registry.example.com/app:1' }] },
        },
      });
    assert.deepEqual(
      (await create()).spec?.imagePullSecrets?.map((s) => s.name),
      [credential],
    );
    const pid = operator.pid;
    const serial = await writePair();
    await waitUntil(
      'the new pair to be served',
      async () => (await servedCertificate(port)).serialNumber === serial,
      {
        timeoutMs: 60_000,
        intervalMs: 250,
      },
    );
    assert.equal(operator.pid, pid);
    assert.deepEqual(
      (await create()).spec?.imagePullSecrets?.map((s) => s.name),
      [credential],
    );
    assert.equal(await f.secret(OPERATOR_NAMESPACE, certSecret), undefined);
    const config = await cluster.kc
      .makeApiClient(AdmissionregistrationV1Api)
      .readMutatingWebhookConfiguration({ name: configuration });
    assert.equal(
      Buffer.from(config.webhooks?.[0]?.clientConfig.caBundle ?? '', 'base64').toString(),
      ca.cert,
    );
  });
});

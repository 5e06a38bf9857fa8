// `kubectl regcred explain` against the real control plane: what a platform team or a tenant
// sees when they ask "which credential does this Pod pull with, and if none, why?". The command
// runs as its own process with a kubeconfig, as a user runs it (from src/, and once from the
// bundle in dist/).
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { chmodSync, copyFileSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { PatchStrategy, setHeaderOptions } from '@kubernetes/client-node';
import {
  CREDENTIAL_LABEL,
  GROUP,
  PLURAL,
  type RegistryCredentialSpec,
  VERSION,
} from '../../src/api/types.ts';
import type { Explanation } from '../../src/explain/explain.ts';
import { Fixtures } from '../support/fixtures.ts';
import { uniqueName } from '../support/names.ts';
import { buildDist, metricSum } from '../support/operator.ts';
import { waitFor } from '../support/wait.ts';
import { cluster, OPERATOR_NAMESPACE } from './hooks.ts';

const repoRoot = resolve(import.meta.dirname, '..', '..');
const SERVER = 'registry.example.com:5000';
const USERNAME = 'explain-robot';
const PASSWORD = 'explain-s3cret-pw';

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs the plugin: from src/, from dist/, or as `kubectl regcred` with a copy of dist's on PATH. */
function kubectlRegcred(
  args: string[],
  { kubeconfig = cluster.kubeconfigPath, from = 'src' as 'src' | 'dist' | 'kubectl' } = {},
): Promise<Run> {
  let command = process.execPath;
  let argv = [join(repoRoot, 'src', 'cli', 'kubectl-regcred.ts'), ...args];
  let path = process.env.PATH ?? '';
  if (from === 'dist') argv = [join(repoRoot, 'dist', 'kubectl-regcred.js'), ...args];
  if (from === 'kubectl') {
    const bin = mkdtempSync(join(tmpdir(), 'regcred-plugin-'));
    copyFileSync(join(repoRoot, 'dist', 'kubectl-regcred.js'), join(bin, 'kubectl-regcred'));
    chmodSync(join(bin, 'kubectl-regcred'), 0o755);
    command = join(cluster.controlPlane.binDir, 'kubectl');
    argv = ['regcred', ...args];
    // The plugin's `#!/usr/bin/env node` finds the Node running this suite.
    path = `${bin}:${dirname(process.execPath)}:${path}`;
  }
  return new Promise((resolveRun, reject) => {
    const child = spawn(command, argv, {
      env: { ...process.env, KUBECONFIG: kubeconfig, PATH: path },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => {
      stdout += c.toString();
    });
    child.stderr.on('data', (c: Buffer) => {
      stderr += c.toString();
    });
    child.on('error', reject);
    child.on('exit', (code) => resolveRun({ code, stdout, stderr }));
  });
}

async function explainJson(args: string[], kubeconfig?: string): Promise<Explanation> {
  const run = await kubectlRegcred([...args, '-o', 'json'], kubeconfig ? { kubeconfig } : {});
  assert.equal(run.code, 0, `kubectl regcred ${args.join(' ')} failed: ${run.stderr}`);
  return JSON.parse(run.stdout) as Explanation;
}

function codes(e: Explanation): string[] {
  return e.reasons.map((r) => r.code);
}

function assertNoCredential(text: string): void {
  const auth = Buffer.from(`${USERNAME}:${PASSWORD}`).toString('base64');
  for (const secret of [PASSWORD, auth])
    assert.ok(!text.includes(secret), `output shows a credential:\n${text}`);
}

describe('kubectl regcred explain', function () {
  this.timeout(180_000);
  let f: Fixtures;
  const tenantLabel = uniqueName('team');
  let credential = '';
  const namespaces: string[] = [];

  before(async () => {
    f = new Fixtures(cluster.kc);
    const source = uniqueName('explain-src');
    await f.basicSecret(OPERATOR_NAMESPACE, source, USERNAME, PASSWORD);
    credential = uniqueName('explain');
    const spec: RegistryCredentialSpec = {
      namespaceSelector: { matchLabels: { tenant: tenantLabel } },
      registries: [{ server: SERVER, basic: { secretRef: { name: source } } }],
    };
    await f.createCredential(credential, spec);
  });

  after(async () => {
    await f.deleteCredential(credential).catch(() => undefined);
    for (const ns of namespaces) await f.core.deleteNamespace({ name: ns }).catch(() => undefined);
  });

  async function tenantNamespace(annotations: Record<string, string> = {}): Promise<string> {
    const ns = await f.namespace('explain', { tenant: tenantLabel }, annotations);
    namespaces.push(ns);
    return ns;
  }

  async function createPod(namespace: string, name: string, image: string): Promise<void> {
    await f.core.createNamespacedPod({
      namespace,
      body: { metadata: { name }, spec: { containers: [{ name: 'app', image }] } },
    });
  }

  it('lists the candidates in the kubelet’s order, with Secret, key, username, RegistryCredential; never a password', async () => {
    const ns = await tenantNamespace();
    await f.waitPullSecrets(ns, 'default', (names) => names.includes(credential));
    // The team's own Secret for a path under the same registry: the kubelet tries it first.
    await f.core.createNamespacedSecret({
      namespace: ns,
      body: {
        metadata: { name: 'team-pull' },
        type: 'kubernetes.io/dockerconfigjson',
        stringData: {
          '.dockerconfigjson': JSON.stringify({
            auths: { [`${SERVER}/team`]: { username: 'team-bot', password: 'x' } },
          }),
        },
      },
    });
    await f.core.patchNamespacedServiceAccount({
      namespace: ns,
      name: 'default',
      body: [{ op: 'add', path: '/imagePullSecrets/-', value: { name: 'team-pull' } }],
    });
    await createPod(ns, 'web', `${SERVER}/team/app:1.0`);

    const e = await explainJson(['explain', `${SERVER}/team/app:1.0`, '-n', ns, '--pod', 'web']);
    assert.deepEqual(
      e.candidates.map((c) => [c.rank, c.secret, c.server, c.username, c.registryCredential]),
      [
        [1, 'team-pull', `${SERVER}/team`, 'team-bot', undefined],
        [2, credential, SERVER, USERNAME, credential],
      ],
    );
    assert.deepEqual(e.reasons, []);
    assert.equal(e.reference?.repository, `${SERVER}/team/app`);

    const text = await kubectlRegcred([
      'explain',
      `${SERVER}/team/app:1.0`,
      '-n',
      ns,
      '--pod',
      'web',
    ]);
    assert.equal(text.code, 0, text.stderr);
    assert.match(
      text.stdout,
      /1\. Secret team-pull, key "registry.example.com:5000\/team", username "team-bot"/,
    );
    assert.match(
      text.stdout,
      new RegExp(`2\\. Secret ${credential}, key "${SERVER}", username "${USERNAME}"`),
    );
    assert.match(text.stdout, new RegExp(`written by RegistryCredential ${credential}`));
    assert.match(text.stdout, /The runtime tries candidate 1 first/);
    assertNoCredential(text.stdout + text.stderr);
    assertNoCredential(JSON.stringify(e));
  });

  it('says the Pod predates its ServiceAccount’s entry, and to recreate it', async () => {
    const ns = await f.namespace('explain-late', {});
    namespaces.push(ns);
    await waitFor(
      'the default ServiceAccount',
      () => f.serviceAccount(ns),
      (sa) => sa !== undefined,
    );
    await createPod(ns, 'early', `${SERVER}/app:1.0`);
    // Only now is the namespace targeted: the operator adds the entry to the ServiceAccount.
    await f.labelNamespace(ns, { tenant: tenantLabel });
    await f.waitPullSecrets(ns, 'default', (names) => names.includes(credential));

    const e = await explainJson(['explain', `${SERVER}/app:1.0`, '-n', ns, '--pod', 'early']);
    assert.deepEqual(e.candidates, []);
    assert.equal(codes(e)[0], 'PodPredatesServiceAccountEntry');
    assert.match(
      e.reasons[0]?.message ?? '',
      new RegExp(`lists ${credential} but Pod early does not.*Recreate the Pod`),
    );

    // A Pod created now gets the entry, and explain finds the credential.
    await createPod(ns, 'late', `${SERVER}/app:1.0`);
    const late = await explainJson(['explain', `${SERVER}/app:1.0`, '-n', ns, '--pod', 'late']);
    assert.deepEqual(
      late.candidates.map((c) => c.secret),
      [credential],
    );
  });

  it('names a listed Secret that does not exist', async () => {
    const ns = await tenantNamespace();
    await f.waitPullSecrets(ns, 'default', (names) => names.includes(credential));
    await f.core.createNamespacedServiceAccount({
      namespace: ns,
      body: { metadata: { name: 'builder' }, imagePullSecrets: [{ name: 'gone-pull' }] },
    });
    const e = await explainJson([
      'explain',
      `${SERVER}/app`,
      '-n',
      ns,
      '--service-account',
      'builder',
    ]);
    assert.deepEqual(e.candidates, []);
    assert.equal(codes(e)[0], 'SecretMissing');
    assert.match(
      e.reasons[0]?.message ?? '',
      /gone-pull is listed in imagePullSecrets but does not exist/,
    );
  });

  it('says the namespace is ignored, or a system namespace', async () => {
    const ns = await tenantNamespace({ 'regcred.dev/ignore': 'true' });
    await waitFor(
      'the default ServiceAccount',
      () => f.serviceAccount(ns),
      (sa) => sa !== undefined,
    );
    const e = await explainJson(['explain', `${SERVER}/app`, '-n', ns]);
    assert.deepEqual(codes(e).slice(0, 2), [
      'NamespaceIgnored',
      'NoRegistryCredentialTargetsNamespace',
    ]);

    const system = await explainJson(['explain', `${SERVER}/app`, '-n', 'kube-system']);
    assert.ok(codes(system).includes('SystemNamespace'), JSON.stringify(system.reasons));
  });

  it('says the namespace is terminating', async () => {
    const ns = await tenantNamespace();
    await f.waitPullSecrets(ns, 'default', (names) => names.includes(credential));
    // A finalizer on a ConfigMap keeps the namespace Terminating until the test removes it.
    await f.core.createNamespacedConfigMap({
      namespace: ns,
      body: { metadata: { name: 'hold', finalizers: ['example.com/hold'] } },
    });
    await f.core.deleteNamespace({ name: ns });
    try {
      await waitFor(
        'the Secret gone from the terminating namespace',
        () => explainJson(['explain', `${SERVER}/app`, '-n', ns]),
        (e) => e.candidates.length === 0,
      );
      const e = await explainJson(['explain', `${SERVER}/app`, '-n', ns]);
      assert.ok(codes(e).includes('NamespaceTerminating'), JSON.stringify(e.reasons));
    } finally {
      await f.core.patchNamespacedConfigMap({
        namespace: ns,
        name: 'hold',
        body: [{ op: 'remove', path: '/metadata/finalizers' }],
      });
    }
  });

  it('shows the closest RegistryCredential’s selector beside the namespace’s labels', async () => {
    const ns = await f.namespace('explain-other', { tenant: `${tenantLabel}-other` });
    namespaces.push(ns);
    await waitFor(
      'the default ServiceAccount',
      () => f.serviceAccount(ns),
      (sa) => sa !== undefined,
    );
    const e = await explainJson(['explain', `${SERVER}/app`, '-n', ns]);
    const reason = e.reasons.find((r) => r.code === 'NoRegistryCredentialTargetsNamespace');
    assert.ok(reason, JSON.stringify(e.reasons));
    assert.ok(
      reason.message.includes(
        `closest: ${credential}, selector {"matchLabels":{"tenant":"${tenantLabel}"}}`,
      ),
      reason.message,
    );
    assert.ok(reason.message.includes(`"tenant":"${tenantLabel}-other"}`), reason.message);
  });

  it('reports the RegistryCredential’s Conflict in this namespace', async () => {
    const ns = await f.namespace('explain-conflict', {});
    namespaces.push(ns);
    // Someone else's Secret already has the credential's name when the namespace is targeted.
    await f.core.createNamespacedSecret({
      namespace: ns,
      body: { metadata: { name: credential }, type: 'Opaque', stringData: { note: 'not yours' } },
    });
    await f.labelNamespace(ns, { tenant: tenantLabel });
    await waitFor(
      'the Conflict in status',
      () => f.getCredential(credential),
      (rc) =>
        rc.status?.failedNamespaces?.some((n) => n.name === ns && n.reason === 'Conflict') === true,
    );
    const e = await explainJson(['explain', `${SERVER}/app`, '-n', ns]);
    const reason = e.reasons.find((r) => r.code === 'CredentialFailedInNamespace');
    assert.ok(reason, JSON.stringify(e.reasons));
    assert.match(reason.message, new RegExp(`${credential} reports Conflict in ${ns}`));
  });

  it('reports a RegistryCredential that cannot read its source (SourceInvalid)', async () => {
    const source = uniqueName('explain-bad-src');
    // A basic source without a password key.
    await f.core.createNamespacedSecret({
      namespace: OPERATOR_NAMESPACE,
      body: {
        metadata: { name: source, labels: { 'regcred.dev/source': 'true' } },
        type: 'Opaque',
        stringData: { username: 'someone' },
      },
    });
    const name = uniqueName('explain-invalid');
    const ns = await f.namespace('explain-invalid', {});
    namespaces.push(ns);
    await f.createCredential(name, {
      namespaces: [ns],
      registries: [{ server: 'invalid.example.com', basic: { secretRef: { name: source } } }],
    });
    try {
      await f.waitCondition(name, 'Ready', 'False', 'SourceInvalid');
      await waitFor(
        'the default ServiceAccount',
        () => f.serviceAccount(ns),
        (sa) => sa !== undefined,
      );
      const e = await explainJson(['explain', 'invalid.example.com/app:1', '-n', ns]);
      const reason = e.reasons.find((r) => r.code === 'CredentialNotReady');
      assert.ok(reason, JSON.stringify(e.reasons));
      assert.match(
        reason.message,
        new RegExp(`${name} is not Ready \\(SourceInvalid\\): .*has no key password`),
      );
    } finally {
      await f.deleteCredential(name);
    }
  });

  it('exports failed namespaces and the last sync per RegistryCredential, until it is deleted', async () => {
    const source = uniqueName('explain-metrics-src');
    await f.basicSecret(OPERATOR_NAMESPACE, source, USERNAME, PASSWORD);
    const name = uniqueName('explain-metrics');
    const ns = await f.namespace('explain-metrics', {});
    namespaces.push(ns);
    await f.core.createNamespacedSecret({
      namespace: ns,
      body: { metadata: { name }, type: 'Opaque', stringData: { note: 'not yours' } },
    });
    const before = Date.now() / 1000;
    await f.createCredential(name, {
      namespaces: [ns],
      registries: [{ server: SERVER, basic: { secretRef: { name: source } } }],
    });
    const labels = { registrycredential: name };
    const samples = await waitFor(
      'regcred_failed_namespaces of the credential at 1',
      () => cluster.operator.samples(),
      (s) => metricSum(s, 'regcred_failed_namespaces', labels) === 1,
    );
    const lastSync = metricSum(samples, 'regcred_last_sync_timestamp_seconds', labels) ?? 0;
    assert.ok(lastSync >= before - 1 && lastSync <= Date.now() / 1000 + 1, `last sync ${lastSync}`);
    // The conflict resolved: the count drops to 0 and the timestamp moves on.
    await f.core.deleteNamespacedSecret({ namespace: ns, name });
    await waitFor(
      'regcred_failed_namespaces at 0 after a later sync',
      () => cluster.operator.samples(),
      (s) =>
        metricSum(s, 'regcred_failed_namespaces', labels) === 0 &&
        (metricSum(s, 'regcred_last_sync_timestamp_seconds', labels) ?? 0) > lastSync,
    );
    await f.deleteCredential(name);
    await f.waitCredentialGone(name);
    await waitFor(
      'both series gone with the credential',
      () => cluster.operator.samples(),
      (s) =>
        metricSum(s, 'regcred_failed_namespaces', labels) === undefined &&
        metricSum(s, 'regcred_last_sync_timestamp_seconds', labels) === undefined,
    );
  });

  it('says a candidate’s token expired, from its RegistryCredential’s status', async () => {
    const ns = await tenantNamespace();
    await f.waitPullSecrets(ns, 'default', (names) => names.includes(credential));
    // A basic credential has no expiry: with the operator stopped, status is made to say the
    // token expired a minute ago, as a cloud credential's does when refreshing keeps failing.
    await cluster.stopOperator();
    try {
      const expiresAt = new Date(Date.now() - 60_000).toISOString().replace(/\.\d+Z$/, 'Z');
      await f.custom.patchClusterCustomObjectStatus(
        {
          group: GROUP,
          version: VERSION,
          plural: PLURAL,
          name: credential,
          body: { status: { registries: [{ server: SERVER, source: 'basic', expiresAt }] } },
        },
        setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
      );
      const e = await explainJson(['explain', `${SERVER}/app`, '-n', ns]);
      assert.deepEqual(
        e.candidates.map((c) => [c.secret, c.expiresAt, c.expired]),
        [[credential, expiresAt, true]],
      );
      assert.deepEqual(codes(e), ['TokenExpired']);
      const text = await kubectlRegcred(['explain', `${SERVER}/app`, '-n', ns]);
      assert.match(text.stdout, new RegExp(`token EXPIRED at ${expiresAt}`));
    } finally {
      await cluster.startOperator();
    }
  });

  it('shows both ports, and both paths, when only the host matches', async () => {
    const ns = await tenantNamespace();
    await f.waitPullSecrets(ns, 'default', (names) => names.includes(credential));
    const e = await explainJson(['explain', 'registry.example.com/app:1.0', '-n', ns]);
    assert.deepEqual(e.candidates, []);
    const reason = e.reasons.find((r) => r.code === 'PortOrPathMismatch');
    assert.ok(reason, JSON.stringify(e.reasons));
    assert.match(reason.message, /port "5000" in the key, \(none\) in the image/);
  });

  it('answers a tenant with what the tenant may read, naming what it may not', async () => {
    const ns = await tenantNamespace();
    await f.waitPullSecrets(ns, 'default', (names) => names.includes(credential));
    // A tenant who may read Pods, ServiceAccounts and Secrets in their namespace, nothing else.
    await cluster.kubectlOk(['create', 'serviceaccount', 'viewer', '-n', ns]);
    await cluster.kubectlOk([
      'create',
      'role',
      'viewer',
      '-n',
      ns,
      '--verb=get',
      '--resource=pods,serviceaccounts,secrets',
    ]);
    await cluster.kubectlOk([
      'create',
      'rolebinding',
      'viewer',
      '-n',
      ns,
      '--role=viewer',
      `--serviceaccount=${ns}:viewer`,
    ]);
    const token = (await cluster.kubectlOk(['create', 'token', 'viewer', '-n', ns])).trim();
    const kubeconfig = cluster.controlPlane.writeKubeconfigFor(
      join(cluster.controlPlane.dir, `${ns}-viewer.kubeconfig`),
      'viewer',
      token,
    );
    const e = await explainJson(['explain', `${SERVER}/app`, '-n', ns], kubeconfig);
    assert.deepEqual(
      e.candidates.map((c) => [c.secret, c.username, c.registryCredential]),
      [[credential, USERNAME, credential]],
    );
    assert.ok(
      e.unreadable.some((u) => u.startsWith('RegistryCredentials (cluster-scoped): forbidden')),
      JSON.stringify(e.unreadable),
    );
    assert.ok(
      e.unreadable.some((u) => u.startsWith(`Namespace ${ns}: forbidden`)),
      JSON.stringify(e.unreadable),
    );
  });

  it('works as `kubectl regcred` from a copy of the bundle on PATH, and refuses bad arguments', async function () {
    this.timeout(300_000);
    buildDist();
    const ns = await tenantNamespace();
    await f.waitPullSecrets(ns, 'default', (names) => names.includes(credential));
    const run = await kubectlRegcred(['explain', `${SERVER}/app`, '-n', ns], { from: 'kubectl' });
    assert.equal(run.code, 0, run.stderr);
    assert.match(run.stdout, new RegExp(`1\\. Secret ${credential}, key "${SERVER}"`));

    const bad = await kubectlRegcred(['explain', 'x', '--pod', 'a', '--service-account', 'b'], {
      from: 'dist',
    });
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /--pod and --service-account are exclusive/);
    const missing = await kubectlRegcred(['explain', 'x', '-n', ns, '--pod', 'nope']);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, new RegExp(`Pod ${ns}/nope not found`));
    const secretLabel = (await f.secret(ns, credential))?.metadata?.labels?.[CREDENTIAL_LABEL];
    assert.equal(secretLabel, credential);
  });
});

// Namespace-major writes (issue #20, scenario 2; ADR 0014): credentials created at once fan
// out together, so each ServiceAccount gets ONE write carrying every credential's entry, not
// one write per credential. Counted from the API server's audit log (what it accepted from
// the operator's identity), not from the operator's own metrics.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import type { RegistryCredentialSpec } from '../../src/api/types.ts';
import { testCertificates } from '../support/fakes/test-ca.ts';
import { Fixtures } from '../support/fixtures.ts';
import { uniqueName } from '../support/names.ts';
import { waitFor } from '../support/wait.ts';
import { cluster, OPERATOR_NAMESPACE } from './hooks.ts';

interface AuditEvent {
  stage: string;
  verb: string;
  user: { username: string };
  objectRef?: { resource?: string; namespace?: string; name?: string };
  responseStatus?: { code?: number };
}

const OPERATOR_USER = `system:serviceaccount:${OPERATOR_NAMESPACE}:regcred-operator`;

/** The operator's successful writes in `namespaces`, from the audit log. */
function operatorWrites(namespaces: ReadonlySet<string>): AuditEvent[] {
  return readFileSync(cluster.auditLogPath, 'utf8')
    .split('\n')
    .filter((line) => line.trim() !== '')
    .map((line) => JSON.parse(line) as AuditEvent)
    .filter(
      (e) =>
        e.stage === 'ResponseComplete' &&
        e.user.username === OPERATOR_USER &&
        (e.responseStatus?.code ?? 0) < 300 &&
        namespaces.has(e.objectRef?.namespace ?? ''),
    );
}

function count(events: AuditEvent[], verb: string, resource: string): Map<string, number> {
  const byNamespace = new Map<string, number>();
  for (const e of events) {
    if (e.verb !== verb || e.objectRef?.resource !== resource) continue;
    const ns = e.objectRef.namespace ?? '';
    byNamespace.set(ns, (byNamespace.get(ns) ?? 0) + 1);
  }
  return byNamespace;
}

/**
 * The spec of a credential writing its Secret `name` into the namespaces labelled `run`, from
 * the basic source Secret `source`.
 */
function labelledSpec(run: string, source: string, extra: Partial<RegistryCredentialSpec> = {}) {
  return (name: string): RegistryCredentialSpec => ({
    secretName: name,
    namespaceSelector: { matchLabels: { [run]: 'y' } },
    registries: [{ server: 'registry.example.com', basic: { secretRef: { name: source } } }],
    ...extra,
  });
}

/**
 * A validating webhook for Secret CREATE in namespaces labelled `gateLabel` that holds the
 * requests creating a Secret named `name` until release(): the API server waits on it, so a
 * fan-out writing that Secret stops there, as it would behind a slow API server.
 */
async function holdingWebhook(gateLabel: string, name: string) {
  const certs = testCertificates();
  const held: Array<() => void> = [];
  let holding = true;
  const server: Server = createServer(
    { cert: certs.serverCert, key: certs.serverKey },
    (req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const review = JSON.parse(Buffer.concat(chunks).toString('utf8')) as {
          request: { uid: string; object?: { metadata?: { name?: string } } };
        };
        const answer = () => {
          res.setHeader('Content-Type', 'application/json');
          res.end(
            JSON.stringify({
              apiVersion: 'admission.k8s.io/v1',
              kind: 'AdmissionReview',
              response: { uid: review.request.uid, allowed: true },
            }),
          );
        };
        if (holding && review.request.object?.metadata?.name === name) held.push(answer);
        else answer();
      });
    },
  );
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  const configuration = `${gateLabel}-hold`;
  const applied = cluster.kubectlOk(['apply', '-f', '-'], {
    input: JSON.stringify({
      apiVersion: 'admissionregistration.k8s.io/v1',
      kind: 'ValidatingWebhookConfiguration',
      metadata: { name: configuration },
      webhooks: [
        {
          name: 'hold.regcred.test',
          admissionReviewVersions: ['v1'],
          sideEffects: 'None',
          failurePolicy: 'Ignore',
          timeoutSeconds: 30,
          namespaceSelector: { matchLabels: { [gateLabel]: 'y' } },
          rules: [
            {
              apiGroups: [''],
              apiVersions: ['v1'],
              operations: ['CREATE'],
              resources: ['secrets'],
            },
          ],
          clientConfig: {
            url: `https://127.0.0.1:${port}/hold`,
            caBundle: Buffer.from(certs.caCert).toString('base64'),
          },
        },
      ],
    }),
  });
  await applied.catch(async (error: unknown) => {
    await new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    });
    throw error;
  });
  return {
    held: () => held.length,
    release: () => {
      holding = false;
      for (const answer of held.splice(0)) answer();
    },
    close: async () => {
      holding = false;
      for (const answer of held.splice(0)) answer();
      await cluster.kubectl(['delete', 'validatingwebhookconfiguration', configuration]);
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
    },
  };
}

describe('namespace-major writes', () => {
  it('credentials created at once write each ServiceAccount once with all their entries; a shared source rotation writes only Secrets', async function (this: Mocha.Context) {
    this.timeout(240_000);
    const f = new Fixtures(cluster.kc);
    const CREDENTIALS = 6;
    const NAMESPACES = 20;
    const run = uniqueName('nsmajor');
    const label = (c: number) => `${run}-c${c}`;
    // Namespace i is selected by credential c when bit c of (i + 1) * 37 mod 64 is set, or
    // when c = i mod 6: overlapping selections, every namespace selected by at least one.
    const selects = (c: number, i: number) =>
      ((((i + 1) * 37) % 64) & (1 << c)) !== 0 || c === i % 6;
    const namespaces: string[] = [];
    const credentials: string[] = [];
    try {
      for (let i = 0; i < NAMESPACES; i += 10) {
        namespaces.push(
          ...(await Promise.all(
            Array.from({ length: Math.min(10, NAMESPACES - i) }, (_, j) => {
              const labels: Record<string, string> = {};
              for (let c = 0; c < CREDENTIALS; c++) if (selects(c, i + j)) labels[label(c)] = 'y';
              return f.namespace('nsmajor', labels);
            }),
          )),
        );
      }
      // Each namespace's `default` ServiceAccount exists before the credentials do (its
      // creation is not what is measured).
      for (const ns of namespaces) {
        await waitFor(`ServiceAccount ${ns}/default`, () => f.serviceAccount(ns), Boolean);
      }
      const shared = uniqueName('src-shared');
      const own = uniqueName('src-own');
      await f.basicSecret(OPERATOR_NAMESPACE, shared, 'robot', 's3cr3t-nsmajor-shared-1');
      await f.basicSecret(OPERATOR_NAMESPACE, own, 'robot', 's3cr3t-nsmajor-own');
      // Credentials 0-2 share a source.
      const sourceOf = (c: number) => (c < 3 ? shared : own);
      for (let c = 0; c < CREDENTIALS; c++) credentials.push(`${run}-rc${c}`);
      await Promise.all(
        credentials.map((name, c) =>
          f.createCredential(name, {
            secretName: name,
            namespaceSelector: { matchLabels: { [label(c)]: 'y' } },
            registries: [
              { server: 'registry.example.com', basic: { secretRef: { name: sourceOf(c) } } },
            ],
          }),
        ),
      );
      const expected = (i: number) =>
        credentials.filter((_, c) => selects(c, i)).sort((a, b) => a.localeCompare(b));
      for (const [i, ns] of namespaces.entries()) {
        const want = expected(i);
        await f.waitPullSecrets(
          ns,
          'default',
          (names) => want.every((n) => names.includes(n)) && names.length === want.length,
          { timeoutMs: 60_000 },
        );
      }
      for (const name of credentials) await f.waitCondition(name, 'Ready', 'True');
      // Any late write (a second pass, a fast path racing the fan-out) has had time to land.
      await new Promise((r) => setTimeout(r, 3_000));

      const ours = new Set(namespaces);
      const writes = operatorWrites(ours);
      const saUpdates = count(writes, 'update', 'serviceaccounts');
      const secretCreates = count(writes, 'create', 'secrets');
      const totalSa = [...saUpdates.values()].reduce((a, b) => a + b, 0);
      const minimal = namespaces.length;
      const entries = namespaces.reduce((sum, _, i) => sum + expected(i).length, 0);
      process.stdout.write(
        `      ${CREDENTIALS} credentials at once over ${NAMESPACES} namespaces (${entries} entries): ${totalSa} ServiceAccount updates (minimal ${minimal}), ${[...secretCreates.values()].reduce((a, b) => a + b, 0)} Secret creates\n`,
      );
      for (const [i, ns] of namespaces.entries()) {
        assert.equal(secretCreates.get(ns) ?? 0, expected(i).length, `Secret creates in ${ns}`);
        assert.equal(saUpdates.get(ns) ?? 0, 1, `ServiceAccount updates in ${ns}`);
      }
      assert.equal(count(writes, 'delete', 'secrets').size, 0, 'no Secret deleted');

      // A rotation of the source shared by credentials 0-2: their Secrets are updated, no
      // ServiceAccount is written.
      const before = writes.length;
      await f.setSecretData(OPERATOR_NAMESPACE, shared, {
        username: 'robot',
        password: 's3cr3t-nsmajor-shared-2',
      });
      const rotated = namespaces.flatMap((ns, i) =>
        credentials.slice(0, 3).flatMap((name, c) => (selects(c, i) ? [{ ns, name }] : [])),
      );
      for (const { ns, name } of rotated) {
        await f.waitDockerConfig(
          ns,
          name,
          (config) => config.auths['registry.example.com']?.password === 's3cr3t-nsmajor-shared-2',
          { timeoutMs: 60_000 },
        );
      }
      await new Promise((r) => setTimeout(r, 3_000));
      const after = operatorWrites(ours).slice(before);
      const updates = count(after, 'update', 'secrets');
      assert.equal(
        [...updates.values()].reduce((a, b) => a + b, 0),
        rotated.length,
        'one Secret update per rotated Secret',
      );
      assert.equal(count(after, 'update', 'serviceaccounts').size, 0, 'no ServiceAccount write');
      assert.equal(after.length, rotated.length, 'nothing but the Secret updates');
    } finally {
      for (const name of credentials) await f.deleteCredential(name).catch(() => {});
      for (const name of credentials) await f.waitCredentialGone(name).catch(() => {});
      await Promise.all(namespaces.map((name) => f.core.deleteNamespace({ name }).catch(() => {})));
    }
  });

  it('a credential created while another fans out joins it where it has not started: one ServiceAccount write there for both', async function (this: Mocha.Context) {
    this.timeout(240_000);
    const f = new Fixtures(cluster.kc);
    const run = uniqueName('late');
    const gate = `${run}-gate`;
    // The suite's operator fans out 16 namespaces at once (--fanout-concurrency): the first
    // credential's fan-out stops on the 16 gated namespaces, which sort first.
    const GATED = 16;
    const OPEN = 12;
    const first = `${run}-first`;
    const late = `${run}-late`;
    const webhook = await holdingWebhook(gate, first);
    const namespaces: string[] = [];
    try {
      namespaces.push(
        ...(await Promise.all([
          ...Array.from({ length: GATED }, () =>
            f.namespace(`${run}-a`, { [run]: 'y', [gate]: 'y' }),
          ),
          ...Array.from({ length: OPEN }, () => f.namespace(`${run}-b`, { [run]: 'y' })),
        ])),
      );
      namespaces.sort();
      const gated = namespaces.slice(0, GATED);
      const open = namespaces.slice(GATED);
      for (const ns of namespaces) {
        await waitFor(`ServiceAccount ${ns}/default`, () => f.serviceAccount(ns), Boolean);
      }
      const source = uniqueName('src-late');
      await f.basicSecret(OPERATOR_NAMESPACE, source, 'robot', 's3cr3t-late-join');
      const spec = labelledSpec(run, source);
      await f.createCredential(first, spec(first));
      await waitFor(
        'the first fan-out held on every gated namespace',
        async () => webhook.held(),
        (n) => n === GATED,
      );
      // The second credential's watch event comes while the first fans out.
      await f.createCredential(late, spec(late));
      // It writes the gated namespaces (passed by the first) on its own.
      for (const ns of gated) {
        await f.waitPullSecrets(ns, 'default', (names) => names.includes(late), {
          timeoutMs: 60_000,
        });
      }
      assert.equal(webhook.held(), GATED, 'the first fan-out still waits');
      webhook.release();
      for (const ns of namespaces) {
        await f.waitPullSecrets(
          ns,
          'default',
          (names) => names.includes(first) && names.includes(late),
          { timeoutMs: 60_000 },
        );
      }
      for (const name of [first, late]) await f.waitCondition(name, 'Ready', 'True');
      // Any late write (a second pass, a fast path racing the fan-out) has had time to land.
      await new Promise((r) => setTimeout(r, 3_000));

      const writes = operatorWrites(new Set(namespaces));
      const saUpdates = count(writes, 'update', 'serviceaccounts');
      const secretCreates = count(writes, 'create', 'secrets');
      process.stdout.write(
        `      late credential over ${namespaces.length} namespaces: ${[...saUpdates.values()].reduce((a, b) => a + b, 0)} ServiceAccount updates (${GATED} x 2 + ${OPEN} x 1 expected)\n`,
      );
      for (const ns of namespaces)
        assert.equal(secretCreates.get(ns), 2, `Secret creates in ${ns}`);
      for (const ns of gated) {
        assert.equal(saUpdates.get(ns), 2, `${ns}: the late credential's write, then the first's`);
      }
      for (const ns of open) {
        assert.equal(saUpdates.get(ns), 1, `${ns}: one write with both entries`);
      }
      const synced = async (name: string) =>
        (await f.getCredential(name))?.status?.syncedNamespaces;
      assert.equal(await synced(late), namespaces.length);
      assert.equal(await synced(first), namespaces.length);
    } finally {
      await webhook.close();
      for (const name of [first, late]) await f.deleteCredential(name).catch(() => {});
      for (const name of [first, late]) await f.waitCredentialGone(name).catch(() => {});
      await Promise.all(namespaces.map((name) => f.core.deleteNamespace({ name }).catch(() => {})));
    }
  });

  it('a new namespace two credentials select gets one ServiceAccount write with both entries, even when one Secret is slow', async function (this: Mocha.Context) {
    this.timeout(120_000);
    const f = new Fixtures(cluster.kc);
    const run = uniqueName('onb2');
    const gate = `${run}-gate`;
    const slow = `${run}-slow`;
    const quick = `${run}-quick`;
    const source = uniqueName('src-onb2');
    await f.basicSecret(OPERATOR_NAMESPACE, source, 'robot', 's3cr3t-onboarding-two');
    const spec = labelledSpec(run, source);
    let ns: string | undefined;
    const webhook = await holdingWebhook(gate, slow);
    try {
      for (const name of [slow, quick]) await f.createCredential(name, spec(name));
      for (const name of [slow, quick]) await f.waitCondition(name, 'Ready', 'True');
      // Onboarding: the namespace comes after the credentials, and one credential's Secret
      // create is slow (held by the API server's webhook call).
      ns = await f.namespace(`${run}-ns`, { [run]: 'y', [gate]: 'y' });
      const namespace = ns;
      await waitFor(
        'the slow Secret create held',
        async () => webhook.held(),
        (n) => n === 1,
      );
      await waitFor(`ServiceAccount ${ns}/default`, () => f.serviceAccount(namespace), Boolean);
      // The window in which a sync of the quick credential on its own wrote the
      // ServiceAccount (before namespace keys carried every credential due there): nothing
      // happens in it now, so there is no event to wait for.
      await new Promise((r) => setTimeout(r, 2_000));
      webhook.release();
      await f.waitPullSecrets(
        ns,
        'default',
        (names) => names.includes(slow) && names.includes(quick),
        {
          timeoutMs: 60_000,
        },
      );
      for (const name of [slow, quick]) await f.waitCondition(name, 'Ready', 'True');
      // Any late write (a second pass, a full reconcile racing the fast path) has had time.
      await new Promise((r) => setTimeout(r, 3_000));

      const writes = operatorWrites(new Set([ns]));
      assert.equal(count(writes, 'create', 'secrets').get(ns), 2, 'one Secret per credential');
      assert.equal(
        count(writes, 'update', 'serviceaccounts').get(ns),
        1,
        'one ServiceAccount write carrying both entries',
      );
      assert.deepEqual(
        ((await f.serviceAccount(ns))?.imagePullSecrets ?? []).map((r) => r.name).sort(),
        [quick, slow].sort(),
      );
    } finally {
      await webhook.close();
      for (const name of [slow, quick]) await f.deleteCredential(name).catch(() => {});
      for (const name of [slow, quick]) await f.waitCredentialGone(name).catch(() => {});
      if (ns) await f.core.deleteNamespace({ name: ns }).catch(() => {});
    }
  });

  it("a ServiceAccount added where another credential's full reconcile is slow gets the quick credential's entry without waiting for it", async function (this: Mocha.Context) {
    this.timeout(120_000);
    // Onboarding under a rotation (issue #20, scenario 3): one credential's full reconcile
    // is writing a namespace through a slow API server when a ServiceAccount appears there.
    // The fast path syncs every credential due in the namespace; the one the full reconcile
    // is writing waits for it, the others must not.
    const f = new Fixtures(cluster.kc);
    const run = uniqueName('nowait');
    const gate = `${run}-gate`;
    const quick = `${run}-quick`;
    const slow = `${run}-slow`;
    const source = uniqueName('src-nowait');
    await f.basicSecret(OPERATOR_NAMESPACE, source, 'robot', 's3cr3t-no-wait');
    const spec = labelledSpec(run, source, { serviceAccounts: ['*'] });
    let ns: string | undefined;
    const webhook = await holdingWebhook(gate, slow);
    try {
      await f.createCredential(quick, spec(quick));
      await f.waitCondition(quick, 'Ready', 'True');
      ns = await f.namespace(`${run}-ns`, { [run]: 'y', [gate]: 'y' });
      await f.waitPullSecrets(ns, 'default', (names) => names.includes(quick));
      // Its status counts the namespace: the full reconcile that the namespace queued has run
      // (one running later would write the entry below itself, as the fast path should).
      await waitFor(
        `${quick} counts the namespace`,
        async () => (await f.getCredential(quick)).status?.syncedNamespaces,
        (n) => n === 1,
      );
      // The second credential's full reconcile fans out and stops on this namespace's Secret.
      await f.createCredential(slow, spec(slow));
      await waitFor(
        "the slow credential's Secret create held",
        async () => webhook.held(),
        (n) => n === 1,
      );
      await f.core.createNamespacedServiceAccount({
        namespace: ns,
        body: { metadata: { name: 'app' } },
      });
      await f.waitPullSecrets(ns, 'app', (names) => names.includes(quick), {
        timeoutMs: 15_000,
      });
      assert.equal(webhook.held(), 1, "the slow credential's Secret is still held");
      assert.ok(
        !(await f.pullSecretNames(ns, 'app')).includes(slow),
        'no entry of the slow credential before its Secret exists',
      );
      webhook.release();
      for (const sa of ['default', 'app']) {
        await f.waitPullSecrets(ns, sa, (names) => names.includes(slow) && names.includes(quick), {
          timeoutMs: 60_000,
        });
      }
      for (const name of [slow, quick]) await f.waitCondition(name, 'Ready', 'True');
      // Any late write (the fast path re-checking what it waited for) has had time to land.
      await new Promise((r) => setTimeout(r, 3_000));
      const updates = new Map<string, number>();
      for (const e of operatorWrites(new Set([ns]))) {
        if (e.verb !== 'update' || e.objectRef?.resource !== 'serviceaccounts') continue;
        const name = e.objectRef.name ?? '';
        updates.set(name, (updates.get(name) ?? 0) + 1);
      }
      assert.deepEqual(
        Object.fromEntries(updates),
        { default: 2, app: 2 },
        "one write per credential's entry on each ServiceAccount, none repeated",
      );
    } finally {
      await webhook.close();
      for (const name of [slow, quick]) await f.deleteCredential(name).catch(() => {});
      for (const name of [slow, quick]) await f.waitCredentialGone(name).catch(() => {});
      if (ns) await f.core.deleteNamespace({ name: ns }).catch(() => {});
    }
  });
});

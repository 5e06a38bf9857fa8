// Namespace-major writes (issue #20, scenario 2; ADR 0014): credentials created at once fan
// out together, so each ServiceAccount gets ONE write carrying every credential's entry, not
// one write per credential. Counted from the API server's audit log (what it accepted from
// the operator's identity), not from the operator's own metrics.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
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
});

// The informer resync, forced instead of waited for: an operator started with a short
// --informer-resync replays every cache to the controller again and again, and at rest that
// re-check writes nothing. The API server's audit log (every Secret and ServiceAccount write, by
// user) and the operator's own write counter are the witnesses; the resync is observed in the
// operator's log, and its reaching the controller in the reconcile counter.
import assert from 'node:assert/strict';
import { readFileSync, statSync } from 'node:fs';
import { GROUP, PLURAL, type RegistryCredential, VERSION } from '../../src/api/types.ts';
import { Fixtures } from '../support/fixtures.ts';
import { uniqueName } from '../support/names.ts';
import { type OperatorProcess, startOperator } from '../support/operator.ts';
import { waitFor, waitUntil } from '../support/wait.ts';
import { cluster, EXTRA_SOURCE_NAMESPACE, OPERATOR_NAMESPACE } from './hooks.ts';

const OPERATOR_USER = `system:serviceaccount:${OPERATOR_NAMESPACE}:regcred-operator`;

interface AuditEvent {
  stage: string;
  verb: string;
  user: { username: string };
  objectRef?: { resource?: string; namespace?: string; name?: string };
}

/** The operator's Secret and ServiceAccount writes the API server logged after byte `from`. */
function operatorWritesSince(from: number): string[] {
  return readFileSync(cluster.auditLogPath)
    .subarray(from)
    .toString('utf8')
    .split('\n')
    .filter((line) => line.trim() !== '')
    .map((line) => JSON.parse(line) as AuditEvent)
    .filter((e) => e.stage === 'ResponseComplete' && e.user.username === OPERATOR_USER)
    .map(
      (e) => `${e.verb} ${e.objectRef?.resource} ${e.objectRef?.namespace}/${e.objectRef?.name}`,
    );
}

/** How many times each informer logged a resync in `lines`. */
function resyncs(lines: readonly string[]): Map<string, number> {
  const count = new Map<string, number>();
  for (const line of lines) {
    if (!line.includes('"resync"')) continue;
    const entry = JSON.parse(line) as { message?: string; informer?: string };
    if (entry.message === 'resync' && entry.informer)
      count.set(entry.informer, (count.get(entry.informer) ?? 0) + 1);
  }
  return count;
}

describe('informer resync', () => {
  it('replays every cache to the controller on --informer-resync, and at rest that writes nothing', async function (this: Mocha.Context) {
    this.timeout(300_000);
    const f = new Fixtures(cluster.kc);
    const tenant = uniqueName('resync');
    const namespaces: string[] = [];
    const source = uniqueName('src');
    const name = uniqueName('rc');
    let op: OperatorProcess | undefined;
    try {
      await cluster.stopOperator();
      op = await startOperator({
        kubeconfigPath: cluster.operatorKubeconfigPath,
        namespace: OPERATOR_NAMESPACE,
        sourceNamespaces: [EXTRA_SOURCE_NAMESPACE],
        logLevel: 'debug',
        args: ['--informer-resync=2s'],
      });
      const running = op;
      for (let i = 0; i < 3; i++) namespaces.push(await f.namespace('resync', { tenant }));
      await f.basicSecret(OPERATOR_NAMESPACE, source, 'robot', `pw-${uniqueName('p')}`);
      await f.createCredential(name, {
        namespaceSelector: { matchLabels: { tenant } },
        registries: [{ server: 'registry.example.com', basic: { secretRef: { name: source } } }],
      });
      await waitFor(
        `RegistryCredential ${name} Ready over 3 synced namespaces`,
        () => f.getCredential(name),
        (cred: RegistryCredential) =>
          cred.status?.conditions?.some(
            (c) =>
              c.type === 'Ready' &&
              c.status === 'True' &&
              c.observedGeneration === cred.metadata.generation,
          ) === true && cred.status?.syncedNamespaces === 3,
      );
      for (const ns of namespaces)
        await waitUntil(`the default ServiceAccount of ${ns} to list ${name}`, async () =>
          (await f.pullSecretNames(ns)).includes(name),
        );
      // The Ready Event is the last write of the converging reconcile.
      await waitUntil(`the Ready Event of ${name}`, async () =>
        (await f.events(name)).some((e) => e.reason === 'Ready'),
      );

      // Converged. From here on, only the resync happens.
      const auditFrom = statSync(cluster.auditLogPath).size;
      const logFrom = running.logs.length;
      const writesBefore = (await running.metric('regcred_api_writes_total')) ?? 0;
      const reconcilesBefore = (await running.metric('controller_runtime_reconcile_total')) ?? 0;

      // Every cache the controller reads, replayed twice since convergence.
      const informers = [
        `/apis/${GROUP}/${VERSION}/${PLURAL}`,
        '/api/v1/namespaces',
        '/api/v1/serviceaccounts',
        'secrets/managed',
        `secrets/${OPERATOR_NAMESPACE}`,
        `secrets/${EXTRA_SOURCE_NAMESPACE}`,
        `secrets/named/${name}`,
      ];
      await waitFor(
        'every informer to resync twice',
        () => resyncs(running.logs.slice(logFrom)),
        (seen) => informers.every((informer) => (seen.get(informer) ?? 0) >= 2),
        { timeoutMs: 30_000, intervalMs: 200 },
      );
      // The replays reached the controller: it re-checked the credential from its caches
      // (a reconcile is counted once it has finished, writes included).
      await waitUntil(
        'reconciles caused by the resyncs',
        async () =>
          ((await running.metric('controller_runtime_reconcile_total')) ?? 0) >=
          reconcilesBefore + 2,
        { timeoutMs: 30_000, intervalMs: 200 },
      );

      assert.deepEqual(operatorWritesSince(auditFrom), [], 'Secret or ServiceAccount writes');
      assert.equal(
        (await running.metric('regcred_api_writes_total')) ?? 0,
        writesBefore,
        'the operator counted writes (status, Events, Secrets, ServiceAccounts) after convergence',
      );
      // Still what it was: the re-check found nothing to repair.
      for (const ns of namespaces) assert.ok((await f.pullSecretNames(ns)).includes(name), ns);
    } finally {
      await op?.stop();
      await cluster.startOperator();
      await f.deleteCredential(name).catch(() => {});
      await f.waitCredentialGone(name, { timeoutMs: 120_000 });
      await f.core
        .deleteNamespacedSecret({ namespace: OPERATOR_NAMESPACE, name: source })
        .catch(() => {});
      await Promise.all(
        namespaces.map((ns) => f.core.deleteNamespace({ name: ns }).catch(() => {})),
      );
    }
  });
});

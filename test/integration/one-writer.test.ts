// One writer, as the API server saw it: a leader frozen in the middle of a fan-out (SIGSTOP:
// its renewals stop, exactly like a process starved or paused by its node) loses the Lease to a
// standby; when it wakes, nothing it writes may land after the standby's first write. Each
// replica authenticates as its own ServiceAccount, and the API server's audit log says who
// wrote what and when.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Fixtures } from '../support/fixtures.ts';
import { uniqueName } from '../support/names.ts';
import { type OperatorProcess, startOperator } from '../support/operator.ts';
import { waitFor, waitUntil } from '../support/wait.ts';
import { cluster, EXTRA_SOURCE_NAMESPACE, OPERATOR_NAMESPACE } from './hooks.ts';

const NAMESPACES = 150;
const LEASE_NAME = 'regcred-operator';

interface AuditEvent {
  stage: string;
  verb: string;
  user: { username: string };
  objectRef?: { resource?: string; namespace?: string; name?: string };
  responseStatus?: { code?: number };
  requestReceivedTimestamp: string;
}

/** Microseconds since the epoch of an audit timestamp (RFC 3339 with microseconds). */
function micros(timestamp: string): number {
  const match = /^(.*T\d\d:\d\d:\d\d)(?:\.(\d+))?Z$/.exec(timestamp);
  if (!match) throw new Error(`not an audit timestamp: ${timestamp}`);
  const fraction = (match[2] ?? '').padEnd(6, '0').slice(0, 6);
  return Date.parse(`${match[1]}Z`) * 1000 + Number(fraction);
}

describe('one writer', () => {
  it('a leader frozen mid fan-out writes nothing after the standby that took over has written', async function (this: Mocha.Context) {
    this.timeout(300_000);
    const f = new Fixtures(cluster.kc);
    const tenant = uniqueName('one-writer');
    const standbyUser = uniqueName('regcred-standby');
    const undo: Array<() => Promise<unknown>> = [];
    const replicas: OperatorProcess[] = [];
    try {
      // The standby's own identity, with exactly the operator's RBAC.
      await cluster.kubectlOk(['create', 'serviceaccount', standbyUser, '-n', OPERATOR_NAMESPACE]);
      undo.push(() =>
        cluster.kubectl(['delete', 'serviceaccount', standbyUser, '-n', OPERATOR_NAMESPACE]),
      );
      await cluster.kubectlOk([
        'create',
        'clusterrolebinding',
        standbyUser,
        '--clusterrole=regcred-operator',
        `--serviceaccount=${OPERATOR_NAMESPACE}:${standbyUser}`,
      ]);
      undo.push(() => cluster.kubectl(['delete', 'clusterrolebinding', standbyUser]));
      await cluster.kubectlOk([
        'create',
        'rolebinding',
        standbyUser,
        '-n',
        OPERATOR_NAMESPACE,
        '--role=regcred-operator',
        `--serviceaccount=${OPERATOR_NAMESPACE}:${standbyUser}`,
      ]);
      undo.push(() =>
        cluster.kubectl(['delete', 'rolebinding', standbyUser, '-n', OPERATOR_NAMESPACE]),
      );
      const token = (
        await cluster.kubectlOk([
          'create',
          'token',
          standbyUser,
          '-n',
          OPERATOR_NAMESPACE,
          '--duration=1h',
        ])
      ).trim();
      const standbyConfig = cluster.controlPlane.writeKubeconfigFor(
        join(cluster.controlPlane.dir, `${standbyUser}.kubeconfig`),
        standbyUser,
        token,
      );

      const namespaces: string[] = [];
      for (let i = 0; i < NAMESPACES; i += 30) {
        namespaces.push(
          ...(await Promise.all(
            Array.from({ length: 30 }, () => f.namespace('one-writer', { tenant })),
          )),
        );
      }
      undo.push(() =>
        Promise.all(namespaces.map((name) => f.core.deleteNamespace({ name }).catch(() => {}))),
      );
      await waitUntil('every default ServiceAccount', async () => {
        const list = await f.core.listServiceAccountForAllNamespaces({
          fieldSelector: 'metadata.name=default',
        });
        const have = new Set(list.items.map((sa) => sa.metadata?.namespace));
        return namespaces.every((ns) => have.has(ns));
      });

      await cluster.stopOperator();
      const leaderName = uniqueName('le-frozen');
      const leader = await startOperator({
        kubeconfigPath: cluster.operatorKubeconfigPath,
        namespace: OPERATOR_NAMESPACE,
        sourceNamespaces: [EXTRA_SOURCE_NAMESPACE],
        leaderElect: true,
        identity: leaderName,
      });
      replicas.push(leader);
      const leading = (op: OperatorProcess) =>
        op.metric('leader_election_master_status', { name: LEASE_NAME });
      await waitUntil('the first replica to lead', async () => (await leading(leader)) === 1, {
        timeoutMs: 30_000,
      });
      const standby = await startOperator({
        kubeconfigPath: standbyConfig,
        namespace: OPERATOR_NAMESPACE,
        sourceNamespaces: [EXTRA_SOURCE_NAMESPACE],
        leaderElect: true,
        identity: uniqueName('le-standby'),
      });
      replicas.push(standby);

      const source = uniqueName('src');
      await f.basicSecret(OPERATOR_NAMESPACE, source, 'robot', `pw-${uniqueName('x')}`);
      undo.push(() =>
        f.core.deleteNamespacedSecret({ namespace: OPERATOR_NAMESPACE, name: source }),
      );
      const name = uniqueName('rc');
      await f.createCredential(name, {
        namespaceSelector: { matchLabels: { tenant } },
        registries: [{ server: 'registry.example.com', basic: { secretRef: { name: source } } }],
      });
      undo.push(async () => {
        await f.deleteCredential(name);
        await f.waitCredentialGone(name, { timeoutMs: 120_000 });
      });
      // Freeze it once it is well into the fan-out.
      await waitUntil(
        'the leader to be writing',
        async () =>
          ((await leader.metric('regcred_api_writes_total', { resource: 'secrets' })) ?? 0) >= 20,
        { timeoutMs: 60_000, intervalMs: 5 },
      );
      const pid = leader.pid;
      assert.ok(pid);
      process.kill(pid, 'SIGSTOP');
      let frozen = true;
      undo.push(async () => {
        if (frozen) process.kill(pid, 'SIGCONT');
      });
      await waitUntil(
        'the standby to take over and write',
        async () =>
          ((await standby.metric('regcred_api_writes_total', { resource: 'secrets' })) ?? 0) > 0,
        { timeoutMs: 60_000, intervalMs: 100 },
      );
      process.kill(pid, 'SIGCONT');
      frozen = false;
      const exitCode = await waitFor(
        'the old leader to exit',
        () => leader.exitCode,
        (c) => c !== null,
        {
          timeoutMs: 60_000,
        },
      );
      assert.equal(exitCode, 1, 'a replica that lost the Lease exits to restart as a standby');
      await f.waitCondition(name, 'Ready', 'True', 'Ready', { timeoutMs: 120_000 });

      const ours = new Set(namespaces);
      const writes = readFileSync(cluster.auditLogPath, 'utf8')
        .split('\n')
        .filter((line) => line.trim() !== '')
        .map((line) => JSON.parse(line) as AuditEvent)
        .filter(
          (e) =>
            e.stage === 'ResponseComplete' &&
            (e.responseStatus?.code ?? 0) < 300 &&
            ours.has(e.objectRef?.namespace ?? ''),
        );
      const by = (user: string) =>
        writes.filter(
          (e) => e.user.username === `system:serviceaccount:${OPERATOR_NAMESPACE}:${user}`,
        );
      const old = by('regcred-operator').map((e) => micros(e.requestReceivedTimestamp));
      const next = by(standbyUser).map((e) => micros(e.requestReceivedTimestamp));
      assert.ok(
        old.length > 0 && next.length > 0,
        `writes: old leader ${old.length}, standby ${next.length}`,
      );
      const lastOld = Math.max(...old);
      const firstNew = Math.min(...next);
      process.stderr.write(
        `      the frozen leader wrote ${old.length} times, the standby ${next.length}; the old leader's last write was received ${((firstNew - lastOld) / 1e6).toFixed(1)} s before the standby's first\n`,
      );
      assert.ok(lastOld < firstNew, 'the old leader wrote after the standby had written');
      for (const op of replicas) await op.stop();
    } finally {
      for (const op of replicas) await op.stop().catch(() => {});
      for (const step of undo.reverse()) await step().catch(() => {});
      await cluster.startOperator();
    }
  });
});

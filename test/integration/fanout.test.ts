import assert from 'node:assert/strict';
import { Fixtures } from '../support/fixtures.ts';
import { uniqueName } from '../support/names.ts';
import { metricSum } from '../support/operator.ts';
import { waitFor } from '../support/wait.ts';
import { cluster, OPERATOR_NAMESPACE } from './hooks.ts';

describe('fan-out of a basic credential', () => {
  let f: Fixtures;
  before(() => {
    f = new Fixtures(cluster.kc);
  });

  it('writes the Secret into a selected namespace, patches its default ServiceAccount and turns Ready', async () => {
    const tenant = uniqueName('tenant');
    const ns = await f.namespace('fan', { tenant });
    const source = uniqueName('src');
    await f.basicSecret(OPERATOR_NAMESPACE, source, 'robot', 's3cr3t-fanout');
    const name = uniqueName('rc');
    await f.createCredential(name, {
      namespaceSelector: { matchLabels: { tenant } },
      registries: [{ server: 'registry.example.com', basic: { secretRef: { name: source } } }],
    });
    const cred = await f.waitCondition(name, 'Ready', 'True');
    assert.equal(cred.status?.targetNamespaces, 1);
    assert.equal(cred.status?.syncedNamespaces, 1);
    const config = await f.dockerConfig(ns, name);
    assert.deepEqual(config?.auths['registry.example.com'], {
      username: 'robot',
      password: 's3cr3t-fanout',
      auth: Buffer.from('robot:s3cr3t-fanout').toString('base64'),
    });
    assert.deepEqual(await f.waitPullSecrets(ns, 'default', (n) => n.includes(name)), [name]);
    const { stdout } = await cluster.kubectl([
      'wait',
      '--for=condition=Ready',
      '--timeout=10s',
      `regcred/${name}`,
    ]);
    assert.match(stdout, /condition met/);
  });

  it('leaves other RegistryCredentials of the same namespaces alone while one fans out (no reconcile per ServiceAccount write)', async function (this: Mocha.Context) {
    this.timeout(180_000);
    const tenant = uniqueName('tenant');
    const count = 40;
    const namespaces: string[] = [];
    const credentials: string[] = [];
    try {
      for (let i = 0; i < count; i += 10) {
        namespaces.push(
          ...(await Promise.all(
            Array.from({ length: Math.min(10, count - i) }, () => f.namespace('many', { tenant })),
          )),
        );
      }
      const source = uniqueName('src');
      await f.basicSecret(OPERATOR_NAMESPACE, source, 'robot', 's3cr3t-many-creds');
      const spec = (secretName: string) => ({
        secretName,
        namespaceSelector: { matchLabels: { tenant } },
        registries: [{ server: 'registry.example.com', basic: { secretRef: { name: source } } }],
      });
      const first = uniqueName('rc-first');
      const second = uniqueName('rc-second');
      credentials.push(first);
      await f.createCredential(first, spec(first));
      const waitSynced = (name: string) =>
        waitFor(
          `${name} Ready over ${count} namespaces`,
          () => f.getCredential(name),
          (c) => c.status?.syncedNamespaces === count,
          { timeoutMs: 60_000 },
        );
      const bothListed = async () => {
        for (const ns of namespaces.slice(0, 5)) {
          const names = await f.waitPullSecrets(ns, 'default', (n) => n.length === 2);
          assert.deepEqual([...names].sort(), [first, second].sort());
        }
      };
      await waitSynced(first);
      const reconciles = async () =>
        (await cluster.operator.metric('controller_runtime_reconcile_total')) ?? 0;
      // Let the first credential's own echoes settle before counting.
      await f.waitCondition(first, 'Ready', 'True');
      const before = await reconciles();

      credentials.push(second);
      await f.createCredential(second, spec(second));
      for (const ns of namespaces) {
        await f.waitPullSecrets(ns, 'default', (names) => names.includes(second));
      }
      await waitSynced(second);
      const spent = (await reconciles()) - before;
      // The second credential's full reconcile, a rerun for its own Secrets' events, and the
      // odd retry. Before the fix, each of its 40 ServiceAccount writes queued a full
      // reconcile of the first credential (and of itself) as well.
      process.stdout.write(
        `      ${spent} reconciles while a second credential fanned out over ${count} namespaces\n`,
      );
      assert.ok(spent <= 12, `${spent} reconciles for one credential's fan-out over ${count}`);
      await bothListed();

      // A restart relists everything: one full reconcile per credential covers every
      // namespace; the per-namespace keys the relist's ADDED events would queue (2 × 40 here,
      // 6000 at 3000 namespaces and 30 s of CPU) are not queued as well.
      await cluster.stopOperator();
      await cluster.startOperator();
      const settled = await waitFor(
        'the restarted operator to reconcile both credentials and go quiet',
        async () => {
          const samples = await cluster.operator.samples();
          return {
            total: metricSum(samples, 'controller_runtime_reconcile_total') ?? 0,
            depth: metricSum(samples, 'workqueue_depth') ?? 0,
          };
        },
        (m) => m.total >= 2 && m.depth === 0,
        { timeoutMs: 60_000, intervalMs: 200 },
      );
      process.stdout.write(
        `      ${settled.total} reconciles after a restart with 2 credentials over ${count} namespaces\n`,
      );
      assert.ok(settled.total < count, `${settled.total} reconciles after a restart`);
      await bothListed();
    } finally {
      for (const name of credentials) await f.deleteCredential(name).catch(() => {});
      for (const name of credentials) await f.waitCredentialGone(name).catch(() => {});
      await Promise.all(namespaces.map((name) => f.core.deleteNamespace({ name }).catch(() => {})));
    }
  });

  it('onboards a burst of new namespaces with one Secret create and one ServiceAccount update each, full reconciles coalesced', async function (this: Mocha.Context) {
    this.timeout(180_000);
    const tenant = uniqueName('tenant');
    const count = 40;
    const namespaces: string[] = [];
    const source = uniqueName('src');
    const name = uniqueName('rc-burst');
    try {
      await f.basicSecret(OPERATOR_NAMESPACE, source, 'robot', 's3cr3t-burst');
      await f.createCredential(name, {
        namespaceSelector: { matchLabels: { tenant } },
        registries: [{ server: 'registry.example.com', basic: { secretRef: { name: source } } }],
      });
      await f.waitCondition(name, 'Ready', 'True', 'NoTargets');
      const counters = async () => {
        const samples = await cluster.operator.samples();
        const requests = (verb: string, resource: string) =>
          metricSum(samples, 'regcred_api_requests_total', { verb, resource }) ?? 0;
        return {
          createSecrets: requests('create', 'secrets'),
          updateServiceAccounts: requests('update', 'serviceaccounts'),
          deleteSecrets: requests('delete', 'secrets'),
          gets: requests('get', 'secrets') + requests('get', 'serviceaccounts'),
          // This credential's keys the operator processed (its debug log has one line per
          // key): full reconciles, and the burst's namespaces (the fast path's keys).
          ...reconciledKeys(),
        };
      };
      const reconciledKeys = () => {
        let full = 0;
        let single = 0;
        for (const line of cluster.operator.logs) {
          if (!line.includes('"reconciled"')) continue;
          const key = (JSON.parse(line) as { key?: string }).key ?? '';
          if (key === name) full += 1;
          else if (namespaces.includes(key)) single += 1;
        }
        return { full, single };
      };
      const before = await counters();
      const started = performance.now();
      for (let i = 0; i < count; i += 10) {
        namespaces.push(
          ...(await Promise.all(
            Array.from({ length: 10 }, () => f.namespace('burst', { tenant })),
          )),
        );
      }
      for (const ns of namespaces) {
        await f.waitPullSecrets(ns, 'default', (names) => names.includes(name));
      }
      const seconds = (performance.now() - started) / 1000;
      await waitFor(
        `${name} to count ${count} synced namespaces`,
        () => f.getCredential(name),
        (c) => c.status?.syncedNamespaces === count,
        { timeoutMs: 60_000, intervalMs: 50 },
      );
      const counted = (performance.now() - started) / 1000;
      const after = await counters();
      const spent = {
        createSecrets: after.createSecrets - before.createSecrets,
        updateServiceAccounts: after.updateServiceAccounts - before.updateServiceAccounts,
        deleteSecrets: after.deleteSecrets - before.deleteSecrets,
        gets: after.gets - before.gets,
        full: after.full - before.full,
        single: after.single - before.single,
      };
      process.stdout.write(
        `      burst of ${count} namespaces, all carrying the entry after ${seconds.toFixed(1)} s, counted in the status after ${counted.toFixed(1)} s: ${JSON.stringify(spent)}\n`,
      );
      // Each namespace is written once, by whichever key gets there first; a full reconcile
      // racing the per-namespace keys made duplicate creates (AlreadyExists → GET) and 409s.
      assert.equal(spent.createSecrets, count, 'one Secret create per namespace');
      assert.equal(spent.updateServiceAccounts, count, 'one ServiceAccount update per namespace');
      assert.equal(spent.gets, 0, 'no read after a failed write');
      // A full reconcile whose fan-out ran while namespaces arrived must not take their Secrets
      // (written by the fast path meanwhile) for stale.
      assert.equal(spent.deleteSecrets, 0, 'no Secret deleted');
      assert.ok(spent.single >= count, `${spent.single} single-namespace keys for ${count}`);
      // The status is updated about once a second during the burst (each such reconcile may
      // be followed by one more when its status write's own event beats the response), not by
      // a full reconcile of every namespace per event (which ran back to back and took the
      // writes over: 87 of them).
      const bound = 2 * Math.ceil(counted) + 2;
      assert.ok(spent.full <= bound, `${spent.full} full reconciles (at most ${bound})`);
    } finally {
      await f.deleteCredential(name).catch(() => {});
      await f.waitCredentialGone(name).catch(() => {});
      await Promise.all(
        namespaces
          .filter(Boolean)
          .map((ns) => f.core.deleteNamespace({ name: ns }).catch(() => {})),
      );
    }
  });
});

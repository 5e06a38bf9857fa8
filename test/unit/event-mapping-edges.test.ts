// Edges of the event → work mapping that change what a user sees: which credential reconciles
// (or only recounts) when a namespace, ServiceAccount or Secret changes, leading or not.
import assert from 'node:assert/strict';
import type { V1Secret } from '@kubernetes/client-node';

import {
  cred,
  fixture,
  fullOf,
  managedSecret,
  ns,
  nsOf,
  sa,
  statusOf,
} from '../support/event-mapping-fixture.ts';

const ev = <T>(type: 'add' | 'update' | 'delete', object: T, old?: T) =>
  old === undefined ? { type, object } : { type, object, old };

describe('event mapping at the edges', () => {
  describe('RegistryCredential events', () => {
    it('an object without a name makes no work', () => {
      const { mapping } = fixture();
      const nameless = cred('x');
      delete nameless.metadata.name;
      assert.deepEqual(mapping.credential(ev('update', nameless), false), []);
    });

    it('our own write coming back reconciles only when something is left to do', () => {
      const { mapping } = fixture();
      const settled = cred('acme', {}, 2, 2);
      assert.deepEqual(mapping.credential(ev('update', settled), true), []);
      const deleting = cred('acme', {}, 2, 2);
      deleting.metadata.deletionTimestamp = new Date();
      assert.deepEqual(mapping.credential(ev('update', deleting), true), [fullOf('acme')]);
      assert.deepEqual(mapping.credential(ev('update', cred('acme', {}, 2)), true), [
        fullOf('acme'),
      ]);
      assert.deepEqual(mapping.credential(ev('update', cred('acme', {}, 3, 2)), true), [
        fullOf('acme'),
      ]);
    });
  });

  describe('Namespace events', () => {
    it('a namespace still selected after an update: synced, no full reconcile', () => {
      const { view, mapping } = fixture();
      view.secrets = [managedSecret('a1', 'acme')];
      const after = ns('a1', { tenant: 'acme', team: 'x' });
      assert.deepEqual(mapping.namespace(ev('update', after, ns('a1', { tenant: 'acme' }))), [
        nsOf('acme', 'a1'),
        statusOf('acme'),
      ]);
    });

    it('a deleted namespace (no old object): its credential only recounts', () => {
      const { mapping } = fixture();
      assert.deepEqual(mapping.namespace(ev('delete', ns('a1', { tenant: 'acme' }))), [
        statusOf('acme'),
      ]);
    });

    it('a terminating namespace holding another credential’s Secret: that one only recounts', () => {
      const { view, mapping } = fixture();
      view.secrets = [managedSecret('a1', 'globex'), { metadata: { name: 'x', namespace: 'a1' } }];
      const terminating = ns('a1', { tenant: 'acme' }, true);
      const items = mapping.namespace(ev('update', terminating, ns('a1', { tenant: 'acme' })));
      assert.ok(items.some((i) => i.queue === 'status' && i.credential === 'globex'));
      assert.ok(!items.some((i) => i.queue === 'full'));
    });

    it('a credential with an invalid selector selects nothing and breaks no event', () => {
      const { view, mapping } = fixture();
      view.creds.push(
        cred('broken', {
          namespaceSelector: { matchExpressions: [{ key: 'x', operator: 'Bogus' }] },
        }),
      );
      assert.deepEqual(mapping.credentialsSelecting(undefined), []);
      assert.deepEqual(mapping.namespace(ev('add', ns('a2', { tenant: 'acme' }))), [
        nsOf('acme', 'a2', false),
        statusOf('acme'),
      ]);
    });
  });

  describe('ServiceAccount events', () => {
    it('a new ServiceAccount gets our entry; a Secret left by a credential gone is cleaned', () => {
      const { view, mapping } = fixture();
      view.secrets = [managedSecret('a1', 'ghost'), managedSecret('a1', 'acme')];
      assert.deepEqual(mapping.serviceAccount(ev('add', sa('a1', 'default'))), [
        nsOf('acme', 'a1'),
        fullOf('ghost'),
      ]);
    });

    it('an update where another credential recorded its entry: that one cleans up', () => {
      const { view, mapping } = fixture();
      view.secrets = [managedSecret('a1', 'globex'), managedSecret('a1', 'ghost')];
      const recorded = sa('a1', 'default', ['acme', 'globex'], 'acme,globex');
      const items = mapping.serviceAccount(ev('update', recorded, recorded));
      assert.ok(items.some((i) => i.queue === 'full' && i.credential === 'globex'));
      assert.ok(items.some((i) => i.queue === 'full' && i.credential === 'ghost'));
      const unrecorded = sa('a1', 'default', ['acme'], 'acme');
      const none = mapping.serviceAccount(ev('update', unrecorded, unrecorded));
      assert.ok(!none.some((i) => i.credential === 'globex'));
    });
  });

  describe('Secret events', () => {
    it('a Secret in a namespace the cache does not know: its credential recounts', () => {
      const { mapping } = fixture();
      assert.deepEqual(mapping.secret(ev('update', managedSecret('zz', 'acme')), false), [
        statusOf('acme'),
      ]);
    });

    it('not leading: an edited Secret still queues its credential’s full reconcile', () => {
      const { view, mapping } = fixture();
      view.leading = false;
      assert.deepEqual(mapping.secret(ev('update', managedSecret('a1', 'acme')), false), [
        fullOf('acme'),
      ]);
    });

    it('a Secret of a credential gone, or under a name it no longer writes: full reconcile', () => {
      const { mapping } = fixture();
      assert.deepEqual(mapping.secret(ev('update', managedSecret('a1', 'ghost')), false), [
        fullOf('ghost'),
      ]);
      assert.deepEqual(
        mapping.secret(ev('update', managedSecret('a1', 'acme', 'old-name')), false),
        [fullOf('acme')],
      );
    });

    it('our Secret deleted by someone else where it is up to date: restored', () => {
      const { view, mapping } = fixture();
      view.current.add('a1/acme');
      const items = mapping.secret(ev('delete', managedSecret('a1', 'acme')), false);
      assert.ok(items.some((i) => i.queue === 'namespace' && i.credential === 'acme'));
    });

    it('our own write coming back, same owner: nothing', () => {
      const { view, mapping } = fixture();
      view.current.add('a1/acme');
      const s = managedSecret('a1', 'acme');
      assert.deepEqual(mapping.secret(ev('update', s, managedSecret('a1', 'acme')), true), []);
    });

    it('a deleted Secret that only carries our credential label frees no name', () => {
      const { mapping } = fixture();
      const lookalike: V1Secret = {
        metadata: { name: 'acme', namespace: 'a1', labels: { 'regcred.dev/credential': 'acme' } },
      };
      assert.deepEqual(mapping.secret(ev('delete', lookalike), false), []);
    });

    it('a source Secret change reconciles each credential reading it, whichever registry', () => {
      const { view, mapping } = fixture();
      view.creds = [
        cred('acme', {
          registries: [
            { server: 'r.example.com', basic: { secretRef: { name: 'src' } } },
            { server: 'q.example.com', basic: { secretRef: { name: 'src2' } } },
          ],
        }),
      ];
      const source: V1Secret = { metadata: { name: 'src2', namespace: 'regcred-system' } };
      assert.deepEqual(mapping.secret(ev('update', source), false), [fullOf('acme')]);
    });
  });

  describe('Secrets under a name a credential writes', () => {
    it('someone else’s Secret under our name decides at once; another name does nothing', () => {
      const { mapping } = fixture();
      const theirs = (name: string): V1Secret => ({ metadata: { name, namespace: 'a1' } });
      assert.deepEqual(mapping.namedSecret(ev('add', theirs('acme'))), [fullOf('acme')]);
      assert.deepEqual(mapping.namedSecret(ev('add', theirs('other'))), []);
    });
  });

  describe('what a change makes no work for', () => {
    it('a namespace deleted while the watch was down (a relist: old and object the same): its credential recounts', () => {
      const { mapping } = fixture();
      const gone = ns('a1', { tenant: 'acme' });
      assert.deepEqual(mapping.namespace({ type: 'delete', object: gone, old: gone }), [
        statusOf('acme'),
      ]);
    });

    it('a deleted namespace makes no work for a credential that had already let it go', () => {
      // globex's Secret is still cached in a1, which globex does not select: it goes with the
      // namespace, and globex's own relabel reconcile has already counted it out.
      const { view, mapping } = fixture();
      view.secrets = [managedSecret('a1', 'globex')];
      assert.deepEqual(mapping.namespace(ev('delete', ns('a1', { tenant: 'acme' }))), [
        statusOf('acme'),
      ]);
    });

    it('a ServiceAccount created where a credential that left the namespace kept its Secret: that credential cleans up', () => {
      const { view, mapping } = fixture();
      view.secrets = [managedSecret('a1', 'globex')];
      assert.deepEqual(mapping.serviceAccount(ev('add', sa('a1', 'default'))), [
        nsOf('acme', 'a1'),
        fullOf('globex'),
      ]);
    });

    it('our own delete coming back, in a namespace the credential no longer selects: nothing', () => {
      const { mapping } = fixture();
      assert.deepEqual(mapping.secret(ev('delete', managedSecret('g1', 'acme')), true), []);
    });

    it('our own write coming back in a namespace relabelled out meanwhile: the full reconcile removes it', () => {
      const { mapping } = fixture();
      assert.deepEqual(mapping.secret(ev('update', managedSecret('g1', 'acme')), true), [
        fullOf('acme'),
      ]);
    });

    it('deleting one credential’s Secret makes no work for another credential of the namespace writing another name', () => {
      const { view, mapping } = fixture();
      view.creds = [
        cred('acme'),
        cred('globex', { namespaceSelector: { matchLabels: { tenant: 'acme' } } }),
      ];
      const items = mapping.secret(ev('delete', managedSecret('a1', 'acme')), false);
      assert.ok(
        items.some((i) => i.credential === 'acme'),
        'acme restores its Secret',
      );
      assert.deepEqual(
        items.filter((i) => i.credential === 'globex'),
        [],
      );
    });

    it('deleting an unlabelled Secret in a source namespace reconciles the credentials reading it', () => {
      const { mapping } = fixture();
      const source: V1Secret = { metadata: { name: 'src', namespace: 'regcred-system' } };
      assert.deepEqual(mapping.secret(ev('delete', source), false), [
        fullOf('acme'),
        fullOf('globex'),
      ]);
    });

    it('a Secret in a tenant namespace is never a source, even where a credential names it as one', () => {
      const { view, mapping } = fixture();
      view.creds = [
        cred('acme', {
          registries: [
            { server: 'r.example.com', basic: { secretRef: { name: 'creds', namespace: 'a1' } } },
          ],
        }),
      ];
      const tenants: V1Secret = { metadata: { name: 'creds', namespace: 'a1' } };
      assert.deepEqual(mapping.secret(ev('update', tenants), false), []);
    });

    it('a Secret with a source’s name in another source namespace is not that source', () => {
      const { view, mapping } = fixture();
      view.isSourceNamespace = (namespace: string) =>
        namespace === 'regcred-system' || namespace === 'regcred-sources';
      const namesake: V1Secret = { metadata: { name: 'src', namespace: 'regcred-sources' } };
      assert.deepEqual(mapping.secret(ev('update', namesake), false), []);
    });
  });
});

import assert from 'node:assert/strict';
import type { V1Secret } from '@kubernetes/client-node';
import type { EventMapping, WorkItem } from '../../src/controller/event-mapping.ts';

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

describe('event mapping: informer events to work', () => {
  describe('RegistryCredential events', () => {
    it('queue the credential, except our own write of a status that observed its generation', () => {
      const { mapping } = fixture();
      const settled = cred('acme', {}, 3, 3);
      const unobserved = cred('acme', {}, 4, 3);
      assert.deepEqual(mapping.credential({ type: 'update', object: settled }, false), [
        fullOf('acme'),
      ]);
      assert.deepEqual(mapping.credential({ type: 'update', object: settled }, true), []);
      assert.deepEqual(mapping.credential({ type: 'update', object: unobserved }, true), [
        fullOf('acme'),
      ]);
    });
  });

  describe('Namespace events', () => {
    const cases: Array<{
      name: string;
      event: () => Parameters<EventMapping['namespace']>[0];
      want: WorkItem[];
    }> = [
      {
        name: 'a new namespace: its selecting credential syncs it (not urgent) and recounts',
        event: () => ({ type: 'add', object: ns('a2', { tenant: 'acme' }) }),
        want: [nsOf('acme', 'a2', false), statusOf('acme')],
      },
      {
        name: 'relabelled from one tenant to another: the new one syncs, the old one cleans up',
        event: () => ({
          type: 'update',
          object: ns('a1', { tenant: 'globex' }),
          old: ns('a1', { tenant: 'acme' }),
        }),
        want: [nsOf('globex', 'a1'), statusOf('globex'), fullOf('acme')],
      },
      {
        name: 'terminating: the credential that selected it only recounts',
        event: () => ({
          type: 'update',
          object: ns('a1', { tenant: 'acme' }, true),
          old: ns('a1', { tenant: 'acme' }),
        }),
        want: [statusOf('acme')],
      },
      {
        name: 'deleted: only a recount',
        event: () => ({ type: 'delete', object: ns('a1', { tenant: 'acme' }) }),
        want: [statusOf('acme')],
      },
      {
        name: 'an unrelated namespace: nothing',
        event: () => ({ type: 'add', object: ns('x', { team: 'x' }) }),
        want: [],
      },
    ];
    for (const c of cases) {
      it(c.name, () => {
        const { mapping } = fixture();
        assert.deepEqual(mapping.namespace(c.event()), c.want);
      });
    }

    it('a namespace that still holds a Secret of a credential that no longer selects it queues that owner', () => {
      const { view, mapping } = fixture();
      view.secrets.push(managedSecret('x', 'acme'));
      assert.deepEqual(mapping.namespace({ type: 'update', object: ns('x'), old: ns('x') }), [
        fullOf('acme'),
      ]);
    });

    it('a resync of a namespace (the same object replayed) asks only for a coalesced recheck', () => {
      const { mapping } = fixture();
      const object = ns('a1', { tenant: 'acme' });
      assert.deepEqual(mapping.namespace({ type: 'update', object, old: object }), [
        statusOf('acme'),
      ]);
    });

    it('before leading, the fast path and recounts are not queued (the leader queues everything)', () => {
      const { view, mapping } = fixture();
      view.leading = false;
      assert.deepEqual(
        mapping.namespace({ type: 'add', object: ns('a2', { tenant: 'acme' }) }),
        [],
      );
    });
  });

  describe('ServiceAccount events', () => {
    it('a new ServiceAccount gets the fast path of each credential selecting its namespace', () => {
      const { mapping } = fixture();
      assert.deepEqual(mapping.serviceAccount({ type: 'add', object: sa('a1', 'default') }), [
        nsOf('acme', 'a1'),
      ]);
    });

    it('an update queues work only where the entry is missing, doubled, unrecorded or recorded where unselected', () => {
      const { mapping } = fixture();
      const update = (entries: string[], name = 'default', recorded?: string) =>
        mapping.serviceAccount({ type: 'update', object: sa('a1', name, entries, recorded) });
      assert.deepEqual(update(['acme'], 'default', 'acme'), [], 'as we want it: nothing');
      assert.deepEqual(
        update(['globex', 'acme'], 'default', 'acme'),
        [],
        "another credential's entry: not ours to judge",
      );
      assert.deepEqual(update([], 'default', 'acme'), [nsOf('acme', 'a1')], 'entry removed');
      assert.deepEqual(
        update(['acme', 'acme'], 'default', 'acme'),
        [nsOf('acme', 'a1')],
        'doubled',
      );
      assert.deepEqual(update(['acme']), [nsOf('acme', 'a1')], 'there but unrecorded: adopt it');
      assert.deepEqual(
        update(['acme'], 'builder', 'acme'),
        [nsOf('acme', 'a1')],
        'our recorded entry where unselected',
      );
      assert.deepEqual(update(['acme'], 'builder'), [], "someone else's entry where unselected");
    });

    it('a deleted ServiceAccount makes no work', () => {
      const { mapping } = fixture();
      assert.deepEqual(mapping.serviceAccount({ type: 'delete', object: sa('a1', 'default') }), []);
    });
  });

  describe('Secret events', () => {
    it('our own write coming back, or one that is up to date, makes no work', () => {
      const { view, mapping } = fixture();
      const secret = managedSecret('a1', 'acme');
      assert.deepEqual(mapping.secret({ type: 'update', object: secret }, true), []);
      view.current.add('a1/acme');
      assert.deepEqual(mapping.secret({ type: 'update', object: secret }, false), []);
    });

    it('someone else edits or deletes our Secret: that one namespace is restored', () => {
      const { mapping } = fixture();
      const secret = managedSecret('a1', 'acme');
      assert.deepEqual(mapping.secret({ type: 'update', object: secret }, false), [
        nsOf('acme', 'a1'),
      ]);
      assert.deepEqual(mapping.secret({ type: 'delete', object: secret }, false), [
        nsOf('acme', 'a1'),
        fullOf('acme'),
      ]);
    });

    it('our Secret in a namespace its credential no longer selects: a full reconcile removes it', () => {
      const { mapping } = fixture();
      assert.deepEqual(
        mapping.secret({ type: 'add', object: managedSecret('g1', 'acme') }, false),
        [fullOf('acme')],
      );
    });

    it('a Secret relabelled away from a credential queues the credential that had it', () => {
      const { mapping } = fixture();
      const before = managedSecret('a1', 'acme');
      const after: V1Secret = { ...before, metadata: { ...before.metadata, labels: {} } };
      assert.deepEqual(mapping.secret({ type: 'update', object: after, old: before }, false), [
        fullOf('acme'),
      ]);
    });

    it('a source Secret queues every credential that reads it', () => {
      const { view, mapping } = fixture();
      view.creds.push(
        cred('initech', { registries: [{ server: 'r', basic: { secretRef: { name: 'other' } } }] }),
      );
      const source: V1Secret = { metadata: { name: 'src', namespace: 'regcred-system' } };
      assert.deepEqual(mapping.secret({ type: 'update', object: source }, false), [
        fullOf('acme'),
        fullOf('globex'),
      ]);
    });
  });
});

import assert from 'node:assert/strict';
import type { V1ServiceAccount } from '@kubernetes/client-node';
import fc from 'fast-check';
import {
  entryEdit,
  recordedEntries,
  withOurEntry,
  withoutOurEntry,
} from '../../src/controller/pull-secret-entries.ts';

const RECORD = 'regcred.dev/pull-secrets';

function sa(
  entries: string[],
  recorded?: string,
  other: Record<string, string> = {},
): V1ServiceAccount {
  const annotations = { ...other, ...(recorded !== undefined ? { [RECORD]: recorded } : {}) };
  return {
    metadata: {
      name: 'default',
      namespace: 't',
      resourceVersion: '5',
      ...(Object.keys(annotations).length > 0 ? { annotations } : {}),
    },
    imagePullSecrets: entries.map((name) => ({ name })),
  };
}

const names = (s: V1ServiceAccount | undefined) => s?.imagePullSecrets?.map((e) => e.name);
const record = (s: V1ServiceAccount | undefined) => s?.metadata?.annotations?.[RECORD];

describe('pull secret entries: recorded, never guessed', () => {
  it('adds our entry and records it in the same object, keeping everyone else’s', () => {
    const next = withOurEntry(sa(['theirs'], undefined, { team: 'a' }), 'acme');
    assert.deepEqual(names(next), ['theirs', 'acme']);
    assert.equal(record(next), 'acme');
    assert.equal(next?.metadata?.annotations?.team, 'a');
    assert.equal(next?.metadata?.resourceVersion, '5', 'a conditional write');
  });

  it('records an existing unrecorded entry in place (adoption), and then has nothing to do', () => {
    const adopted = withOurEntry(sa(['acme', 'theirs']), 'acme');
    assert.deepEqual(names(adopted), ['acme', 'theirs']);
    assert.equal(record(adopted), 'acme');
    assert.equal(withOurEntry(adopted as V1ServiceAccount, 'acme'), undefined);
  });

  it('shares the record with other credentials’ names, sorted', () => {
    const next = withOurEntry(sa(['globex'], 'globex'), 'acme');
    assert.equal(record(next), 'acme,globex');
    assert.deepEqual([...recordedEntries(next)], ['acme', 'globex']);
  });

  it('removes only a recorded entry, and its record', () => {
    assert.equal(withoutOurEntry(sa(['acme']), 'acme'), undefined, 'unrecorded: someone else’s');
    const removed = withoutOurEntry(sa(['theirs', 'acme', 'acme'], 'acme,globex'), 'acme');
    assert.deepEqual(names(removed), ['theirs']);
    assert.equal(record(removed), 'globex');
    const last = withoutOurEntry(sa(['acme'], 'acme'), 'acme');
    assert.equal(last?.metadata?.annotations, undefined, 'an empty record goes');
  });

  it('reads a hand-edited record leniently (spaces, empty items)', () => {
    assert.deepEqual([...recordedEntries(sa([], ' acme , ,globex'))], ['acme', 'globex']);
    assert.deepEqual([...recordedEntries(undefined)], []);
  });

  it('never drops or reorders an entry it does not own, whatever the list (property)', () => {
    fc.assert(
      fc.property(
        fc.array(fc.constantFrom('acme', 'a', 'b', 'c'), { maxLength: 8 }),
        fc.option(fc.constantFrom('acme', 'a', 'acme,b', ''), { nil: undefined }),
        fc.boolean(),
        (list, recorded, selected) => {
          const before = sa(list, recorded);
          const after = entryEdit(before, 'acme', selected) ?? before;
          const others = (s: V1ServiceAccount) => names(s)?.filter((n) => n !== 'acme');
          assert.deepEqual(others(after), others(before));
          const ours = names(after)?.filter((n) => n === 'acme').length ?? 0;
          if (selected) assert.equal(ours, 1);
          else if (recordedEntries(before).has('acme')) assert.equal(ours, 0);
          else assert.equal(ours, list.filter((n) => n === 'acme').length, 'unrecorded stays');
          assert.equal(entryEdit(after, 'acme', selected), undefined, 'idempotent');
        },
      ),
    );
  });
});

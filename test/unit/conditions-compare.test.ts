// Whether two condition lists would serialize the same: any field of any condition that
// differs is a difference (a status write), nothing else is.
import assert from 'node:assert/strict';
import { sameConditions } from '../../src/api/conditions.ts';
import type { Condition } from '../../src/api/types.ts';

const ready: Condition = {
  type: 'Ready',
  status: 'True',
  reason: 'Ready',
  message: '1 namespace holds the current Secret',
  observedGeneration: 3,
  lastTransitionTime: '2026-06-01T12:00:00Z',
};
const synced: Condition = { ...ready, type: 'Synced', reason: 'Synced', message: '1/1 synced' };

describe('sameConditions', () => {
  it('equal lists, and absent lists, are the same', () => {
    assert.equal(sameConditions([ready, synced], [{ ...ready }, { ...synced }]), true);
    assert.equal(sameConditions(undefined, []), true);
  });

  it('a missing or extra condition is a difference, either way round', () => {
    assert.equal(sameConditions([ready, synced], [ready]), false);
    assert.equal(sameConditions([ready], [ready, synced]), false);
    assert.equal(sameConditions([ready], undefined), false);
  });

  it('each field changed alone is a difference', () => {
    const changes: Array<Partial<Condition>> = [
      { type: 'CredentialsReady' },
      { status: 'False' },
      { reason: 'NoTargets' },
      { message: 'other' },
      { observedGeneration: 4 },
      { lastTransitionTime: '2026-06-01T12:00:01Z' },
    ];
    for (const change of changes) {
      assert.equal(
        sameConditions([ready, synced], [{ ...ready, ...change }, synced]),
        false,
        JSON.stringify(change),
      );
      assert.equal(
        sameConditions([ready, synced], [ready, { ...synced, ...change }]),
        false,
        `second: ${JSON.stringify(change)}`,
      );
    }
  });
});

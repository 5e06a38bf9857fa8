import assert from 'node:assert/strict';
import fc from 'fast-check';
import {
  conditionTime,
  findCondition,
  orderConditions,
  sameConditions,
  setCondition,
} from '../../src/api/conditions.ts';
import type { Condition, ConditionType } from '../../src/api/types.ts';

const T0 = new Date('2025-01-02T03:04:05.678Z');
const T1 = new Date('2025-01-02T04:00:00.000Z');

describe('conditions', () => {
  it('stamps a new condition with the time in whole seconds, as metav1.Time', () => {
    const conditions = setCondition(
      undefined,
      { type: 'Ready', status: 'True', reason: 'Ready', message: 'ok', observedGeneration: 1 },
      T0,
    );
    assert.deepEqual(conditions, [
      {
        type: 'Ready',
        status: 'True',
        reason: 'Ready',
        message: 'ok',
        observedGeneration: 1,
        lastTransitionTime: '2025-01-02T03:04:05Z',
      },
    ]);
    assert.equal(conditionTime(T1), '2025-01-02T04:00:00Z');
  });

  it('keeps lastTransitionTime while the status stays, updating reason, message, generation', () => {
    const before = setCondition(
      undefined,
      { type: 'Synced', status: 'False', reason: 'Conflict', message: 'a', observedGeneration: 1 },
      T0,
    );
    const after = setCondition(
      before,
      {
        type: 'Synced',
        status: 'False',
        reason: 'PartiallySynced',
        message: 'b',
        observedGeneration: 2,
      },
      T1,
    );
    assert.deepEqual(after, [
      {
        type: 'Synced',
        status: 'False',
        reason: 'PartiallySynced',
        message: 'b',
        observedGeneration: 2,
        lastTransitionTime: '2025-01-02T03:04:05Z',
      },
    ]);
  });

  it('moves lastTransitionTime when the status changes', () => {
    const before = setCondition(
      undefined,
      { type: 'Ready', status: 'False', reason: 'Suspended', message: '' },
      T0,
    );
    const after = setCondition(
      before,
      { type: 'Ready', status: 'True', reason: 'Ready', message: '' },
      T1,
    );
    assert.equal(findCondition(after, 'Ready')?.lastTransitionTime, '2025-01-02T04:00:00Z');
  });

  it('replaces by type and keeps Ready, CredentialsReady, Synced, then others in order', () => {
    const foreign = {
      type: 'Custom',
      status: 'True',
      reason: 'Ready',
      message: '',
      lastTransitionTime: 'x',
    } as unknown as Condition;
    let conditions: Condition[] = [foreign];
    for (const type of ['Synced', 'Ready', 'CredentialsReady', 'Ready'] as ConditionType[]) {
      conditions = setCondition(
        conditions,
        { type, status: 'True', reason: 'Ready', message: '' },
        T0,
      );
    }
    assert.deepEqual(
      conditions.map((c) => c.type),
      ['Ready', 'CredentialsReady', 'Synced', 'Custom'],
    );
  });

  it('does not modify the list it is given', () => {
    const before = setCondition(
      undefined,
      { type: 'Ready', status: 'False', reason: 'Suspended', message: '' },
      T0,
    );
    const snapshot = structuredClone(before);
    setCondition(before, { type: 'Ready', status: 'True', reason: 'Ready', message: 'now' }, T1);
    assert.deepEqual(before, snapshot);
  });

  it('findCondition returns undefined for absent types and lists', () => {
    assert.equal(findCondition(undefined, 'Ready'), undefined);
    assert.equal(findCondition([], 'Synced'), undefined);
  });

  it('replaying the same updates gives an identical status, so nothing is written (property)', () => {
    const update = fc.record({
      type: fc.constantFrom<ConditionType>('Ready', 'CredentialsReady', 'Synced'),
      status: fc.constantFrom('True' as const, 'False' as const, 'Unknown' as const),
      reason: fc.constantFrom('Ready' as const, 'Conflict' as const, 'RefreshFailed' as const),
      message: fc.string({ maxLength: 10 }),
    });
    fc.assert(
      fc.property(fc.array(update, { maxLength: 12 }), (updates) => {
        let conditions: Condition[] | undefined;
        updates.forEach((u, i) => {
          conditions = setCondition(conditions, u, new Date(T0.getTime() + i * 1000));
        });
        // Ordered, one per type.
        const types = (conditions ?? []).map((c) => c.type);
        assert.deepEqual(
          types,
          orderConditions(conditions ?? []).map((c) => c.type),
        );
        assert.equal(new Set(types).size, types.length);
        // A resync applies the latest value of each type again, later: no change at all.
        let replayed = conditions;
        for (const c of conditions ?? []) {
          const { lastTransitionTime: _, ...rest } = c;
          replayed = setCondition(replayed, rest, T1);
        }
        assert.ok(sameConditions(replayed, conditions));
        assert.deepEqual(replayed ?? [], conditions ?? []);
      }),
    );
  });

  it('sameConditions notices any field that differs', () => {
    const base = setCondition(
      undefined,
      { type: 'Ready', status: 'True', reason: 'Ready', message: 'm' },
      T0,
    );
    assert.ok(sameConditions(base, structuredClone(base)));
    assert.ok(sameConditions(undefined, []));
    const first = base[0];
    assert.ok(first);
    assert.ok(!sameConditions(base, [{ ...first, message: 'other' }]));
    assert.ok(!sameConditions(base, [{ ...first, observedGeneration: 2 }]));
    assert.ok(!sameConditions(base, []));
  });
});

// Fan-outs yield to a backlog of new namespaces on the fast path (issue #20, scenario 3).
import assert from 'node:assert/strict';
import { FastPathFirst } from '../../src/controller/fast-path-first.ts';

const turns = async (n: number): Promise<void> => {
  for (let i = 0; i < n; i++) await new Promise((resolve) => setImmediate(resolve));
};

describe('FastPathFirst', () => {
  it('lets every fan-out sync run while the fast path has nothing waiting', async () => {
    const gate = new FastPathFirst(() => 0);
    const leaves = await Promise.all(Array.from({ length: 16 }, () => gate.turn()));
    assert.equal(gate.running, 16);
    for (const leave of leaves) leave();
    assert.equal(gate.running, 0);
  });

  it('holds fan-out syncs beyond the floor while there is a backlog, and lets them go as it drains', async () => {
    let backlog = 5;
    const gate = new FastPathFirst(() => backlog, 2);
    const started: number[] = [];
    const leaves: Array<() => void> = [];
    for (let i = 0; i < 6; i++) {
      void gate.turn().then((leave) => {
        started.push(i);
        leaves.push(leave);
      });
    }
    await turns(5);
    assert.deepEqual(started, [0, 1], 'the floor');
    // One of them finishes: the next takes its place, no more.
    leaves[0]?.();
    leaves[0]?.(); // leaving twice counts once
    await turns(5);
    assert.deepEqual(started, [0, 1, 2]);
    assert.equal(gate.running, 2);
    // The fast path takes what was waiting: a change with no backlog lets all go.
    backlog = 0;
    gate.changed();
    await turns(5);
    assert.deepEqual(started, [0, 1, 2, 3, 4, 5]);
    assert.equal(gate.waiting, 0);
  });

  it('keeps a floor of one whatever it is given', async () => {
    const gate = new FastPathFirst(() => 1, 0);
    let started = 0;
    void gate.turn().then(() => started++);
    void gate.turn().then(() => started++);
    await turns(5);
    assert.equal(started, 1);
  });
});

import assert from 'node:assert/strict';
import { WrittenOverlay } from '../../src/kube/written-overlay.ts';

type Obj = { metadata: { name: string; namespace: string; resourceVersion: string }; v?: string };
const obj = (rv: string, v?: string): Obj => ({
  metadata: { name: 's', namespace: 'n', resourceVersion: rv },
  ...(v ? { v } : {}),
});

describe('WrittenOverlay: our writes until the watch catches up', () => {
  it('serves our write while the cache is older, then the cache once it caught up', () => {
    const overlay = new WrittenOverlay<Obj>();
    overlay.put(obj('10', 'ours'));
    assert.equal(overlay.pick('n/s', obj('9'))?.v, 'ours');
    assert.equal(overlay.pick('n/s', undefined)?.v, 'ours', 'a create the cache has not seen yet');
    assert.equal(overlay.pick('n/s', obj('11', 'later'))?.v, 'later');
    assert.equal(overlay.size, 0);
  });

  it('hides an object we deleted until the cache drops it', () => {
    const overlay = new WrittenOverlay<Obj>();
    overlay.remove('n/s');
    assert.equal(overlay.pick('n/s', obj('9')), undefined);
    assert.equal(overlay.pick('n/s', undefined), undefined);
    assert.equal(overlay.size, 0);
  });

  it('tells our own write coming back from someone else’s change', () => {
    const overlay = new WrittenOverlay<Obj>();
    overlay.put(obj('10'));
    assert.equal(overlay.observed(obj('9'), 'update'), false, 'an older event');
    assert.equal(overlay.observed(obj('10'), 'update'), true, 'our write');
    overlay.put(obj('12'));
    assert.equal(overlay.observed(obj('13'), 'update'), false, 'someone wrote after us');
    assert.equal(overlay.size, 0);
  });

  it('forgets our write once the watch reports a delete after it (no phantom object)', () => {
    const overlay = new WrittenOverlay<Obj>();
    overlay.put(obj('10', 'ours'));
    assert.equal(overlay.observed(obj('11'), 'delete'), false);
    assert.equal(overlay.pick('n/s', undefined), undefined);
    overlay.remove('n/s');
    assert.equal(overlay.observed(obj('12'), 'delete'), true, 'our own delete coming back');
  });

  it('stops serving a write the cache has seen past without holding it (deleted during a watch gap)', () => {
    const overlay = new WrittenOverlay<Obj>();
    overlay.put(obj('10', 'ours'));
    assert.equal(overlay.pick('n/s', undefined, 9)?.v, 'ours', 'the watch has not reached it yet');
    assert.equal(overlay.pick('n/s', undefined, 12), undefined, 'relisted at 12 without it: gone');
    assert.equal(overlay.size, 0);
  });
});

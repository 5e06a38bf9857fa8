// The edges of Go's url.Parse that decide which `auths` keys the kubelet files where: control
// characters, empty hosts, user info, IPv6 literals and zones, ports, escapes. Each row is a key
// a credential author could write; the kubelet keys it as shown (undefined: it ignores it).
import assert from 'node:assert/strict';
import {
  kubeletKeyringKey,
  registryIdentity,
  shadowedKeys,
} from '../../src/credentials/registry-keys.ts';

const EDGES: Array<[string, string | undefined]> = [
  ['registry.example.com/a\u007f', undefined],
  ['/foo', '/foo'],
  ['?x', ''],
  ['#x', ''],
  ['@registry.example.com', 'registry.example.com'],
  ['u@[::1]:5000', '[::1]:5000'],
  ['u%zz@registry.example.com', undefined],
  ['registry.example.com/v1/x', 'registry.example.com/x'],
  ['[::1]', '[::1]'],
  ['[::1', undefined],
  ['[::1]x:5', undefined],
  ['[fe80::1%25en0]:5000', '[fe80::1%en0]:5000'],
  [':5000', ':5000'],
  [':abc', undefined],
  ['registry.example.com/a%4z', undefined],
];

describe('kubeletKeyringKey at the edges of Go’s url.Parse', () => {
  for (const [server, expected] of EDGES) {
    it(`${JSON.stringify(server)} → ${expected === undefined ? 'ignored' : JSON.stringify(expected)}`, () => {
      assert.equal(kubeletKeyringKey(server), expected);
    });
  }

  it('a host may escape a non-ASCII byte (%80 and up), not an ASCII one', () => {
    assert.notEqual(kubeletKeyringKey('r%80.example.com'), undefined);
    assert.equal(kubeletKeyringKey('r%7f.example.com'), undefined);
  });
});

describe('registryIdentity at the edges', () => {
  it('a key the kubelet ignores is compared as written', () => {
    assert.equal(registryIdentity(' bad'), ' bad');
  });

  it('folds the case of the host only, never of the path', () => {
    assert.equal(registryIdentity('Registry.Example.com/A'), 'registry.example.com/A');
    assert.equal(registryIdentity('/Foo'), '/Foo');
  });

  it('Docker Hub by either name is docker.io; an empty key is not Docker Hub', () => {
    assert.equal(registryIdentity('index.docker.io'), 'docker.io');
    assert.equal(registryIdentity('https://index.docker.io/v1/'), 'docker.io');
    assert.equal(registryIdentity('docker.io/library'), 'docker.io/library');
    assert.equal(registryIdentity(''), '');
  });
});

describe('shadowedKeys between imports', () => {
  it('the later import wins whatever order the imports were read in', () => {
    const registries = [{ dockerConfig: {} }, { dockerConfig: {} }, { dockerConfig: {} }];
    const shadowed = shadowedKeys(
      registries,
      new Map([
        [2, ['a.example.com']],
        [0, ['a.example.com']],
      ]),
    );
    assert.deepEqual([...shadowed], [[0, new Set(['a.example.com'])]]);
  });
});

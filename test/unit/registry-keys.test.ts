// Registries as the kubelet tells them apart. The tables were produced by running the kubelet's
// own code (kubernetes v1.37.2 pkg/credentialprovider: BasicDockerKeyring.Add's key and
// decodeDockerConfigFieldAuth, copied into a Go program) on each input.
import assert from 'node:assert/strict';
import { decodeAuthField } from '../../src/credentials/dockerconfigjson.ts';
import { CredentialError } from '../../src/credentials/errors.ts';
import {
  assertDistinctServers,
  kubeletKeyringKey,
  registryIdentity,
  shadowedKeys,
} from '../../src/credentials/registry-keys.ts';

/** auth field → what the kubelet decodes (null: it refuses the entry). */
const KUBELET_AUTH_DECODING: Array<[string, [string, string] | null]> = [
  ['cm9ib3Q6czNjcmV0', ['robot', 's3cret']],
  ['YWI6Yw==', ['ab', 'c']],
  ['YWI6Yw', ['ab', 'c']],
  ['dTpwOnE', ['u', 'p:q']],
  ['cm9ib3Q6czNjcmV0\n', ['robot', 's3cret']],
  ['cm9i\r\nb3Q6czNjcmV0', ['robot', 's3cret']],
  ['cm9ib3Q6czNjcmV0 ', null],
  [' cm9ib3Q6czNjcmV0', null],
  ['YWI6Y2Q=', ['ab', 'cd']],
  ['YWI6Yw=', null],
  ['YWI6Y', null],
  ['u:p', null],
  ['bm9jb2xvbg==', null],
  ['bm9jb2xvbg', null],
  ['', null],
  ['YWI6Yw==YWI6Yw==', null],
  ['YWI6Yx==', ['ab', 'c']],
  ['YWI6Yx', ['ab', 'c']],
  ['-_-_', null],
  ['YTpi=', null],
  ['dXNlcjpww6Rzcw', ['user', 'p\u00e4ss']],
  ['YWI6Yw=\n', null],
  [' YWI6Yw ', null],
  ['YWI6Yw\t', null],
];

/** auths key → the kubelet keyring's key (undefined: Go's url.Parse refuses it). */
const KUBELET_KEYRING_KEYS: Array<[string, string | undefined]> = [
  ['registry.example.com:5000', 'registry.example.com:5000'],
  ['https://registry.example.com:5000/v2/', 'registry.example.com:5000'],
  ['http://registry.example.com:5000/v1/', 'registry.example.com:5000'],
  ['registry.example.com:5000/', 'registry.example.com:5000'],
  ['registry.example.com:5000/v2', 'registry.example.com:5000/v2'],
  ['registry.example.com/v2/foo', 'registry.example.com/foo'],
  ['Registry.Example.COM', 'Registry.Example.COM'],
  ['HTTPS://registry.example.com', 'HTTPS://registry.example.com'],
  ['https://index.docker.io/v1/', 'index.docker.io'],
  ['docker.io', 'docker.io'],
  ['index.docker.io', 'index.docker.io'],
  ['registry.example.com/a?b#c', 'registry.example.com/a'],
  ['user:pw@registry.example.com', 'registry.example.com'],
  ['registry.example.com/a%2Fb', 'registry.example.com/a/b'],
  ['registry.example.com/a%zz', undefined],
  ['*.example.com', '*.example.com'],
  ['registry.example.com:5000//', 'registry.example.com:5000//'],
  ['registry.example.com/v1/', 'registry.example.com'],
  ['registry.example.com/v2//x', 'registry.example.com//x'],
  [' registry.example.com', undefined],
  ['registry.example.com:abc', undefined],
  ['[::1]:5000', '[::1]:5000'],
  ['registry.example.com/A/B', 'registry.example.com/A/B'],
  ['regi%41stry.example.com', undefined],
  ['reg%C3%A9.example.com', 'regé.example.com'],
  ['r%25x.example.com', 'r%x.example.com'],
  ['r%zz.example.com', undefined],
  ['us er@registry.example.com', undefined],
  ['reg%c3%a9.example.com/%41', 'regé.example.com/A'],
];

describe('registries as the kubelet sees them', () => {
  describe('decodeAuthField decodes exactly what the kubelet decodes', () => {
    for (const [auth, expected] of KUBELET_AUTH_DECODING) {
      it(`${JSON.stringify(auth)} → ${expected ? JSON.stringify(expected) : 'refused'}`, () => {
        const decoded = decodeAuthField(auth);
        assert.deepEqual(decoded && [decoded.username, decoded.password], expected);
      });
    }
  });

  describe('kubeletKeyringKey computes the keyring key the kubelet files an entry under', () => {
    for (const [server, expected] of KUBELET_KEYRING_KEYS) {
      it(`${JSON.stringify(server)} → ${expected === undefined ? 'ignored' : JSON.stringify(expected)}`, () => {
        assert.equal(kubeletKeyringKey(server), expected);
      });
    }
  });

  describe('registryIdentity', () => {
    it('folds scheme, /v1/ and /v2/, a trailing slash, the host case and Docker Hub names', () => {
      const same: string[][] = [
        [
          'registry.example.com:5000',
          'https://registry.example.com:5000/v2/',
          'http://registry.example.com:5000/v1/',
          'registry.example.com:5000/',
          'REGISTRY.example.com:5000',
        ],
        ['docker.io', 'index.docker.io', 'https://index.docker.io/v1/', 'https://docker.io/v2/'],
        ['registry.example.com/team', 'https://registry.example.com/v2/team'],
      ];
      for (const group of same) {
        assert.deepEqual(new Set(group.map(registryIdentity)).size, 1, group.join(' = '));
      }
    });

    it('keeps apart what the kubelet keeps apart: ports, paths, path case, other hosts', () => {
      const distinct = [
        'registry.example.com',
        'registry.example.com:5000',
        'registry.example.com/team',
        'registry.example.com/Team',
        'registry.example.com:5000/v2',
        '*.example.com',
        'docker.io/team',
        'index.docker.io/team',
      ];
      assert.equal(new Set(distinct.map(registryIdentity)).size, distinct.length);
    });
  });

  describe('assertDistinctServers', () => {
    it('refuses two explicit servers the kubelet folds into one, naming both', () => {
      assert.throws(
        () =>
          assertDistinctServers([
            { field: 'spec.registries[0]', server: 'registry.example.com:5000' },
            { field: 'spec.registries[2]', server: 'https://registry.example.com:5000/v2/' },
          ]),
        (err: unknown) =>
          err instanceof CredentialError &&
          err.reason === 'InvalidSpec' &&
          err.message.includes('spec.registries[0].server registry.example.com:5000') &&
          err.message.includes('spec.registries[2].server https://registry.example.com:5000/v2/'),
      );
    });

    it('accepts servers that are different registries', () => {
      assertDistinctServers([
        { field: 'spec.registries[0]', server: 'registry.example.com:5000' },
        { field: 'spec.registries[1]', server: 'registry.example.com:5001' },
      ]);
    });
  });

  describe('shadowedKeys', () => {
    const basic = { server: 'registry.example.com:5000' };
    const importing = { dockerConfig: {} };

    it('an imported key loses to an explicit server, before or after it', () => {
      for (const registries of [
        [basic, importing],
        [importing, basic],
      ]) {
        const importIndex = registries.indexOf(importing);
        const shadowed = shadowedKeys(
          registries,
          new Map([[importIndex, ['https://registry.example.com:5000/v2/', 'other.example.com']]]),
        );
        assert.deepEqual(
          [...(shadowed.get(importIndex) ?? [])],
          ['https://registry.example.com:5000/v2/'],
        );
      }
    });

    it('between imports the later one wins, exact duplicates and folded keys alike', () => {
      const shadowed = shadowedKeys(
        [importing, importing],
        new Map([
          [0, ['a.example.com', 'b.example.com/']],
          [1, ['a.example.com', 'https://b.example.com/v2/']],
        ]),
      );
      assert.deepEqual([...(shadowed.get(0) ?? [])].sort(), ['a.example.com', 'b.example.com/']);
      assert.equal(shadowed.get(1), undefined);
    });

    it('inside one import, folded keys keep the last in code-unit order', () => {
      const shadowed = shadowedKeys(
        [importing],
        new Map([[0, ['registry.example.com', 'https://registry.example.com/v2/']]]),
      );
      assert.deepEqual([...(shadowed.get(0) ?? [])], ['https://registry.example.com/v2/']);
    });
  });
});

import assert from 'node:assert/strict';
import type { V1Secret } from '@kubernetes/client-node';
import fc from 'fast-check';
import type { BasicSource } from '../../src/api/types.ts';
import {
  basicAuthEntry,
  buildDockerConfigJson,
  type DockerAuthEntry,
} from '../../src/credentials/dockerconfigjson.ts';
import { CredentialError } from '../../src/credentials/errors.ts';
import {
  mergeRegistryAuths,
  resolveBasic,
  resolveDockerConfig,
} from '../../src/credentials/static-sources.ts';

const b64 = (s: string): string => Buffer.from(s, 'utf8').toString('base64');
const SERVER = 'registry.example.com:5000';
const basic: BasicSource = { secretRef: { name: 'acme-basic' } };

function opaque(data: Record<string, string>, stringData?: Record<string, string>): V1Secret {
  return {
    metadata: { name: 'acme-basic', namespace: 'regcred-system' },
    type: 'Opaque',
    data: Object.fromEntries(Object.entries(data).map(([k, v]) => [k, b64(v)])),
    ...(stringData === undefined ? {} : { stringData }),
  };
}

function sourceInvalid(fn: () => unknown): CredentialError {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof CredentialError, `expected CredentialError, got ${String(err)}`);
    assert.equal(err.reason, 'SourceInvalid');
    return err;
  }
  assert.fail('expected a SourceInvalid CredentialError');
}

describe('static credential sources', () => {
  describe('resolveBasic', () => {
    it('turns username/password keys into one auths entry for the server', () => {
      const auths = resolveBasic(basic, opaque({ username: 'robot', password: 'pw' }), SERVER);
      assert.deepEqual(auths, new Map([[SERVER, basicAuthEntry('robot', 'pw')]]));
    });

    it('reads custom keys', () => {
      const source: BasicSource = { ...basic, usernameKey: 'user', passwordKey: 'token' };
      const auths = resolveBasic(source, opaque({ user: 'u', token: 't' }), SERVER);
      assert.deepEqual(auths.get(SERVER), basicAuthEntry('u', 't'));
    });

    it('reads stringData, which wins over data like the API server', () => {
      const secret = opaque({ username: 'old', password: 'pw' }, { username: 'new' });
      assert.equal(resolveBasic(basic, secret, SERVER).get(SERVER)?.username, 'new');
    });

    it('keeps passwords with ":" and non-ASCII characters intact', () => {
      const auths = resolveBasic(basic, opaque({ username: 'ü', password: 'a:b:ç' }), SERVER);
      assert.deepEqual(auths.get(SERVER), basicAuthEntry('ü', 'a:b:ç'));
    });

    it('reads a kubernetes.io/basic-auth Secret with the default keys', () => {
      const secret = {
        ...opaque({ username: 'u', password: 'p' }),
        type: 'kubernetes.io/basic-auth',
      };
      assert.deepEqual(resolveBasic(basic, secret, SERVER).get(SERVER), basicAuthEntry('u', 'p'));
    });

    const refused: [string, V1Secret, BasicSource, RegExp][] = [
      ['a missing username key', opaque({ password: 'p' }), basic, /has no key username$/],
      [
        'a missing custom key',
        opaque({ username: 'u' }),
        { ...basic, passwordKey: 'pw' },
        /has no key pw$/,
      ],
      [
        'a Secret without data',
        { metadata: { name: 'acme-basic', namespace: 'regcred-system' } },
        basic,
        /has no key username/,
      ],
      [
        'an empty password',
        opaque({ username: 'u', password: '' }),
        basic,
        /key password is empty/,
      ],
      [
        'a ":" in the username',
        opaque({ username: 'a:b', password: 'p' }),
        basic,
        /key username contains ':'/,
      ],
      [
        'a newline in the username',
        opaque({ username: 'u\n', password: 'p' }),
        basic,
        /key username contains a control character/,
      ],
      [
        'a NUL in the username',
        opaque({ username: 'u\u0000', password: 'p' }),
        basic,
        /control character/,
      ],
      [
        'a DEL in the username',
        opaque({ username: 'u\u007f', password: 'p' }),
        basic,
        /control character/,
      ],
      [
        'a trailing newline in the password',
        opaque({ username: 'u', password: 'p\n' }),
        basic,
        /key password contains a line break/,
      ],
      [
        'bad base64',
        {
          metadata: { name: 'acme-basic', namespace: 'regcred-system' },
          data: { username: '!!!', password: b64('p') },
        },
        basic,
        /key username is not valid base64/,
      ],
      [
        'bytes that are not UTF-8',
        {
          metadata: { name: 'acme-basic', namespace: 'regcred-system' },
          data: { username: Buffer.from([0xff, 0xfe]).toString('base64'), password: b64('p') },
        },
        basic,
        /key username is not valid UTF-8/,
      ],
    ];
    for (const [what, secret, source, message] of refused) {
      it(`refuses ${what}, naming the Secret and key`, () => {
        const err = sourceInvalid(() => resolveBasic(source, secret, SERVER));
        assert.match(err.message, /^Secret regcred-system\/acme-basic /);
        assert.match(err.message, message);
      });
    }

    it('never puts the refused value in the message (property)', () => {
      const badUser = fc.oneof(
        fc
          .tuple(fc.string({ minLength: 8 }), fc.string({ minLength: 8 }))
          .map(([a, b]) => `${a}:${b}`),
        fc
          .tuple(fc.string({ minLength: 8 }), fc.constantFrom('\n', '\t', '\r', '\u0000', '\u001b'))
          .map(([a, c]) => `${a}${c}`),
      );
      fc.assert(
        fc.property(badUser, fc.string({ minLength: 8 }), (username, password) => {
          const err = sourceInvalid(() =>
            resolveBasic(basic, opaque({ username, password }), SERVER),
          );
          assert.ok(!err.message.includes(username));
          assert.ok(!err.message.includes(password));
        }),
      );
    });

    it('accepts every username without ":" or control characters (property)', () => {
      const user = fc
        .string({ unit: 'grapheme', minLength: 1 })
        // biome-ignore lint/suspicious/noControlCharactersInRegex: the rule under test
        .filter((u) => !/[\u0000-\u001f\u007f:]/.test(u));
      const pass = fc.string({ unit: 'grapheme', minLength: 1 }).filter((p) => !/[\r\n]/.test(p));
      fc.assert(
        fc.property(user, pass, (username, password) => {
          const auths = resolveBasic(basic, opaque({ username, password }), SERVER);
          assert.deepEqual(auths.get(SERVER), basicAuthEntry(username, password));
        }),
      );
    });
  });

  describe('resolveDockerConfig', () => {
    const pull = (config: string, type = 'kubernetes.io/dockerconfigjson'): V1Secret => ({
      metadata: { name: 'acme-dockercfg', namespace: 'regcred-system' },
      type,
      data: { '.dockerconfigjson': b64(config) },
    });

    it('imports every entry of an existing pull Secret', () => {
      const entries = new Map([
        ['a.example.com', basicAuthEntry('a', '1')],
        ['b.example.com', basicAuthEntry('b', '2')],
      ]);
      assert.deepEqual(resolveDockerConfig(pull(buildDockerConfigJson(entries))), entries);
    });

    it('names the Secret in the error, and nothing from inside it', () => {
      const err = sourceInvalid(() => resolveDockerConfig(pull('{"auths": "hunter2-secret"}')));
      assert.match(err.message, /^Secret regcred-system\/acme-dockercfg: "auths" in key/);
      assert.ok(!err.message.includes('hunter2'));
    });

    it('refuses an Opaque Secret even if it holds a .dockerconfigjson key', () => {
      const err = sourceInvalid(() => resolveDockerConfig(pull('{"auths":{}}', 'Opaque')));
      assert.match(err.message, /type Opaque is neither/);
    });

    it('reads stringData too', () => {
      const secret: V1Secret = {
        metadata: { name: 'x', namespace: 'y' },
        type: 'kubernetes.io/dockerconfigjson',
        stringData: { '.dockerconfigjson': '{"auths":{"r":{"auth":"dTpw"}}}' },
      };
      assert.deepEqual(resolveDockerConfig(secret).get('r'), basicAuthEntry('u', 'p'));
    });
  });

  describe('mergeRegistryAuths', () => {
    it('later registries win on the same server; others are all kept', () => {
      const first = new Map([
        ['shared.example.com', basicAuthEntry('old', 'x')],
        ['a.example.com', basicAuthEntry('a', 'x')],
      ]);
      const second = new Map([['shared.example.com', basicAuthEntry('new', 'y')]]);
      const merged = mergeRegistryAuths([first, second]);
      assert.equal(merged.get('shared.example.com')?.username, 'new');
      assert.equal(merged.get('a.example.com')?.username, 'a');
      assert.equal(merged.size, 2);
    });

    it('equals a left-to-right overwrite of all parts, without changing them (property)', () => {
      const part = fc
        .array(fc.tuple(fc.constantFrom('a', 'b', 'c', 'd'), fc.string()), { maxLength: 4 })
        .map(
          (rows) => new Map(rows.map(([s, u]): [string, DockerAuthEntry] => [s, { username: u }])),
        );
      fc.assert(
        fc.property(fc.array(part, { maxLength: 5 }), (parts) => {
          const before = parts.map((p) => new Map(p));
          const merged = mergeRegistryAuths(parts);
          const expected: Record<string, DockerAuthEntry> = {};
          for (const p of parts) for (const [s, e] of p) expected[s] = e;
          assert.deepEqual(Object.fromEntries(merged), expected);
          assert.deepEqual(parts, before);
        }),
      );
    });
  });
});

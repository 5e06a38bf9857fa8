import assert from 'node:assert/strict';
import fc from 'fast-check';
import {
  basicAuthEntry,
  buildDockerConfigJson,
  type DockerAuthEntry,
  decodeAuthField,
  MAX_DOCKER_CONFIG_ENTRIES,
  MAX_SECRET_DATA_BYTES,
  parseDockerConfigSecret,
} from '../../src/credentials/dockerconfigjson.ts';
import { CredentialError } from '../../src/credentials/errors.ts';
import { secretValues } from '../../src/observability/redact.ts';

const DCJ = 'kubernetes.io/dockerconfigjson';
const b64 = (s: string): string => Buffer.from(s, 'utf8').toString('base64');
const dcjData = (config: unknown): Record<string, string> => ({
  '.dockerconfigjson': b64(JSON.stringify(config)),
});

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

// Strings a user might keep in a Secret: anything printable, long enough to be recognisable.
const secretString = fc.string({ unit: 'grapheme', minLength: 12, maxLength: 40 });
const server = fc.oneof(
  fc.constantFrom('docker.io', 'https://index.docker.io/v1/', 'registry.example.com:5000'),
  fc.stringMatching(/^[a-z0-9]{1,12}(\.[a-z0-9]{1,8}){0,3}(:[0-9]{2,5})?(\/[a-z0-9]{1,6})?$/),
);
const username = fc.string({ minLength: 1, maxLength: 20 }).filter((u) => !u.includes(':'));
const password = fc.string({ minLength: 1, maxLength: 40 });
const basicEntries = fc
  .uniqueArray(fc.tuple(server, username, password), { selector: ([s]) => s, maxLength: 8 })
  .map((rows) => new Map(rows.map(([s, u, p]) => [s, basicAuthEntry(u, p)])));

describe('dockerconfigjson', () => {
  describe('basicAuthEntry', () => {
    it('carries username, password and the base64 of "user:pass" the kubelet sends', () => {
      assert.deepEqual(basicAuthEntry('robot', 's3cret'), {
        username: 'robot',
        password: 's3cret',
        auth: b64('robot:s3cret'),
      });
    });

    it('encodes non-ASCII credentials as UTF-8', () => {
      const entry = basicAuthEntry('jürgen', 'pässwörd');
      assert.equal(Buffer.from(entry.auth ?? '', 'base64').toString('utf8'), 'jürgen:pässwörd');
    });
  });

  describe('buildDockerConfigJson', () => {
    it('writes the shape API.md promises', () => {
      const json = buildDockerConfigJson(
        new Map([['registry.example.com:5000', basicAuthEntry('u', 'p')]]),
      );
      assert.equal(
        json,
        `{"auths":{"registry.example.com:5000":{"username":"u","password":"p","auth":"${b64('u:p')}"}}}`,
      );
    });

    it('writes an empty auths object when there is nothing to write', () => {
      assert.equal(buildDockerConfigJson(new Map()), '{"auths":{}}');
    });

    it('sorts servers and fixes field order, whatever order entries were added in', () => {
      const entry: DockerAuthEntry = {
        registrytoken: 'r',
        identitytoken: 'i',
        email: 'e@x',
        auth: 'YTpi',
        password: 'b',
        username: 'a',
      };
      const json = buildDockerConfigJson(
        new Map([
          ['z.example.com', entry],
          ['a.example.com', { password: 'p', username: 'u' }],
        ]),
      );
      assert.equal(
        json,
        '{"auths":{"a.example.com":{"username":"u","password":"p"},' +
          '"z.example.com":{"username":"a","password":"b","auth":"YTpi","email":"e@x","identitytoken":"i","registrytoken":"r"}}}',
      );
    });

    it('leaves empty and absent fields out, as Go does', () => {
      assert.equal(
        buildDockerConfigJson(
          new Map([['r', { identitytoken: 'tok', email: '', username: undefined }]]),
        ),
        '{"auths":{"r":{"identitytoken":"tok"}}}',
      );
    });

    it('identical input gives identical bytes (property)', () => {
      const withPermutation = basicEntries.chain((entries) =>
        fc.tuple(
          fc.constant(entries),
          fc.shuffledSubarray([...entries], { minLength: entries.size, maxLength: entries.size }),
        ),
      );
      fc.assert(
        fc.property(withPermutation, ([entries, permuted]) => {
          const copy = new Map(permuted.map(([k, v]) => [k, { ...v }] as const));
          assert.equal(buildDockerConfigJson(copy), buildDockerConfigJson(entries));
        }),
      );
    });

    it('writes servers and values with quotes, backslashes and unicode as valid JSON', () => {
      fc.assert(
        fc.property(fc.string(), fc.string(), fc.string(), (s, u, p) => {
          const parsed = JSON.parse(buildDockerConfigJson(new Map([[s, basicAuthEntry(u, p)]])));
          assert.deepEqual(Object.keys(parsed.auths), [s]);
          assert.equal(parsed.auths[s].username || undefined, u || undefined);
        }),
      );
    });

    it('a server named __proto__ is an ordinary key', () => {
      const json = buildDockerConfigJson(new Map([['__proto__', { username: 'u' }]]));
      assert.equal(json, '{"auths":{"__proto__":{"username":"u"}}}');
    });

    it('refuses, as SourceInvalid without the value, a config larger than a Secret can hold', () => {
      // The API server refuses Secret data over 1 MiB in every namespace, forever: retrying
      // would only fill the logs. Exactly 1 MiB is still written.
      const shell = buildDockerConfigJson(new Map([['r', { password: 'p' }]])).length - 1;
      const fits = (extra: number) =>
        new Map([['r', { password: 'p'.repeat(MAX_SECRET_DATA_BYTES - shell + extra) }]]);
      assert.equal(
        Buffer.byteLength(buildDockerConfigJson(fits(0)), 'utf8'),
        MAX_SECRET_DATA_BYTES,
      );
      const err = sourceInvalid(() => buildDockerConfigJson(fits(1)));
      assert.match(err.message, /1048577 bytes, more than the 1048576 a Secret can hold/);
      assert.ok(!err.message.includes('ppp'), 'the message holds no credential bytes');
    });
  });

  describe('parseDockerConfigSecret', () => {
    it('reads back exactly what buildDockerConfigJson wrote (property)', () => {
      fc.assert(
        fc.property(basicEntries, (entries) => {
          const data = { '.dockerconfigjson': b64(buildDockerConfigJson(entries)) };
          assert.deepEqual(parseDockerConfigSecret(DCJ, data), entries);
        }),
      );
    });

    it('reads a Secret made by `kubectl create secret docker-registry`', () => {
      const data = dcjData({
        auths: {
          'registry.example.com': {
            username: 'robot',
            password: 'pw',
            email: 'ops@example.com',
            auth: b64('robot:pw'),
          },
        },
      });
      assert.deepEqual(
        parseDockerConfigSecret(DCJ, data),
        new Map([
          [
            'registry.example.com',
            { username: 'robot', password: 'pw', auth: b64('robot:pw'), email: 'ops@example.com' },
          ],
        ]),
      );
    });

    it('reads the legacy kubernetes.io/dockercfg type (a bare map under .dockercfg)', () => {
      const data = {
        '.dockercfg': b64(JSON.stringify({ 'old.example.com': { auth: b64('a:b') } })),
      };
      assert.deepEqual(
        parseDockerConfigSecret('kubernetes.io/dockercfg', data),
        new Map([['old.example.com', { username: 'a', password: 'b', auth: b64('a:b') }]]),
      );
    });

    it('an entry with only auth gets its username and password from it', () => {
      const parsed = parseDockerConfigSecret(
        DCJ,
        dcjData({ auths: { r: { auth: b64('u:p:q') } } }),
      );
      // Split at the first ':' only: passwords may contain ':'.
      assert.deepEqual(parsed.get('r'), { username: 'u', password: 'p:q', auth: b64('u:p:q') });
    });

    it('auth wins over username/password, as in the kubelet and docker', () => {
      const parsed = parseDockerConfigSecret(
        DCJ,
        dcjData({ auths: { r: { username: 'stale', password: 'stale', auth: b64('u:p') } } }),
      );
      assert.deepEqual(parsed.get('r'), { username: 'u', password: 'p', auth: b64('u:p') });
    });

    it('an entry with username and password but no auth gets one', () => {
      const parsed = parseDockerConfigSecret(
        DCJ,
        dcjData({ auths: { r: { username: 'u', password: 'p' } } }),
      );
      assert.deepEqual(parsed.get('r'), basicAuthEntry('u', 'p'));
    });

    it('keeps token-only entries, drops null, empty and unknown fields', () => {
      const parsed = parseDockerConfigSecret(
        DCJ,
        dcjData({
          auths: {
            'gcr.io': { identitytoken: 'idt', email: null, username: '', serveraddress: 'x' },
            empty: {},
          },
          credHelpers: { 'x.io': 'helper' },
        }),
      );
      assert.deepEqual(
        parsed,
        new Map<string, DockerAuthEntry>([
          ['gcr.io', { identitytoken: 'idt' }],
          ['empty', {}],
        ]),
      );
    });

    it('accepts an empty auths object', () => {
      assert.equal(parseDockerConfigSecret(DCJ, dcjData({ auths: {} })).size, 0);
    });

    it(`accepts ${MAX_DOCKER_CONFIG_ENTRIES} entries and refuses one more`, () => {
      const auths = (n: number): Record<string, DockerAuthEntry> =>
        Object.fromEntries(Array.from({ length: n }, (_, i) => [`r${i}.example.com`, {}]));
      const data = dcjData({ auths: auths(MAX_DOCKER_CONFIG_ENTRIES) });
      assert.equal(parseDockerConfigSecret(DCJ, data).size, MAX_DOCKER_CONFIG_ENTRIES);
      const err = sourceInvalid(() =>
        parseDockerConfigSecret(DCJ, dcjData({ auths: auths(MAX_DOCKER_CONFIG_ENTRIES + 1) })),
      );
      assert.match(err.message, /1001 registry entries, more than the limit of 1000/);
    });

    it('a server key named __proto__ does not touch prototypes', () => {
      const text = `{"auths":{"__proto__":{"auth":"${b64('u:p')}"}}}`;
      const parsed = parseDockerConfigSecret(DCJ, { '.dockerconfigjson': b64(text) });
      assert.deepEqual([...parsed.keys()], ['__proto__']);
      assert.equal(parsed.get('__proto__')?.username, 'u');
    });

    const malformed: [string, string | undefined, Record<string, string> | undefined, RegExp][] = [
      ['an Opaque Secret', 'Opaque', dcjData({ auths: {} }), /type Opaque is neither/],
      ['a Secret without type', undefined, dcjData({ auths: {} }), /type Opaque is neither/],
      ['no data', DCJ, undefined, /key \.dockerconfigjson is missing/],
      ['the wrong key', DCJ, { '.dockercfg': b64('{}') }, /key \.dockerconfigjson is missing/],
      ['bad base64', DCJ, { '.dockerconfigjson': 'not base64!' }, /not valid base64/],
      ['unpadded base64', DCJ, { '.dockerconfigjson': 'e30' }, /not valid base64/],
      ['bad JSON', DCJ, { '.dockerconfigjson': b64('{"auths":') }, /is not valid JSON/],
      ['a JSON array', DCJ, dcjData([]), /is not a JSON object/],
      ['JSON null', DCJ, dcjData(null), /is not a JSON object/],
      ['no auths', DCJ, dcjData({ credsStore: 'desktop' }), /has no "auths" object/],
      ['auths a string', DCJ, dcjData({ auths: 'x' }), /"auths" .* is not a JSON object/],
      ['auths an array', DCJ, dcjData({ auths: [] }), /"auths" .* is not a JSON object/],
      [
        'an entry not an object',
        DCJ,
        dcjData({ auths: { a: {}, b: 'x' } }),
        /entry #2 .* not a JSON object/,
      ],
      ['an entry null', DCJ, dcjData({ auths: { a: null } }), /entry #1 .* not a JSON object/],
      [
        'a number password',
        DCJ,
        dcjData({ auths: { a: { password: 1 } } }),
        /"password" is not a string/,
      ],
      ['auth not base64', DCJ, dcjData({ auths: { a: { auth: 'u:p' } } }), /"auth" is not base64/],
      [
        'auth without colon',
        DCJ,
        dcjData({ auths: { a: { auth: b64('up') } } }),
        /"auth" is not base64/,
      ],
      [
        'a dockercfg that is not a map',
        'kubernetes.io/dockercfg',
        { '.dockercfg': b64('[1]') },
        /key \.dockercfg is not a JSON object/,
      ],
    ];
    for (const [what, type, data, message] of malformed) {
      it(`refuses ${what} as SourceInvalid`, () => {
        const err = sourceInvalid(() => parseDockerConfigSecret(type, data));
        assert.match(err.message, message);
      });
    }

    it("a malformed source's error message contains none of its data (property)", () => {
      const cases = (s: string): [string, Record<string, string>][] => [
        // The secret inside broken JSON: JSON.parse's own error would quote it.
        [DCJ, { '.dockerconfigjson': b64(`{"auths":{"r":{"password":"${s}"`) }],
        [DCJ, { '.dockerconfigjson': b64(s) }],
        [DCJ, { '.dockerconfigjson': s }],
        // The secret as a server key of a bad entry, and as a bad auth.
        [DCJ, dcjData({ auths: { [s]: s } })],
        [DCJ, dcjData({ auths: { [s]: { password: [s] } } })],
        [DCJ, dcjData({ auths: { [s]: { auth: s } } })],
        [DCJ, dcjData({ auths: { [s]: { auth: b64(s.replaceAll(':', '')) } } })],
        [DCJ, dcjData({ [s]: s })],
        [DCJ, dcjData({ auths: s })],
        ['kubernetes.io/dockercfg', { '.dockercfg': b64(`["${s}"`) }],
        ['kubernetes.io/dockercfg', { '.dockercfg': b64(JSON.stringify([s])) }],
      ];
      fc.assert(
        fc.property(secretString, (s) => {
          for (const [type, data] of cases(s)) {
            let message = '';
            try {
              parseDockerConfigSecret(type, data);
            } catch (err) {
              assert.ok(err instanceof CredentialError);
              assert.equal(err.reason, 'SourceInvalid');
              message = err.message;
            }
            if (message === '') continue; // s happened to be valid input
            assert.ok(!message.includes(s), `message leaks the secret: ${message}`);
            assert.ok(!message.includes(b64(s)), `message leaks base64 of the secret: ${message}`);
          }
        }),
      );
    });
  });

  describe('decodeAuthField', () => {
    it('round-trips any username without ":" and any password (property)', () => {
      fc.assert(
        fc.property(username, fc.string(), (u, p) => {
          assert.deepEqual(decodeAuthField(b64(`${u}:${p}`)), { username: u, password: p });
        }),
      );
    });
  });
});

describe('dockerconfigjson sources as the kubelet reads them', () => {
  const parsed = (entry: Record<string, unknown>) =>
    parseDockerConfigSecret(DCJ, dcjData({ auths: { 'r.example.com': entry } })).get(
      'r.example.com',
    );

  it('an auth with a trailing newline, as `base64` prints it, is read as without', () => {
    const auth = b64('robot:pw'); // ends in '='
    assert.deepEqual(parsed({ auth: `${auth}\n` }), { username: 'robot', password: 'pw', auth });
  });

  it('an auth with an empty username (":token") gives the token as password and no username', () => {
    assert.deepEqual(parsed({ auth: b64(':tok3n') }), { password: 'tok3n', auth: b64(':tok3n') });
  });

  it('an entry with a username but no password (an identity token) gets no made-up auth', () => {
    const identity = { username: '00000000-0000-0000-0000-000000000000', identitytoken: 'id-tok' };
    assert.deepEqual(parsed(identity), identity);
    assert.deepEqual(parsed({ password: 'only-a-password' }), { password: 'only-a-password' });
  });

  it('a legacy .dockercfg that is a JSON array, not an object, is refused', () => {
    const err = sourceInvalid(() =>
      parseDockerConfigSecret('kubernetes.io/dockercfg', { '.dockercfg': b64('[]') }),
    );
    assert.equal(err.message, 'key .dockercfg is not a JSON object');
  });

  it('a Secret of another type is refused naming its type, unless the type is unprintable', () => {
    assert.match(
      sourceInvalid(() => parseDockerConfigSecret('kubernetes.io/basic-auth', {})).message,
      /^type kubernetes\.io\/basic-auth is neither /,
    );
    for (const type of ['evil\ntype', '\u0007bell', 'bell\u0007']) {
      assert.match(
        sourceInvalid(() => parseDockerConfigSecret(type, {})).message,
        /^type \(unprintable\) is neither /,
        JSON.stringify(type),
      );
    }
  });
});

describe('dockerconfigjson: what is redacted', () => {
  it('a password that appears only inside `auth` is redacted from messages', () => {
    const password = `only-inside-auth-${Math.random().toString(36).slice(2)}`;
    parseDockerConfigSecret(
      DCJ,
      dcjData({ auths: { 'r.example.com': { auth: b64(`robot:${password}`) } } }),
    );
    assert.equal(secretValues.scrub(`denied: ${password}`), 'denied: [REDACTED]');
  });

  it('an error quoting the whole config written is redacted; an empty config is no secret', () => {
    const email = `ops-${Math.random().toString(36).slice(2)}@example.com`;
    const json = buildDockerConfigJson(new Map([['r.example.com', { email }]]));
    assert.equal(secretValues.scrub(`rejected: ${json}`), 'rejected: [REDACTED]');
    const empty = buildDockerConfigJson(new Map());
    assert.equal(empty, '{"auths":{}}');
    assert.equal(secretValues.scrub(`wrote ${empty}`), `wrote ${empty}`);
  });
});

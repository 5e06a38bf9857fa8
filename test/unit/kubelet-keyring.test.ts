// The kubelet's credential matching where it surprises people, each row checked against the
// kubelet's own code by test/integration/kubelet-keyring-differential.test.ts's program.
import assert from 'node:assert/strict';
import {
  compareKeyToRepository,
  ImageReferenceError,
  imageMatchesServer,
  lookupCredentials,
  type PullSecret,
  parseImageReference,
  readPullSecret,
} from '../../src/credentials/kubelet-keyring.ts';

function secret(name: string, auths: Record<string, unknown>): PullSecret {
  return {
    name,
    type: 'kubernetes.io/dockerconfigjson',
    data: { '.dockerconfigjson': Buffer.from(JSON.stringify({ auths })).toString('base64') },
  };
}

describe('the kubelet’s credential matching', () => {
  it('normalises image names as ParseImageName does', () => {
    const rows: Array<[string, string, string, string]> = [
      ['nginx', 'docker.io/library/nginx', 'latest', ''],
      ['index.docker.io/team/app:1', 'docker.io/team/app', '1', ''],
      ['Foo/bar', 'Foo/bar', 'latest', ''],
      [
        `r.example.com:5000/a@sha256:${'a'.repeat(64)}`,
        'r.example.com:5000/a',
        '',
        `sha256:${'a'.repeat(64)}`,
      ],
    ];
    for (const [image, repository, tag, digest] of rows) {
      const ref = parseImageReference(image);
      assert.deepEqual([ref.repository, ref.tag, ref.digest], [repository, tag, digest], image);
    }
    assert.throws(
      () => parseImageReference('Registry.example.com/App'),
      /must be lowercase|invalid reference/,
    );
  });

  it('matches as URLsMatchStr does: label globs, the same port, a path that is a string prefix', () => {
    const rows: Array<[string, string, boolean]> = [
      ['*.example.com', 'r.example.com/app', true],
      ['*.example.com', 'a.b.example.com/app', false],
      ['*.example.com', 'r.example.com:5000/app', false],
      ['registry.example.com/team', 'registry.example.com/teamx/app', true],
      ['https://registry.example.com:5000/v2/', 'registry.example.com:5000/x', true],
      ['Registry.example.com', 'registry.example.com/app', false],
      ['a[.example.com', 'a.example.com/app', false],
      ['https://index.docker.io/v1/', 'nginx', true],
      ['https://index.docker.io/v1/', 'Foo/bar', true],
      ['docker.io', 'index.docker.io/library/nginx', true],
    ];
    for (const [server, image, expected] of rows) {
      assert.equal(imageMatchesServer(image, server), expected, `${server} for ${image}`);
    }
  });

  it('orders candidates as Lookup does: keys in reverse byte order, then the Secrets’ order', () => {
    const lookup = lookupCredentials('registry.example.com:5000/team/app', [
      secret('a', { 'registry.example.com:5000': { username: 'host' } }),
      secret('b', {
        'registry.example.com:5000/team': { username: 'team' },
        '*.example.com:5000': { username: 'glob' },
      }),
      secret('c', { 'https://registry.example.com:5000/v2/': { username: 'host-again' } }),
    ]);
    assert.ok(lookup.ok);
    assert.deepEqual(
      lookup.candidates.map((c) => `${c.secret}/${c.username}`),
      ['b/team', 'a/host', 'c/host-again', 'b/glob'],
    );
  });

  it('one pull Secret the kubelet cannot parse fails the whole lookup', () => {
    const lookup = lookupCredentials('registry.example.com/app', [
      secret('good', { 'registry.example.com': { username: 'u' } }),
      secret('bad', { other: { auth: 'bm9jb2xvbg==' } }),
    ]);
    assert.deepEqual(
      lookup.ok
        ? 'ok'
        : [lookup.reason, lookup.ok === false && 'secret' in lookup ? lookup.secret : ''],
      ['UnreadableSecret', 'bad'],
    );
  });
});

// The rows below were each put to the kubelet's own code (test/kubelet-keyring/main.go through
// test/support/kubelet-keyring.ts) when they were written; the expectation is its answer.
const HEX64 = '0123456789abcdef'.repeat(4);

describe('image names as the kubelet reads them (ParseImageName)', () => {
  // [image, repository, tag, digest]; a repository of undefined: the kubelet refuses the image.
  const rows: Array<[string, string | undefined, string, string]> = [
    ['nginx:1.27', 'docker.io/library/nginx', '1.27', ''],
    ['docker.io/nginx', 'docker.io/library/nginx', 'latest', ''],
    ['index.docker.io/nginx', 'docker.io/library/nginx', 'latest', ''],
    ['library/nginx', 'docker.io/library/nginx', 'latest', ''],
    ['team/app', 'docker.io/team/app', 'latest', ''],
    ['a/b/c', 'docker.io/a/b/c', 'latest', ''],
    ['localhost', 'docker.io/library/localhost', 'latest', ''],
    ['localhost/app', 'localhost/app', 'latest', ''],
    ['localhost:5000/app', 'localhost:5000/app', 'latest', ''],
    ['Localhost/app', 'Localhost/app', 'latest', ''],
    ['r:5000/app', 'r:5000/app', 'latest', ''],
    ['R/app', 'R/app', 'latest', ''],
    ['[::1]:5000/app', '[::1]:5000/app', 'latest', ''],
    ['[::1]/app', '[::1]/app', 'latest', ''],
    ['r.example.com:5000/a:b', 'r.example.com:5000/a', 'b', ''],
    // Not a valid domain (an underscore): the whole name is the path, with no domain.
    ['r_x.example.com/a', 'r_x.example.com/a', 'latest', ''],
    ['a__b', 'docker.io/library/a__b', 'latest', ''],
    ['a--b', 'docker.io/library/a--b', 'latest', ''],
    [`nginx@sha256:${HEX64}`, 'docker.io/library/nginx', '', `sha256:${HEX64}`],
    [`nginx:1@sha256:${HEX64}`, 'docker.io/library/nginx', '1', `sha256:${HEX64}`],
    [
      `nginx@sha384:${HEX64}${HEX64.slice(0, 32)}`,
      'docker.io/library/nginx',
      '',
      `sha384:${HEX64}${HEX64.slice(0, 32)}`,
    ],
    // A 64-hex-digit name is an image ID, unless it has a domain.
    [HEX64, undefined, '', ''],
    [`${HEX64.slice(0, 63)}F`, undefined, '', ''],
    [`docker.io/${HEX64}`, `docker.io/library/${HEX64}`, 'latest', ''],
    ['r.example.com/App', undefined, '', ''],
    ['r.example.com/app/Sub', undefined, '', ''],
    [`nginx@sha256:${HEX64.toUpperCase()}`, undefined, '', ''],
    [`nginx@sha256:${HEX64.slice(1)}`, undefined, '', ''],
    [`nginx@sha512:${HEX64}`, undefined, '', ''],
    [`nginx@md5:${HEX64.slice(0, 32)}`, undefined, '', ''],
    ['-a/b', undefined, '', ''],
    ['a___b', undefined, '', ''],
    ['a.-b', undefined, '', ''],
    ['r.example.com/', undefined, '', ''],
    ['', undefined, '', ''],
    ['nginx:', undefined, '', ''],
    ['nginx:-x', undefined, '', ''],
    ['x/a:b:c', undefined, '', ''],
    // The path may be 255 characters long, not 256.
    [`r.example.com/${'a'.repeat(255)}`, `r.example.com/${'a'.repeat(255)}`, 'latest', ''],
    [`r.example.com/${'a'.repeat(256)}`, undefined, '', ''],
  ];
  for (const [image, repository, tag, digest] of rows) {
    const shown = image.length > 60 ? `${image.slice(0, 57)}...` : image;
    if (repository === undefined) {
      it(`refuses ${JSON.stringify(shown)}`, () => {
        assert.throws(() => parseImageReference(image), ImageReferenceError);
        const lookup = lookupCredentials(image, []);
        assert.equal(lookup.ok ? 'ok' : lookup.reason, 'InvalidImage');
      });
    } else {
      it(`${JSON.stringify(shown)} is ${repository.slice(0, 60)}, tag ${JSON.stringify(tag)}`, () => {
        const ref = parseImageReference(image);
        assert.deepEqual([ref.repository, ref.tag, ref.digest], [repository, tag, digest]);
      });
    }
  }
});

describe('which key matches which image (URLsMatchStr and the Docker Hub fallback)', () => {
  // [auths key, image, whether the kubelet offers that key's credential for the image]
  const rows: Array<[string, string, boolean]> = [
    // A glob matches one host label; a lone '*' is one label, so never a dotted host.
    ['*', 'localhost/app', true],
    ['*', 'localhost:5000/app', false],
    ['*', 'r/app', false],
    ['*.*.com', 'a.b.com/x', true],
    ['*.example.com', 'example.com/x', false],
    ['r*x.example.com', 'rabx.example.com/a', true],
    ['r*x.example.com', 'rab.example.com/a', false],
    ['*r*.example.com', 'xrx.example.com/a', true],
    ['r*.example.com', 'r.example.com/a', true],
    ['*x*y.example.com', 'axbxy.example.com/a', true],
    ['*a.example.com', 'bab.example.com/a', false],
    ['*:5000', 'r:5000/a', true],
    // '?' starts a query and '[' or '\' is no host character: such keys never match.
    ['r?.example.com', 'r1.example.com/a', false],
    ['r[0-9].example.com', 'r5.example.com/a', false],
    ['r\\x.example.com', 'rx.example.com/a', false],
    ['r.example.com:*', 'r.example.com:5000/a', false],
    // Ports must be equal, both absent included.
    ['r.example.com:5000', 'r.example.com/a', false],
    ['r.example.com', 'r.example.com:5000/a', false],
    ['r.example.com:5000', 'r.example.com:5000/a', true],
    ['[::1]:5000', '[::1]:5000/app', true],
    ['[::1]', '[::1]:5000/app', false],
    ['localhost', 'localhost/app', true],
    ['localhost:5000', 'localhost:5000/app', true],
    // The key's path is a string prefix of the image's (not a path-segment prefix).
    ['r.example.com/a', 'r.example.com/a', true],
    ['r.example.com/a', 'r.example.com/ab', true],
    ['r.example.com/a/', 'r.example.com/a', false],
    ['r.example.com/ab', 'r.example.com/a', false],
    ['r.example.com/', 'r.example.com/a', true],
    ['r.example.com/v2/a', 'r.example.com/a/b', true],
    ['r.example.com/v3/a', 'r.example.com/a', false],
    ['r.example.com:5000/a', 'r.example.com:5000/a/b', true],
    ['R.example.com', 'R/app', false],
    // Docker Hub: docker.io keys match by their path; index.docker.io is the fallback for every
    // image whose first part has no '.' or ':' (localhost and a capitalised name included).
    ['index.docker.io', 'nginx', true],
    ['index.docker.io', 'localhost/app', true],
    ['index.docker.io', 'R/app', true],
    ['index.docker.io', 'r.example.com/app', false],
    ['index.docker.io', 'r:5000/app', false],
    ['https://index.docker.io/v1/', 'localhost:5000/app', false],
    ['index.docker.io/library', 'nginx', false],
    ['docker.io', 'nginx', true],
    ['docker.io/library', 'nginx', true],
    ['docker.io/team', 'team/app', true],
    ['*.docker.io', 'nginx', false],
    // A host is matched label by label: a key's host is not a prefix of a longer one.
    ['r.example.com', 'r.example.com.evil/app', false],
    // One '*' matches any run of characters inside a label, however many there are.
    ['*a.example.com', 'baa.example.com/x', true],
    ['*a.example.com', 'aba.example.com/x', true],
    ['r**x.example.com', 'rabx.example.com/x', true],
    ['*ab.example.com', 'aab.example.com/x', true],
    ['a*b*c.example.com', 'axbyc.example.com/x', true],
    ['a*b*c.example.com', 'axbyb.example.com/x', false],
    ['*-*.example.com', 'a-b.example.com/x', true],
    ['*.example.com', 'a-b.example.com/x', true],
    ['**', 'R/x', true],
    ['R*', 'R/x', true],
    ['*R', 'R/x', true],
    ['*', 'R/x', true],
    ['r*r', 'r/x', false],
    // An IPv6 key whose zone is escaped twice is filed as "[::1%25...]"; read again to match,
    // the whole bracket is a filepath.Match character class: it matches a one-letter host.
    ['[::1%2525R]', 'R/app', true],
    // A literal U+FFFD in the class is a rune like any other (Go's DecodeRune: 3 bytes).
    ['[::1%2525\uFFFDR]', 'R/app', true],
    ['[::1%2525R]', 'X/app', false],
    ['[::1%2525A-Z]', 'Q/app', true],
    ['[::1%2525A-C]', 'Q/app', false],
    ['[::1%2525A-Z]', 'QQ/app', false],
    ['[::1%2525-R]', 'Q/app', true],
    ['[::1%2525-R]', 'S/app', false],
    ['[::1%2525-]', 'R/app', false],
    ['[::1%2525*]', 'R/app', false],
    ['[::1%2525]*]', 'R/app', false],
    ['[::1%2525]*]', '[::1]/app', false],
    ['[::1%2525*R]', 'R/app', true],
    ['[::1%2525S-Z]', 'R/app', false],
    ['[::1%2525A-C-R]', 'R/app', false],
    // A range may not end in ']': the whole pattern is malformed and matches nothing.
    ['[::1%2525A-]R]', 'Q/app', false],
    // Characters whose UTF-8 starts with 0xC2 or 0xE0 are single class members too.
    ['[::1%2525\u00a7R]', 'R/app', true],
    ['[::1%2525\u0905R]', 'R/app', true],
    ['[::1%2525\u00e9R]', 'R/app', true],
    // Characters of two, three and four UTF-8 bytes are one character of the class each.
    ['[::1%2525R\u00e9]', 'R/app', true],
    ['[::1%2525R\u20ac]', 'R/app', true],
    ['[::1%2525\ud83d\ude00R]', 'R/app', true],
    ['[::1%2525R-\u00e9]', 'S/app', true],
    ['[::1%2525\u00e9-R]', 'R/app', false],
    ['[::1%2525\u20ac-\u00e9]', 'R/app', false],
    ['[::1%2525R]/a', 'R/ab', true],
    ['[::1%2525R]/b', 'R/ab', false],
    ['[::1%2525R]:5000', 'R:5000/app', false],
    // Filed as "[::1%R]", a key Go's url.Parse refuses when the kubelet reads it again to match.
    ['[::1%25R]', 'R/app', false],
    ['[::1%25]]:5000', 'R:5000/app', false],
    [':5000', 'r:5000/app', false],
  ];
  for (const [server, image, expected] of rows) {
    it(`${JSON.stringify(server)} ${expected ? 'matches' : 'does not match'} ${image}`, () => {
      assert.equal(imageMatchesServer(image, server), expected);
      const lookup = lookupCredentials(image, [secret('s', { [server]: { username: 'u' } })]);
      assert.ok(lookup.ok);
      assert.deepEqual(
        lookup.candidates.map((c) => c.username),
        expected ? ['u'] : [],
      );
    });
  }
});

describe('what the kubelet reads from a pull Secret (encoding/json into its config types)', () => {
  const DCJ = 'kubernetes.io/dockerconfigjson';
  const CFG = 'kubernetes.io/dockercfg';
  const auths = (entry: unknown) => JSON.stringify({ auths: { 'r.example.com': entry } });
  // [story, Secret type, data key, the key's JSON text, the usernames offered for
  // r.example.com/app in order, or 'unreadable': the kubelet fails every pull of the Pod]
  const rows: Array<[string, string, string, string, string[] | 'unreadable']> = [
    [
      'username and password',
      DCJ,
      '.dockerconfigjson',
      auths({ username: 'u', password: 'p' }),
      ['u'],
    ],
    [
      'auth decoded wins over username',
      DCJ,
      '.dockerconfigjson',
      auths({ username: 'u', auth: 'YWI6Yw==' }),
      ['ab'],
    ],
    [
      'an empty auth is no auth',
      DCJ,
      '.dockerconfigjson',
      auths({ username: 'u', auth: '' }),
      ['u'],
    ],
    [
      'a null auth is no auth',
      DCJ,
      '.dockerconfigjson',
      auths({ username: 'u', auth: null }),
      ['u'],
    ],
    [
      'auth without a colon',
      DCJ,
      '.dockerconfigjson',
      auths({ auth: 'bm9jb2xvbg==' }),
      'unreadable',
    ],
    ['a number as username', DCJ, '.dockerconfigjson', auths({ username: 5 }), 'unreadable'],
    [
      'a number as email',
      DCJ,
      '.dockerconfigjson',
      auths({ username: 'u', email: 5 }),
      'unreadable',
    ],
    [
      'a number in a field it does not read',
      DCJ,
      '.dockerconfigjson',
      auths({ username: 'u', identitytoken: 5 }),
      ['u'],
    ],
    ['field names in any case', DCJ, '.dockerconfigjson', auths({ USERNAME: 'u' }), ['u']],
    [
      'the last of two spellings wins',
      DCJ,
      '.dockerconfigjson',
      '{"auths":{"r.example.com":{"username":"a","UserName":"b"}}}',
      ['b'],
    ],
    [
      'the other order',
      DCJ,
      '.dockerconfigjson',
      '{"auths":{"r.example.com":{"UserName":"b","username":"a"}}}',
      ['a'],
    ],
    ['long s folds to s', DCJ, '.dockerconfigjson', auths({ 'u\u017fername': 'u' }), ['u']],
    ['AUTHS', DCJ, '.dockerconfigjson', '{"AUTHS":{"r.example.com":{"username":"u"}}}', ['u']],
    ['a null entry is an empty login', DCJ, '.dockerconfigjson', auths(null), ['']],
    ['an array entry', DCJ, '.dockerconfigjson', auths([]), 'unreadable'],
    ['a string entry', DCJ, '.dockerconfigjson', auths('x'), 'unreadable'],
    ['auths an array', DCJ, '.dockerconfigjson', '{"auths":[]}', 'unreadable'],
    ['auths null', DCJ, '.dockerconfigjson', '{"auths":null}', []],
    ['no auths', DCJ, '.dockerconfigjson', '{}', []],
    ['the document null', DCJ, '.dockerconfigjson', 'null', []],
    ['the document an array', DCJ, '.dockerconfigjson', '[]', 'unreadable'],
    ['the document a string', DCJ, '.dockerconfigjson', '"x"', 'unreadable'],
    ['not JSON', DCJ, '.dockerconfigjson', '{', 'unreadable'],
    [
      'HttpHeaders of strings and nulls',
      DCJ,
      '.dockerconfigjson',
      '{"HttpHeaders":{"a":"b","c":null},"auths":{"r.example.com":{"username":"u"}}}',
      ['u'],
    ],
    [
      'HttpHeaders with a number',
      DCJ,
      '.dockerconfigjson',
      '{"httpheaders":{"a":1},"auths":{"r.example.com":{"username":"u"}}}',
      'unreadable',
    ],
    [
      'HttpHeaders an array',
      DCJ,
      '.dockerconfigjson',
      '{"httpheaders":[],"auths":{"r.example.com":{"username":"u"}}}',
      'unreadable',
    ],
    [
      'HttpHeaders a string',
      DCJ,
      '.dockerconfigjson',
      '{"httpheaders":"x","auths":{"r.example.com":{"username":"u"}}}',
      'unreadable',
    ],
    [
      'HttpHeaders null',
      DCJ,
      '.dockerconfigjson',
      '{"httpheaders":null,"auths":{"r.example.com":{"username":"u"}}}',
      ['u'],
    ],
    ['a dockerconfigjson Secret under .dockercfg', DCJ, '.dockercfg', auths({ username: 'u' }), []],
    ['an Opaque Secret', 'Opaque', '.dockerconfigjson', auths({ username: 'u' }), []],
    [
      'a dockercfg Secret (no auths wrapper)',
      CFG,
      '.dockercfg',
      '{"r.example.com":{"username":"u"}}',
      ['u'],
    ],
    ['a dockercfg Secret with an auths wrapper', CFG, '.dockercfg', auths({ username: 'u' }), []],
    ['a dockercfg Secret of an array', CFG, '.dockercfg', '[]', 'unreadable'],
    ['a dockercfg Secret of null', CFG, '.dockercfg', 'null', []],
    [
      'a dockercfg Secret under .dockerconfigjson',
      CFG,
      '.dockerconfigjson',
      '{"r.example.com":{"username":"u"}}',
      [],
    ],
    ['an empty value', DCJ, '.dockerconfigjson', '', []],
  ];
  for (const [story, type, key, json, expected] of rows) {
    it(`${story}: ${Array.isArray(expected) ? JSON.stringify(expected) : expected}`, () => {
      const pullSecret = { name: 's', type, data: { [key]: Buffer.from(json).toString('base64') } };
      const lookup = lookupCredentials('r.example.com/app', [pullSecret]);
      if (expected === 'unreadable') {
        assert.equal(lookup.ok ? 'ok' : lookup.reason, 'UnreadableSecret');
        assert.ok(!lookup.ok && lookup.message.includes('Secret s cannot be read by the kubelet'));
      } else {
        assert.ok(lookup.ok);
        assert.deepEqual(
          lookup.candidates.map((c) => c.username),
          expected,
        );
      }
    });
  }
});

describe('the order the kubelet tries candidates in (Lookup)', () => {
  it('a key that matches by itself keeps the Docker Hub fallback out', () => {
    const lookup = lookupCredentials('nginx', [
      secret('a', { 'index.docker.io': { username: 'hub' } }),
      secret('b', { 'docker.io': { username: 'docker' } }),
    ]);
    assert.ok(lookup.ok);
    assert.deepEqual(
      lookup.candidates.map((c) => [c.secret, c.username, c.key, c.dockerHubFallback]),
      [['b', 'docker', 'docker.io', false]],
    );
  });

  it('an image on localhost gets Docker Hub’s credential only when no key matches it', () => {
    const both = (local: string) =>
      lookupCredentials('localhost/app', [
        secret('a', { 'index.docker.io': { username: 'hub' }, [local]: { username: 'local' } }),
      ]);
    const matched = both('localhost');
    const fallback = both('localhost:5000');
    assert.ok(matched.ok && fallback.ok);
    assert.deepEqual(
      matched.candidates.map((c) => [c.username, c.dockerHubFallback]),
      [['local', false]],
    );
    assert.deepEqual(
      fallback.candidates.map((c) => [c.username, c.key, c.dockerHubFallback]),
      [['hub', 'index.docker.io', true]],
    );
  });

  it('a Secret listed twice is read twice; one the kubelet skips keeps the others’ positions', () => {
    const login = secret('a', { 'r.example.com': { username: 'x' } });
    const lookup = lookupCredentials('r.example.com/app', [
      login,
      { name: 'opaque', type: 'Opaque', data: {} },
      secret('c', { 'r.example.com': { username: 'y' } }),
      login,
    ]);
    assert.ok(lookup.ok);
    assert.deepEqual(
      lookup.candidates.map((c) => [c.secret, c.secretIndex, c.username, c.unorderedWith]),
      [
        ['a', 0, 'x', []],
        ['c', 2, 'y', []],
        ['a', 3, 'x', []],
      ],
    );
  });

  it('keys of one Secret filed under the same key come in Go map order: each names the others', () => {
    // The kubelet answered c,b,a and c,a,b for the same input: only the set is fixed.
    const lookup = lookupCredentials('r.example.com/app', [
      secret('other', { 'r.example.com': { username: 'other' } }),
      secret('a', {
        'r.example.com': { username: 'b' },
        'https://r.example.com': { username: 'a' },
        'http://r.example.com/v2/': { username: 'c' },
      }),
    ]);
    assert.ok(lookup.ok);
    assert.deepEqual(
      lookup.candidates.map((c) => [c.secret, c.key, c.server, c.hasPassword, c.unorderedWith]),
      [
        ['other', 'r.example.com', 'r.example.com', false, []],
        [
          'a',
          'r.example.com',
          'http://r.example.com/v2/',
          false,
          ['https://r.example.com', 'r.example.com'],
        ],
        [
          'a',
          'r.example.com',
          'https://r.example.com',
          false,
          ['http://r.example.com/v2/', 'r.example.com'],
        ],
        [
          'a',
          'r.example.com',
          'r.example.com',
          false,
          ['http://r.example.com/v2/', 'https://r.example.com'],
        ],
      ],
    );
  });

  it('the Docker Hub fallback has the same Go map order within a Secret', () => {
    const lookup = lookupCredentials('nginx', [
      secret('a', {
        'index.docker.io': { username: 'u2', password: 'p' },
        'https://index.docker.io/v1/': { username: 'u1' },
      }),
    ]);
    assert.ok(lookup.ok);
    assert.deepEqual(
      lookup.candidates.map((c) => [
        c.username,
        c.hasPassword,
        c.dockerHubFallback,
        c.unorderedWith,
      ]),
      [
        ['u1', false, true, ['index.docker.io']],
        ['u2', true, true, ['https://index.docker.io/v1/']],
      ],
    );
  });

  it('keys longer in byte order first: the whole path, a shorter path, the host, a glob', () => {
    const lookup = lookupCredentials('r.example.com/team/app', [
      secret('a', { '*.example.com': { username: 'glob' }, 'r.example.com': { username: 'host' } }),
      secret('b', {
        'r.example.com/team/app': { username: 'full' },
        'r.example.com/team': { username: 'team' },
      }),
    ]);
    assert.ok(lookup.ok);
    assert.deepEqual(
      lookup.candidates.map((c) => `${c.secret}/${c.username}`),
      ['b/full', 'b/team', 'a/host', 'a/glob'],
    );
  });
});

describe('the key the kubelet files an auths key under (BasicDockerKeyring.Add, Go’s url.Parse)', () => {
  // [auths key, keyring key; undefined: the kubelet ignores the entry]
  const rows: Array<[string, string | undefined]> = [
    // IPv6 literals and their zones
    ['[fe80::1%25en0]', '[fe80::1%en0]'],
    ['[fe80::1%25]', undefined],
    ['[fe80::1%en0]', undefined],
    ['[::1%2520x]', '[::1%20x]'],
    ['[::1%25%41]', '[::1%A]'],
    ['[::1%25%2F]', undefined],
    ['[::1%25%25]', '[::1%%]'],
    ['[::1%25%zz]', undefined],
    ['[::1%25a%2520]', '[::1%a%20]'],
    ['[::1%25a%20]', '[::1%a ]'],
    ['[%31::1%25en0]', undefined],
    ['[%66e80::1]', undefined],
    ['[fe80::1%25%C3%A9]', undefined],
    ['[::ffff:1.2.3.4]', '[::ffff:1.2.3.4]'],
    ['[::ffff:01.2.3.4]', undefined],
    ['[::ffff:1.2.3.04]', undefined],
    ['[1.2.3.4]', undefined],
    ['x[::1]', undefined],
    ['[::1]:', '[::1]:'],
    ['[::1]:x', undefined],
    ['[::%31]', undefined],
    ['[g::1]', undefined],
    ['[::1]]', undefined],
    ['[::1]:5000/v2/a', '[::1]:5000/a'],
    // user info is dropped when Go accepts it, and spoils the key when it does not
    ['u:p@r.example.com', 'r.example.com'],
    ['u:p%zz@r.example.com', undefined],
    ['u%41:p@r.example.com', 'r.example.com'],
    ['u:p%41@r.example.com', 'r.example.com'],
    ['u:%zz@r.example.com', undefined],
    ['u%zz:p@r.example.com', undefined],
    ['u:p:q@r.example.com', 'r.example.com'],
    ['a@b@r.example.com', 'r.example.com'],
    ['u/p@r.example.com', 'u/p@r.example.com'],
    ['u p@r.example.com', undefined],
    [':@r.example.com', 'r.example.com'],
    // queries and fragments are cut off, but a bad escape in a fragment spoils the key
    ['r.example.com#%zz', undefined],
    ['r.example.com/a#x', 'r.example.com/a'],
    ['r.example.com#x%41', 'r.example.com'],
    ['r.example.com/a?', 'r.example.com/a'],
    ['r.example.com/a??', 'r.example.com/a'],
    ['r.example.com/a?b?c', 'r.example.com/a'],
    ['r.example.com/a#?x', 'r.example.com/a'],
    ['r.example.com/a?%zz', 'r.example.com/a'],
    ['r.example.com?%zz#x', 'r.example.com'],
    ['r.example.com?a%#x', 'r.example.com'],
    ['r.example.com#\u0001', 'r.example.com'],
    // ports, /v1/ and /v2/, schemes
    ['r.example.com:5000:6000', undefined],
    ['r.example.com:', 'r.example.com:'],
    ['r.example.com/v1', 'r.example.com/v1'],
    ['r.example.com/v1/', 'r.example.com'],
    ['r.example.com/v2/', 'r.example.com'],
    ['/v2/x', '/x'],
    ['https://r.example.com/v2/a', 'r.example.com/a'],
    ['http://r.example.com', 'r.example.com'],
    ['HTTP://r.example.com', 'HTTP://r.example.com'],
    ['ftp://r.example.com', 'ftp://r.example.com'],
    // escapes
    ['r.example.com/%7e', 'r.example.com/~'],
    ['r%2Eexample.com', undefined],
    ['r.example.com/a%2', undefined],
    ['r.example.com/a%', undefined],
    ['%', undefined],
    ['r.example.com/\u00e9', 'r.example.com/\u00e9'],
    ['reg\u00e9.example.com', 'reg\u00e9.example.com'],
    ['r\u0080.example.com', 'r\u0080.example.com'],
    ['[::1%25]]:5000', '[::1%]]:5000'],
    ['[::1%25[]:5000', undefined],
    [':5000', ':5000'],
  ];
  for (const [server, key] of rows) {
    it(`${JSON.stringify(server)} → ${key === undefined ? 'ignored' : JSON.stringify(key)}`, () => {
      const read = readPullSecret(secret('s', { [server]: { username: 'u' } }));
      assert.ok(read.readable);
      assert.deepEqual(
        read.entries.map((e) => [e.server, e.key]),
        [[server, key]],
      );
    });
  }
});

describe('why an image is refused, in the words explain prints', () => {
  const rows: Array<[string, RegExp]> = [
    [HEX64, /a 64-character hexadecimal string is not a name/],
    ['r.example.com/App', /the repository name must be lowercase/],
    ['a___b', /invalid reference format/],
    [`r.example.com/${'a'.repeat(256)}`, /the repository name is over 255 characters/],
    [`nginx@md5:${HEX64.slice(0, 32)}`, /unsupported digest algorithm md5/],
    [`nginx@sha256:${HEX64.slice(1)}`, /invalid digest/],
    [`nginx@sha256:${HEX64.toUpperCase()}`, /invalid digest/],
    [`nginx@sha256:A${HEX64.slice(1)}`, /invalid digest/],
    ['r.example.com/apP', /the repository name must be lowercase/],
    ['r.example.com/:X', /invalid reference format/],
  ];
  for (const [image, reason] of rows) {
    it(`${image.slice(0, 40)}: ${reason.source}`, () => {
      const lookup = lookupCredentials(image, []);
      assert.ok(!lookup.ok && lookup.reason === 'InvalidImage');
      assert.match(lookup.message, /^cannot parse image reference "/);
      assert.match(lookup.message, reason);
    });
  }
});

describe('whether a login has a password (what explain reports, never the password itself)', () => {
  const rows: Array<[string, unknown, boolean]> = [
    ['username and password', { username: 'u', password: 'p' }, true],
    ['an empty password', { username: 'u', password: '' }, false],
    ['no password', { username: 'u' }, false],
    ['auth with a password', { auth: Buffer.from('u:p').toString('base64') }, true],
    [
      'auth with an empty password',
      { auth: Buffer.from('u:').toString('base64'), password: 'p' },
      false,
    ],
  ];
  for (const [story, entry, hasPassword] of rows) {
    it(`${story}: ${hasPassword}`, () => {
      const lookup = lookupCredentials('r.example.com/app', [
        secret('s', { 'r.example.com': entry }),
      ]);
      assert.ok(lookup.ok);
      assert.deepEqual(
        lookup.candidates.map((c) => [c.username, c.hasPassword]),
        [['u', hasPassword]],
      );
    });
  }
});

describe('how a key compares with an image, part by part (explain’s near misses)', () => {
  // [key, repository, host, port, path, key port, image port, key path, image path]
  const rows: Array<[string, string, boolean, boolean, boolean, string, string, string, string]> = [
    ['r.example.com:5000', 'r.example.com/app', true, false, true, '5000', '', '', '/app'],
    [':5000', 'r:5000/app', false, true, true, '5000', '5000', '', '/app'],
    ['*.example.com/team', 'a.b.example.com/team/x', false, true, true, '', '', '/team', '/team/x'],
    ['r.example.com/teams', 'r.example.com/team/x', true, true, false, '', '', '/teams', '/team/x'],
    ['[::1]:5000', '[::1]:5000/app', true, true, true, '5000', '5000', '', '/app'],
  ];
  for (const [key, repository, host, port, path, keyPort, imagePort, keyPath, imagePath] of rows) {
    it(`${key} against ${repository}`, () => {
      assert.deepEqual(compareKeyToRepository(key, repository), {
        matches: host && port && path,
        hostMatches: host,
        portMatches: port,
        pathMatches: path,
        keyPort,
        imagePort,
        keyPath,
        imagePath,
      });
    });
  }

  it('a key the kubelet cannot read again compares with nothing', () => {
    assert.equal(compareKeyToRepository('[::1%R]', 'R/app'), undefined);
  });
});

describe('why the kubelet cannot read a pull Secret, in the words explain prints', () => {
  const DCJ = 'kubernetes.io/dockerconfigjson';
  const CFG = 'kubernetes.io/dockercfg';
  // [Secret type, data key, JSON text, reason]; each is a Secret the kubelet fails pulls for.
  const rows: Array<[string, string, string, string]> = [
    [DCJ, '.dockerconfigjson', '{', 'it is not valid JSON'],
    [DCJ, '.dockerconfigjson', '[]', 'the config is not a JSON object'],
    [CFG, '.dockercfg', '"x"', 'the config is not a JSON object'],
    [DCJ, '.dockerconfigjson', '{"auths":[]}', 'auths is not a JSON object'],
    [
      DCJ,
      '.dockerconfigjson',
      '{"httpheaders":{"a":"b","c":1}}',
      'HttpHeaders is not an object of strings',
    ],
    [DCJ, '.dockerconfigjson', '{"auths":{"r.example.com":[]}}', 'an auths entry is not an object'],
    [
      DCJ,
      '.dockerconfigjson',
      '{"auths":{"r.example.com":{"email":5}}}',
      "an auths entry's email is not a string",
    ],
    [
      DCJ,
      '.dockerconfigjson',
      '{"auths":{"r.example.com":{"auth":"bm9jb2xvbg=="}}}',
      "an auths entry's auth is not base64 of user:password",
    ],
  ];
  for (const [type, key, json, reason] of rows) {
    it(`${json}: ${reason}`, () => {
      const pullSecret = {
        name: 'team-pull',
        type,
        data: { [key]: Buffer.from(json).toString('base64') },
      };
      assert.deepEqual(readPullSecret(pullSecret), { readable: false, reason });
      const lookup = lookupCredentials('r.example.com/app', [pullSecret]);
      assert.deepEqual(lookup, {
        ok: false,
        reason: 'UnreadableSecret',
        secret: 'team-pull',
        message: `Secret team-pull cannot be read by the kubelet (${reason}), so it fails every pull of the Pod`,
      });
    });
  }
});

describe('which pull Secrets the kubelet uses at all', () => {
  const encoded = (json: string) => Buffer.from(json).toString('base64');
  it('one of another type, or without its type’s key, is skipped (not an error)', () => {
    const skippedSecrets: PullSecret[] = [
      { name: 's', type: 'Opaque', data: { '.dockercfg': encoded('{"r.example.com":{}}') } },
      { name: 's', type: 'Opaque', data: { '.dockerconfigjson': encoded('{"auths":{}}') } },
      { name: 's', type: 'kubernetes.io/dockerconfigjson', data: {} },
      { name: 's', type: 'kubernetes.io/dockercfg' },
    ];
    for (const skipped of skippedSecrets) {
      assert.deepEqual(readPullSecret(skipped), { readable: true, used: false, entries: [] });
    }
  });

  it('one of the right type with no logins is used, and offers nothing', () => {
    const empty: Array<[string, string, string]> = [
      ['kubernetes.io/dockerconfigjson', '.dockerconfigjson', '{}'],
      ['kubernetes.io/dockerconfigjson', '.dockerconfigjson', '{"auths":null}'],
      ['kubernetes.io/dockercfg', '.dockercfg', 'null'],
    ];
    for (const [type, key, json] of empty) {
      assert.deepEqual(readPullSecret({ name: 's', type, data: { [key]: encoded(json) } }), {
        readable: true,
        used: true,
        entries: [],
      });
    }
  });

  it('a null login is an empty one: no user, no password', () => {
    assert.deepEqual(readPullSecret(secret('s', { 'r.example.com': null })), {
      readable: true,
      used: true,
      entries: [
        { server: 'r.example.com', key: 'r.example.com', username: '', hasPassword: false },
      ],
    });
  });
});

describe('a login without a user name, and images nobody can pull', () => {
  it('a password alone is offered with an empty user name', () => {
    const lookup = lookupCredentials('r.example.com/app', [
      secret('s', { 'r.example.com': { password: 'p' } }),
    ]);
    assert.ok(lookup.ok);
    assert.deepEqual(
      lookup.candidates.map((c) => [c.username, c.hasPassword]),
      [['', true]],
    );
  });

  it('an image the kubelet refuses matches no server, not even Docker Hub’s fallback', () => {
    for (const server of ['index.docker.io', '*', 'r.example.com']) {
      assert.equal(imageMatchesServer('r.example.com/App', server), false);
      assert.equal(imageMatchesServer('NGINX', server), false);
    }
  });
});

describe('how explain lists a Secret’s logins under one key', () => {
  it('by server, whatever order the Secret wrote them in', () => {
    const lookup = lookupCredentials('r.example.com/app', [
      secret('a', {
        'https://r.example.com': { username: 'a' },
        'r.example.com': { username: 'b' },
        'http://r.example.com/v2/': { username: 'c' },
      }),
    ]);
    assert.ok(lookup.ok);
    assert.deepEqual(
      lookup.candidates.map((c) => c.server),
      ['http://r.example.com/v2/', 'https://r.example.com', 'r.example.com'],
    );
  });
});

// The kubelet's credential matching, held to the kubelet's own code: fast-check generates pull
// Secrets (auths keys with and without scheme, user info, `*` and other globs in host labels,
// ports, paths, /v1/ and /v2/, queries and fragments, Docker Hub's names; padded, unpadded and
// broken `auth`; legacy .dockercfg) and images (Docker Hub short forms, domains, ports, tags,
// digests, invalid references), and src/credentials/kubelet-keyring.ts must give the same keys,
// the same parsed references and the same ordered candidates as secrets.MakeDockerKeyring, the
// keyring's Lookup and parsers.ParseImageName run by test/kubelet-keyring/main.go. All cases go
// through one process. A disagreement fails with the case (and fast-check's seed to replay it).
import assert from 'node:assert/strict';
import fc from 'fast-check';
import {
  type KeyringCandidate,
  kubeletKeyringKey,
  lookupCredentials,
  parseImageReference,
} from '../../src/credentials/kubelet-keyring.ts';
import {
  type KubeletAnswer,
  type KubeletCase,
  KubeletKeyring,
} from '../support/kubelet-keyring.ts';

/** Cases (each several servers × images); REGCRED_KEYRING_CASES overrides. */
const CASES = Number(process.env.REGCRED_KEYRING_CASES ?? 5000);
const SEED = Number(process.env.REGCRED_KEYRING_SEED ?? Date.now() % 2_147_483_647);

function say(line: string): void {
  process.stdout.write(`      ${line}\n`);
}

const HEX64 = 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855';
const LABELS = ['registry', 'example', 'com', 'io', 'a', 'b-c', 'gcr', 'quay', 'x1', 'docker'];
const SPECIAL_HOSTS = [
  'docker.io',
  'index.docker.io',
  'registry-1.docker.io',
  'localhost',
  '10.0.0.1',
  '[::1]',
  '[fe80::1]',
  'Registry.Example.com',
  'REG',
  'foo',
];
/** Host label globs filepath.Match reads, and a few it refuses (ErrBadPattern: no match). */
const GLOBS = ['*', '*', 'reg*', '*y', '?', 'r?gistry', '[a-z]*', '[^a]*', '**', '*.*'];
const BAD_GLOBS = ['[!r]*', 'a[', '\\*', '[]a]', '[a-'];
const labelGlobArb = fc.oneof(
  { weight: 16, arbitrary: fc.constant(undefined) },
  { weight: 4, arbitrary: fc.constantFrom(...GLOBS) },
  { weight: 1, arbitrary: fc.constantFrom(...BAD_GLOBS) },
);

const hostArb = fc.oneof(
  {
    weight: 3,
    arbitrary: fc
      .array(fc.constantFrom(...LABELS), { minLength: 1, maxLength: 4 })
      .map((l) => l.join('.')),
  },
  { weight: 1, arbitrary: fc.constantFrom(...SPECIAL_HOSTS) },
);
const portArb = fc.constantFrom('', '', '', ':5000', ':443', ':80', ':');

const globHostArb = fc
  .tuple(hostArb, fc.array(labelGlobArb, { minLength: 4, maxLength: 4 }))
  .map(([host, globs]) =>
    host.startsWith('[')
      ? host
      : host
          .split('.')
          .map((label, i) => globs[i] ?? label)
          .join('.'),
  );

const serverArb = fc.oneof(
  {
    weight: 12,
    arbitrary: fc
      .record({
        scheme: fc.constantFrom('', '', '', 'https://', 'http://', 'HTTPS://'),
        user: fc.constantFrom('', '', '', '', '', 'u@', 'u:p@'),
        host: globHostArb,
        port: portArb,
        path: fc.constantFrom(
          '',
          '',
          '',
          '/',
          '/v1/',
          '/v2/',
          '/v2',
          '/team',
          '/team/',
          '/team/app',
          '/v2/team',
          '/te',
          '/TEAM',
          '/a%2Fb',
          '/%zz',
          '//',
          '/library',
          '/library/nginx',
          '/v2/library',
        ),
        suffix: fc.constantFrom('', '', '', '', '?q', '#f', '?', '#%zz'),
      })
      .map((s) => ({
        server: s.scheme + s.user + s.host + s.port + s.path + s.suffix,
        // An image on this registry, glob labels made concrete: most cases then have candidates.
        image: `${s.host.replace(/[^.]*[*?[\\][^.]*/g, 'registry')}${s.port}${s.path
          .replace(/^\/v[12]\//, '/')
          .replace(/[^a-z/]/g, '')
          .replace(/\/+$/, '')}/app:1.0`,
      })),
  },
  {
    weight: 1,
    arbitrary: fc
      .constantFrom(
        '',
        '*',
        'a:b:c',
        '[1.2.3.4]',
        'r%41.com',
        'reg%C3%A9.com',
        ' r.com',
        'r.com\t',
        'https://index.docker.io/v1/',
        'docker.io',
        'index.docker.io',
        '[::1]:5000',
        '[fe80::1%25en0]',
        'ftp://r.com',
      )
      .map((server) => ({ server, image: undefined as string | undefined })),
  },
);

const imageArb = fc.oneof(
  {
    weight: 10,
    arbitrary: fc
      .record({
        domain: fc.oneof(
          { weight: 1, arbitrary: fc.constant('') },
          { weight: 3, arbitrary: fc.tuple(hostArb, portArb).map(([h, p]) => h + p) },
        ),
        path: fc.array(
          fc.constantFrom(
            'team',
            'app',
            'te',
            'library',
            'nginx',
            'v2',
            'teamx',
            'a.b',
            'a__b',
            'x-y',
          ),
          { minLength: 1, maxLength: 3 },
        ),
        tag: fc.constantFrom('', '', '', ':1.0', ':latest', ':V_1'),
        digest: fc.constantFrom('', '', '', '', `@sha256:${HEX64}`, `@sha512:${HEX64}${HEX64}`),
        // Now and then something ParseImageName refuses.
        flaw: fc.oneof(
          { weight: 12, arbitrary: fc.constant('') },
          {
            weight: 1,
            arbitrary: fc.constantFrom(
              '/Team',
              '/_x',
              ':-bad',
              `@sha256:${HEX64.slice(1)}`,
              `@md5:${HEX64.slice(32)}`,
              `@sha256:${HEX64.toUpperCase()}`,
              '//x',
            ),
          },
        ),
      })
      .map(
        (i) =>
          `${i.domain === '' ? '' : `${i.domain}/`}${i.path.join('/')}${i.flaw.startsWith('/') ? i.flaw : ''}${i.tag}${i.flaw.startsWith('/') ? '' : i.flaw}${i.digest}`,
      ),
  },
  {
    weight: 1,
    arbitrary: fc.constantFrom(
      HEX64,
      'nginx',
      'NGINX',
      'localhost:5000',
      'localhost/x',
      'docker.io/nginx',
      'index.docker.io/library/nginx',
      'docker.io/library/nginx',
      'library/nginx',
      'ubuntu:22.04',
      'Foo/bar',
      `x.io/a/b@sha256:${HEX64}`,
      ':tag',
      '/x',
      '',
      'registry.example.com:5000/team/app:1.0',
    ),
  },
);

const ENTRY_KINDS = [
  'username',
  'username',
  'username',
  'authPadded',
  'authUnpadded',
  'authLineBreak',
  'usernameAndAuth',
  'UsernameField',
  'null',
  'authBad',
  'authNoColon',
  'numberUsername',
] as const;
type EntryKind = (typeof ENTRY_KINDS)[number];

const secretArb = fc.record({
  type: fc.constantFrom(
    'kubernetes.io/dockerconfigjson',
    'kubernetes.io/dockerconfigjson',
    'kubernetes.io/dockerconfigjson',
    'kubernetes.io/dockerconfigjson',
    'kubernetes.io/dockercfg',
    'Opaque',
    'mismatched',
  ),
  wrapper: fc.oneof(
    { weight: 40, arbitrary: fc.constantFrom('auths', 'AUTHS') },
    { weight: 1, arbitrary: fc.constantFrom('null', 'notJson', 'array', 'badHeaders') },
  ),
  entries: fc.array(
    fc.record({
      server: serverArb,
      imageFromServer: fc.integer({ min: 0, max: 3 }).map((x) => x > 0),
      kind: fc.oneof(
        { weight: 60, arbitrary: fc.constantFrom(...ENTRY_KINDS.slice(0, 8)) },
        { weight: 1, arbitrary: fc.constantFrom(...ENTRY_KINDS.slice(8)) },
      ),
      password: fc.constantFrom('p', 'pw', 'pwd'),
    }),
    { minLength: 1, maxLength: 4 },
  ),
  twice: fc.integer({ min: 0, max: 14 }).map((x) => x === 0),
});

interface GeneratedCase {
  question: KubeletCase;
  /** Each entry's username (unique in the case) → its auths key. */
  serverOf: Map<string, string>;
  /** The configs as JSON, to print a failing case readably. */
  configs: Record<string, string>;
}

const b64 = (text: string) => Buffer.from(text, 'utf8').toString('base64');

function entryObject(kind: EntryKind, username: string, password: string): unknown {
  const auth = b64(`${username}:${password}`);
  switch (kind) {
    case 'username':
      return { username, password };
    case 'authPadded':
      return { auth };
    case 'authUnpadded':
      return { auth: auth.replace(/=+$/, '') };
    case 'authLineBreak':
      return { auth: `${auth.slice(0, 3)}\n${auth.slice(3)}` };
    case 'usernameAndAuth':
      return { username: `x${username}`, password: 'other', auth };
    case 'UsernameField':
      return { Username: username, PASSWORD: password };
    case 'null':
      return null;
    case 'authBad':
      return { auth: '!!!!' };
    case 'authNoColon':
      return { auth: b64('nocolon') };
    case 'numberUsername':
      return { username: 5 };
  }
}

const caseArb = fc
  .record({
    secrets: fc.array(secretArb, { minLength: 1, maxLength: 3 }),
    images: fc.array(imageArb, { minLength: 1, maxLength: 4 }),
  })
  .map(({ secrets, images }): GeneratedCase => {
    const serverOf = new Map<string, string>();
    const configs: Record<string, string> = {};
    const question: KubeletCase = { secrets: [], images: [...images], servers: [] };
    let n = 0;
    secrets.forEach((secret, i) => {
      const name = `s${i}`;
      const auths: Record<string, unknown> = {};
      for (const entry of secret.entries) {
        // A null entry has no username to tell it by: only alone in its Secret.
        const kind = entry.kind === 'null' && secret.entries.length > 1 ? 'username' : entry.kind;
        const username = `u${n++}`;
        const { server, image } = entry.server;
        auths[server] = entryObject(kind, username, entry.password);
        serverOf.set(username, server);
        question.servers.push(server);
        if (image !== undefined && entry.imageFromServer) question.images.push(image);
      }
      const config =
        secret.type === 'kubernetes.io/dockercfg'
          ? JSON.stringify(auths)
          : secret.wrapper === 'auths'
            ? JSON.stringify({ auths })
            : secret.wrapper === 'AUTHS'
              ? JSON.stringify({ AUTHS: auths, HttpHeaders: { 'X-A': 'b' } })
              : secret.wrapper === 'null'
                ? 'null'
                : secret.wrapper === 'notJson'
                  ? '{"auths":'
                  : secret.wrapper === 'array'
                    ? '[]'
                    : JSON.stringify({ auths, HttpHeaders: { 'X-A': 1 } });
      configs[name] = config;
      const key =
        secret.type === 'kubernetes.io/dockercfg' || secret.type === 'mismatched'
          ? '.dockercfg'
          : '.dockerconfigjson';
      const type = secret.type === 'mismatched' ? 'kubernetes.io/dockerconfigjson' : secret.type;
      const pullSecret = { name, type, data: { [key]: b64(config) } };
      question.secrets.push(pullSecret);
      if (secret.twice) question.secrets.push(pullSecret);
    });
    return { question, serverOf, configs };
  });

/**
 * Candidates of one Secret under one keyring key come in Go map order, which changes from run to
 * run: both sides are compared with each such run sorted by username.
 */
function canonical(
  candidates: ReadonlyArray<{ secret: string; username: string }>,
  keyOf: (username: string) => string,
): string[] {
  const out: string[][] = [];
  let previous = '';
  for (const c of candidates) {
    const group = `${c.secret}\u0000${keyOf(c.username)}`;
    if (out.length === 0 || group !== previous) out.push([]);
    out[out.length - 1]?.push(`${c.secret}/${c.username}`);
    previous = group;
  }
  return out.flatMap((run) => run.sort());
}

function compareCase(generated: GeneratedCase, answer: KubeletAnswer): void {
  const { question, serverOf } = generated;
  for (const server of question.servers) {
    assert.equal(
      kubeletKeyringKey(server) ?? null,
      answer.keys[server] ?? null,
      `keyring key of ${JSON.stringify(server)}`,
    );
  }
  const keyOf = (username: string) => {
    const server = serverOf.get(username);
    return server === undefined ? `?${username}` : String(answer.keys[server]);
  };
  for (const [i, image] of question.images.entries()) {
    const kubelet = answer.images[i];
    assert.ok(kubelet, `no answer for image ${image}`);
    let parsed: ReturnType<typeof parseImageReference> | undefined;
    try {
      parsed = parseImageReference(image);
    } catch {
      parsed = undefined;
    }
    assert.equal(
      parsed === undefined,
      kubelet.parseError,
      `ParseImageName(${JSON.stringify(image)}) fails`,
    );
    if (!parsed) continue;
    assert.deepEqual(
      { repository: parsed.repository, tag: parsed.tag, digest: parsed.digest },
      { repository: kubelet.repository, tag: kubelet.tag, digest: kubelet.digest },
      `ParseImageName(${JSON.stringify(image)})`,
    );
    const lookup = lookupCredentials(image, question.secrets);
    assert.ok(lookup.ok || lookup.reason === 'UnreadableSecret', `lookup of ${image}`);
    assert.equal(!lookup.ok, answer.keyringError, 'MakeDockerKeyring fails');
    const ours: KeyringCandidate[] = lookup.ok ? lookup.candidates : [];
    assert.deepEqual(
      canonical(ours, keyOf),
      canonical(kubelet.candidates, keyOf),
      `candidates for ${JSON.stringify(image)} (repository ${kubelet.repository})`,
    );
  }
}

describe('the kubelet’s credential matching, against the kubelet’s own code', function () {
  this.timeout(15 * 60_000);
  let kubelet: KubeletKeyring;

  before(async () => {
    kubelet = await KubeletKeyring.start();
  });

  after(async () => {
    await kubelet?.close();
  });

  it(`gives the same keys, references and ordered candidates for ${CASES} generated cases`, async () => {
    const started = Date.now();
    let pairs = 0;
    let candidates = 0;
    let matchedPairs = 0;
    let images = 0;
    let parseErrors = 0;
    let keyringErrors = 0;
    say(`seed ${SEED} (REGCRED_KEYRING_SEED replays it)`);
    await fc.assert(
      fc.asyncProperty(caseArb, async (generated) => {
        const answer = await kubelet.ask(generated.question);
        try {
          compareCase(generated, answer);
        } catch (error) {
          const shown = { ...generated.question, secrets: undefined, configs: generated.configs };
          throw new Error(
            `${(error as Error).message}\ncase: ${JSON.stringify(shown)}\nsecrets: ${JSON.stringify(
              generated.question.secrets.map((s) => ({
                name: s.name,
                type: s.type,
                key: Object.keys(s.data)[0],
              })),
            )}\nkubelet: ${JSON.stringify(answer)}`,
          );
        }
        pairs += generated.question.servers.length * generated.question.images.length;
        if (answer.keyringError) keyringErrors++;
        for (const image of answer.images) {
          images++;
          if (image.parseError) parseErrors++;
          candidates += image.candidates.length;
          if (image.candidates.length > 0) matchedPairs++;
        }
      }),
      { numRuns: CASES, seed: SEED, endOnFailure: false },
    );
    say(
      `${CASES} cases (${keyringErrors} with a pull Secret the kubelet cannot read), ${pairs} servers × images, ${images} images (${parseErrors} refused by ParseImageName), ${matchedPairs} with candidates (${candidates} candidates), ${kubelet.answered} answers from one process, ${((Date.now() - started) / 1000).toFixed(1)} s`,
    );
    assert.ok(pairs >= 5000, `only ${pairs} servers × images`);
    assert.ok(
      matchedPairs > CASES / 10,
      `too few images had candidates (${matchedPairs}) to compare orders`,
    );
  });
});

// The kubelet's credential matching where it surprises people, each row checked against the
// kubelet's own code by test/integration/kubelet-keyring-differential.test.ts's program.
import assert from 'node:assert/strict';
import {
  imageMatchesServer,
  lookupCredentials,
  type PullSecret,
  parseImageReference,
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

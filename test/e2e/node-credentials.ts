// The credentials a node pulls with for a Pod that runs as a ServiceAccount, found the way the
// kubelet finds them: the ServiceAccount's imagePullSecrets (which admission copies into the
// Pod), each a `kubernetes.io/dockerconfigjson` Secret in the Pod's namespace, each entry's
// `auth` taking precedence over `username`/`password`.
import { writeFile } from 'node:fs/promises';
import type { Fixtures } from '../support/fixtures.ts';

export interface NodeCredential {
  username: string;
  password: string;
}

interface DockerConfigEntry {
  username?: string;
  password?: string;
  auth?: string;
}

function kubeletEntry(entry: DockerConfigEntry): NodeCredential {
  if (!entry.auth) return { username: entry.username ?? '', password: entry.password ?? '' };
  const decoded = Buffer.from(entry.auth, 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  if (colon < 0) throw new Error('an auths entry has an `auth` that is not base64(user:password)');
  return { username: decoded.slice(0, colon), password: decoded.slice(colon + 1) };
}

/**
 * server → credential for a Pod running as `serviceAccount` in `namespace`. Missing Secrets and
 * Secrets of another type are skipped, as the kubelet skips them; when two Secrets name the same
 * server, the first is kept (the kubelet would try both in turn, one auth file holds one).
 */
export async function nodePullCredentials(
  f: Fixtures,
  namespace: string,
  serviceAccount = 'default',
): Promise<Map<string, NodeCredential>> {
  const credentials = new Map<string, NodeCredential>();
  for (const name of await f.pullSecretNames(namespace, serviceAccount)) {
    const secret = await f.secret(namespace, name);
    const data = secret?.data?.['.dockerconfigjson'];
    if (secret?.type !== 'kubernetes.io/dockerconfigjson' || !data) continue;
    const config = JSON.parse(Buffer.from(data, 'base64').toString('utf8')) as {
      auths?: Record<string, DockerConfigEntry>;
    };
    for (const [server, entry] of Object.entries(config.auths ?? {})) {
      if (!credentials.has(server)) credentials.set(server, kubeletEntry(entry));
    }
  }
  return credentials;
}

/** Writes credentials as a containers-auth.json / docker config.json file; returns its path. */
export async function writeAuthFile(
  path: string,
  credentials: Map<string, NodeCredential>,
): Promise<string> {
  const auths: Record<string, { auth: string }> = {};
  for (const [server, { username, password }] of credentials) {
    auths[server] = { auth: Buffer.from(`${username}:${password}`).toString('base64') };
  }
  await writeFile(path, JSON.stringify({ auths }), { mode: 0o600 });
  return path;
}

// Which `auths` keys the kubelet treats as one registry. Its keyring (kubernetes
// pkg/credentialprovider/keyring.go, BasicDockerKeyring.Add) turns each key into a lookup key:
// the scheme is dropped, Go's url.Parse takes the host and the unescaped path, and a leading
// `/v1/` or `/v2/` of the path is dropped. Two keys that end up equal hold two credentials for
// one registry, and which the kubelet tries first follows Go's map order. The keyring key itself
// is kubelet-keyring.ts's (the one implementation of the kubelet's rules).
import { compareCodeUnits } from './dockerconfigjson.ts';
import { CredentialError } from './errors.ts';
import { kubeletKeyringKey } from './kubelet-keyring.ts';

const DOCKER_HUB_HOSTS = new Set(['docker.io', 'index.docker.io']);

export { kubeletKeyringKey };

/**
 * The registry a key stands for: the kubelet's keyring key, with the host's case folded (DNS
 * does not distinguish it; a key in other case than the image name never matches) and Docker
 * Hub's two names as one (a `docker.io` key makes the kubelet ignore an `index.docker.io` one).
 */
export function registryIdentity(server: string): string {
  const key = kubeletKeyringKey(server);
  if (key === undefined) return server;
  const slash = key.indexOf('/');
  const host = (slash < 0 ? key : key.slice(0, slash)).toLowerCase();
  const path = slash < 0 ? '' : key.slice(slash);
  if (path === '' && DOCKER_HUB_HOSTS.has(host)) return 'docker.io';
  return host + path;
}

/** Refuses two explicit servers the kubelet would treat as one registry, naming both. */
export function assertDistinctServers(
  servers: ReadonlyArray<{ field: string; server: string }>,
): void {
  const seen = new Map<string, { field: string; server: string }>();
  for (const entry of servers) {
    const identity = registryIdentity(entry.server);
    const first = seen.get(identity);
    if (first) {
      throw new CredentialError(
        'InvalidSpec',
        `${first.field}.server ${first.server} and ${entry.field}.server ${entry.server} are the same registry to the kubelet (${identity}); keep one`,
      );
    }
    seen.set(identity, entry);
  }
}

/**
 * The imported keys to leave out, by registries index: a key whose registry an explicit server
 * names (that server wins, whatever the order), or a later import's key names (the later one
 * wins, as an exact duplicate always has). Within one import, keys are taken in code-unit
 * order. Servers are compared as registryIdentity sees them.
 */
export function shadowedKeys(
  registries: ReadonlyArray<{ server?: string; dockerConfig?: unknown }>,
  imported: ReadonlyMap<number, readonly string[]>,
): Map<number, Set<string>> {
  const explicit = new Set(
    registries.flatMap((r) =>
      r.server !== undefined && !r.dockerConfig ? [registryIdentity(r.server)] : [],
    ),
  );
  const shadowed = new Map<number, Set<string>>();
  const shadow = (index: number, server: string) => {
    const set = shadowed.get(index) ?? new Set<string>();
    set.add(server);
    shadowed.set(index, set);
  };
  const owner = new Map<string, { index: number; server: string }>();
  for (const index of [...imported.keys()].sort((a, b) => a - b)) {
    for (const server of [...(imported.get(index) ?? [])].sort(compareCodeUnits)) {
      const identity = registryIdentity(server);
      if (explicit.has(identity)) {
        shadow(index, server);
        continue;
      }
      const earlier = owner.get(identity);
      if (earlier) shadow(earlier.index, earlier.server);
      owner.set(identity, { index, server });
    }
  }
  return shadowed;
}

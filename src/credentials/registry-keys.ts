// Which `auths` keys the kubelet treats as one registry. Its keyring (kubernetes
// pkg/credentialprovider/keyring.go, BasicDockerKeyring.Add) turns each key into a lookup key:
// the scheme is dropped, Go's url.Parse takes the host and the unescaped path, and a leading
// `/v1/` or `/v2/` of the path is dropped. Two keys that end up equal hold two credentials for
// one registry, and which the kubelet tries first follows Go's map order.
import { compareCodeUnits } from './dockerconfigjson.ts';
import { CredentialError } from './errors.ts';

const DOCKER_HUB_HOSTS = new Set(['docker.io', 'index.docker.io']);
// biome-ignore lint/suspicious/noControlCharactersInRegex: Go's url.Parse refuses these
const CONTROL_CHARS = /[\u0000-\u001f\u007f]/;
/** What Go's url.Parse accepts in a host (unreserved, sub-delims, ':', '[', ']', '<', '>', '"'). */
const GO_HOST_CHARS = /^[A-Za-z0-9\-._~!$&'()*+,;=:[\]<>"%\u0080-\u{10ffff}]*$/u;

/**
 * The key the kubelet's keyring files an `auths` key under, exactly; undefined when Go's
 * url.Parse refuses it (the kubelet then ignores the entry).
 */
export function kubeletKeyringKey(server: string): string | undefined {
  let rest = server;
  // Case-sensitive, as in the keyring: "HTTPS://x" gets a second scheme in front.
  if (rest.startsWith('https://')) rest = rest.slice('https://'.length);
  else if (rest.startsWith('http://')) rest = rest.slice('http://'.length);
  if (CONTROL_CHARS.test(rest)) return undefined;
  rest = cutAt(rest, '#');
  rest = cutAt(rest, '?');
  const slash = rest.indexOf('/');
  const authority = slash < 0 ? rest : rest.slice(0, slash);
  const rawPath = slash < 0 ? '' : rest.slice(slash);
  const at = authority.lastIndexOf('@');
  if (at >= 0 && !validGoUserinfo(authority.slice(0, at))) return undefined;
  const rawHost = authority.slice(at + 1);
  if (!validGoHost(rawHost)) return undefined;
  // Go's URL.Host is unescaped, as is its Path.
  const host = unescapeGo(rawHost);
  const path = unescapeGo(rawPath);
  if (host === undefined || path === undefined) return undefined;
  const effectivePath = path.startsWith('/v2/') || path.startsWith('/v1/') ? path.slice(3) : path;
  return effectivePath.length > 0 && effectivePath !== '/' ? host + effectivePath : host;
}

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

function cutAt(text: string, separator: string): string {
  const at = text.indexOf(separator);
  return at < 0 ? text : text.slice(0, at);
}

/** Go's url.parseHost: an optional numeric port, an IPv6 literal in brackets, host characters. */
function validGoHost(host: string): boolean {
  if (host.startsWith('[')) {
    const close = host.indexOf(']');
    if (close < 0) return false;
    return validOptionalPort(host.slice(close + 1));
  }
  const colon = host.lastIndexOf(':');
  if (colon >= 0 && !validOptionalPort(host.slice(colon))) return false;
  if (!GO_HOST_CHARS.test(host)) return false;
  // In a host, '%' may only escape a non-ASCII byte, or be "%25".
  for (const match of host.matchAll(/%(.{0,2})/g)) {
    const hex = match[1] ?? '';
    if (!/^[0-9A-Fa-f]{2}$/.test(hex)) return false;
    if (Number.parseInt(hex, 16) < 0x80 && hex !== '25') return false;
  }
  return true;
}

/** Go's validUserinfo, and its escapes must decode. */
function validGoUserinfo(userinfo: string): boolean {
  return /^[A-Za-z0-9\-._:~!$&'()*+,;=%@]*$/.test(userinfo) && unescapeGo(userinfo) !== undefined;
}

function validOptionalPort(port: string): boolean {
  return port === '' || /^:[0-9]*$/.test(port);
}

/** Go's unescape: every '%' starts two hex digits; undefined when one does not. */
function unescapeGo(path: string): string | undefined {
  if (!path.includes('%')) return path;
  if (/%(?![0-9A-Fa-f]{2})/.test(path)) return undefined;
  const bytes: number[] = [];
  for (let i = 0; i < path.length; ) {
    if (path[i] === '%') {
      bytes.push(Number.parseInt(path.slice(i + 1, i + 3), 16));
      i += 3;
    } else {
      const codePoint = path.codePointAt(i) ?? 0;
      const char = String.fromCodePoint(codePoint);
      bytes.push(...Buffer.from(char, 'utf8'));
      i += char.length;
    }
  }
  return Buffer.from(bytes).toString('utf8');
}

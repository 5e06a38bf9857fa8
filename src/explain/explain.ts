// `kubectl regcred explain`: which credentials the kubelet tries for an image in a Pod (or for
// Pods of a ServiceAccount), and when none matches, why, most specific first. A pure function of
// what the caller could read; the command (src/cli/kubectl-regcred.ts) does the reading, and
// anything it could not read (403, 404) arrives here as such and is named in the answer.
// Never carries a password or an `auth`: candidates hold a username and nothing else secret.
import {
  CREDENTIAL_LABEL,
  type FailedNamespace,
  IGNORE_ANNOTATION,
  type RegistryCredential,
  SYSTEM_NAMESPACES,
} from '../api/types.ts';
import { type NamespaceInfo, namespaceSelection } from '../controller/selection.ts';
import {
  compareKeyToRepository,
  type ImageReference,
  imageMatchesServer,
  lookupCredentials,
  MAX_IMAGE_REFERENCE_LENGTH,
  type PullSecret,
  readPullSecret,
} from '../credentials/kubelet-keyring.ts';

/** What the caller got back for one read: the object, or why not. */
export type Read<T> =
  | { ok: true; value: T }
  | { ok: false; status: 'NotFound' | 'Forbidden' | 'Failed'; message: string };

export interface ExplainSecret extends PullSecret {
  labels?: Record<string, string>;
}

export interface ExplainInput {
  image: string;
  namespace: string;
  /** The Pod asked about, or the ServiceAccount whose future Pods are asked about. */
  subject:
    | {
        kind: 'Pod';
        name: string;
        pod: Read<{ serviceAccountName: string; pullSecrets: string[] }>;
      }
    | { kind: 'ServiceAccount'; name: string };
  serviceAccount: Read<{ name: string; pullSecrets: string[] }>;
  secrets: ReadonlyMap<string, Read<ExplainSecret>>;
  namespaceInfo: Read<NamespaceInfo>;
  credentials: Read<RegistryCredential[]>;
  now: Date;
}

export interface ExplainedCandidate {
  /** 1 is what the runtime tries first; it tries the next only when a pull with one fails. */
  rank: number;
  secret: string;
  /** The `auths` key that matched, as written in the Secret. */
  server: string;
  username: string;
  dockerHubFallback: boolean;
  /** Same Secret, same key: the kubelet orders these differently from pull to pull. */
  unorderedWith: string[];
  registryCredential?: string;
  expiresAt?: string;
  expired?: boolean;
}

export type ReasonCode =
  | 'InvalidImage'
  | 'PodPredatesServiceAccountEntry'
  | 'SecretMissing'
  | 'SecretUnreadable'
  | 'NamespaceIgnored'
  | 'NamespaceTerminating'
  | 'SystemNamespace'
  | 'NoRegistryCredentialTargetsNamespace'
  | 'NoRegistryCredentialForImage'
  | 'CredentialFailedInNamespace'
  | 'CredentialNotReady'
  | 'TokenExpired'
  | 'PortOrPathMismatch'
  | 'ServiceAccountMissing'
  | 'NoMatchingEntry'
  | 'NoPullSecrets';

export interface Reason {
  code: ReasonCode;
  message: string;
}

export interface Explanation {
  image: string;
  reference?: ImageReference;
  namespace: string;
  subject: string;
  /** The pull Secrets the kubelet reads, in its order. */
  pullSecrets: string[];
  candidates: ExplainedCandidate[];
  /** Most specific first; when candidates exist, only what may still make the pull fail. */
  reasons: Reason[];
  /** What the caller could not read, and so could not be taken into account. */
  unreadable: string[];
}

export function explain(input: ExplainInput): Explanation {
  const { subject, namespace } = input;
  const unreadable: string[] = [];
  const note = (what: string, read: Read<unknown>) => {
    if (!read.ok && read.status !== 'NotFound') unreadable.push(`${what}: ${read.message}`);
  };
  note(`ServiceAccount ${namespace}/${saName(input)}`, input.serviceAccount);
  note(`Namespace ${namespace}`, input.namespaceInfo);
  note('RegistryCredentials (cluster-scoped)', input.credentials);
  if (subject.kind === 'Pod') note(`Pod ${namespace}/${subject.name}`, subject.pod);

  const pullSecrets = pullSecretNames(input);
  const subjectText =
    subject.kind === 'Pod'
      ? `Pod ${namespace}/${subject.name} (ServiceAccount ${saName(input)})`
      : `ServiceAccount ${namespace}/${subject.name} (a Pod created now)`;
  // A Pod's image is its author's string: one longer than any valid reference is neither
  // parsed (not linear in its length) nor printed whole.
  const tooLong = input.image.length > MAX_IMAGE_REFERENCE_LENGTH;
  const image = tooLong
    ? `${input.image.slice(0, 120)}… (${input.image.length} characters)`
    : input.image;
  const base = { image, namespace, subject: subjectText, pullSecrets, unreadable };
  if (tooLong) {
    const message = `the image reference is ${input.image.length} characters long, longer than any valid one (${MAX_IMAGE_REFERENCE_LENGTH}): the kubelet cannot pull it`;
    return { ...base, candidates: [], reasons: [{ code: 'InvalidImage', message }] };
  }

  const present: ExplainSecret[] = [];
  for (const name of pullSecrets) {
    const read = input.secrets.get(name);
    if (read?.ok) present.push(read.value);
    else if (read && read.status !== 'NotFound')
      unreadable.push(`Secret ${namespace}/${name}: ${read.message}`);
  }
  const lookup = lookupCredentials(input.image, present);
  if (!lookup.ok) {
    const code = lookup.reason === 'InvalidImage' ? 'InvalidImage' : 'SecretUnreadable';
    return { ...base, candidates: [], reasons: [{ code, message: lookup.message }] };
  }
  const credentials = input.credentials.ok ? input.credentials.value : [];
  const candidates = lookup.candidates.map((c, i): ExplainedCandidate => {
    const secret = present.find((s) => s.name === c.secret);
    const owner = secret?.labels?.[CREDENTIAL_LABEL];
    const credential = credentials.find((rc) => rc.metadata.name === owner);
    const expiresAt = credential?.status?.registries?.find((r) => r.server === c.server)?.expiresAt;
    return {
      rank: i + 1,
      secret: c.secret,
      server: withoutUserinfo(c.server),
      username: c.username,
      dockerHubFallback: c.dockerHubFallback,
      unorderedWith: c.unorderedWith.map(withoutUserinfo),
      ...(owner ? { registryCredential: owner } : {}),
      ...(expiresAt ? { expiresAt, expired: Date.parse(expiresAt) <= input.now.getTime() } : {}),
    };
  });
  const reasons =
    candidates.length > 0
      ? expiredCandidates(candidates)
      : whyNothingMatches(input, lookup.image, pullSecrets, present);
  return { ...base, reference: lookup.image, candidates, reasons };
}

function saName(input: ExplainInput): string {
  const { subject } = input;
  if (subject.kind === 'ServiceAccount') return subject.name;
  return subject.pod.ok ? subject.pod.value.serviceAccountName || 'default' : 'default';
}

/** A Pod's own list (copied from its ServiceAccount when it was created), or the ServiceAccount's. */
function pullSecretNames(input: ExplainInput): string[] {
  const { subject } = input;
  if (subject.kind === 'Pod') return subject.pod.ok ? subject.pod.value.pullSecrets : [];
  return input.serviceAccount.ok ? input.serviceAccount.value.pullSecrets : [];
}

function expiredCandidates(candidates: ExplainedCandidate[]): Reason[] {
  return candidates
    .filter((c) => c.expired)
    .map((c) => ({
      code: 'TokenExpired' as const,
      message: `candidate ${c.rank} (Secret ${c.secret}) holds a token of RegistryCredential ${c.registryCredential} that expired at ${c.expiresAt}: the registry will refuse it until the operator refreshes it (kubectl get regcred ${c.registryCredential})`,
    }));
}

function whyNothingMatches(
  input: ExplainInput,
  reference: ImageReference,
  pullSecrets: string[],
  present: ExplainSecret[],
): Reason[] {
  const { namespace, subject } = input;
  const reasons: Reason[] = [];
  const repository = reference.repository;

  // The Pod kept the list its ServiceAccount had when the Pod was created.
  if (subject.kind === 'Pod' && subject.pod.ok && input.serviceAccount.ok) {
    const onPod = new Set(subject.pod.value.pullSecrets);
    const added = input.serviceAccount.value.pullSecrets.filter((name) => !onPod.has(name));
    if (added.length > 0) {
      reasons.push({
        code: 'PodPredatesServiceAccountEntry',
        message: `ServiceAccount ${input.serviceAccount.value.name} lists ${list(added)} but Pod ${subject.name} does not: the Pod was created before the entry was added, and a Pod's imagePullSecrets are copied from its ServiceAccount only when it is created. Recreate the Pod (e.g. kubectl rollout restart for a Deployment)`,
      });
    }
  }
  for (const name of pullSecrets) {
    const read = input.secrets.get(name);
    if (read && !read.ok && read.status === 'NotFound') {
      reasons.push({
        code: 'SecretMissing',
        message: `Secret ${namespace}/${name} is listed in imagePullSecrets but does not exist; the kubelet skips it`,
      });
    }
  }
  if (input.namespaceInfo.ok) {
    const ns = input.namespaceInfo.value;
    if (ns.annotations[IGNORE_ANNOTATION] === 'true') {
      reasons.push({
        code: 'NamespaceIgnored',
        message: `namespace ${namespace} is annotated ${IGNORE_ANNOTATION}=true: no RegistryCredential writes into it`,
      });
    }
    if (ns.terminating) {
      reasons.push({
        code: 'NamespaceTerminating',
        message: `namespace ${namespace} is terminating: the operator writes nothing into it`,
      });
    }
    if (SYSTEM_NAMESPACES.includes(namespace)) {
      reasons.push({
        code: 'SystemNamespace',
        message: `${namespace} is a system namespace: a RegistryCredential writes into it only when spec.namespaces names it`,
      });
    }
  }
  const fromCredentials = input.credentials.ok
    ? credentialReasons(input, repository, input.credentials.value)
    : [];
  // "No credential has this registry at all" is the least specific: a near miss explains it.
  const general = fromCredentials.filter((r) => r.code === 'NoRegistryCredentialForImage');
  reasons.push(...fromCredentials.filter((r) => r.code !== 'NoRegistryCredentialForImage'));
  reasons.push(...nearMisses(present, repository));
  reasons.push(...general);
  if (reasons.length === 0) {
    reasons.push(
      pullSecrets.length === 0
        ? {
            code: 'NoPullSecrets',
            message: `${subject.kind} ${subject.name} has no imagePullSecrets: the kubelet has only the node's own credentials for ${repository}`,
          }
        : {
            code: 'NoMatchingEntry',
            message: `no auths key in ${list(pullSecrets.map((s) => `Secret ${s}`))} matches ${repository}`,
          },
    );
  }
  return reasons;
}

/** Which RegistryCredentials cover the image, and why none of them serves this namespace. */
function credentialReasons(
  input: ExplainInput,
  repository: string,
  credentials: RegistryCredential[],
): Reason[] {
  const { namespace } = input;
  const covering = credentials.filter((rc) =>
    registriesOf(rc).some((s) => imageMatchesServer(repository, s)),
  );
  if (covering.length === 0) {
    return [
      {
        code: 'NoRegistryCredentialForImage',
        message: `no RegistryCredential has a registry matching ${repository}`,
      },
    ];
  }
  const reasons: Reason[] = [];
  const ns = input.namespaceInfo.ok ? input.namespaceInfo.value : undefined;
  const targeting = ns ? covering.filter((rc) => targets(rc, ns)) : [];
  if (ns && targeting.length === 0) {
    const closest = closestCredential(covering, ns);
    const selector = closest.spec.namespaceSelector;
    reasons.push({
      code: 'NoRegistryCredentialTargetsNamespace',
      message: `no RegistryCredential for ${repository} targets namespace ${namespace}; closest: ${closest.metadata.name}, selector ${selector ? JSON.stringify(selector) : '(none)'}${closest.spec.namespaces?.length ? ` and namespaces ${JSON.stringify(closest.spec.namespaces)}` : ''}, namespace labels ${JSON.stringify(ns.labels)}`,
    });
  }
  for (const rc of covering) {
    const failed = rc.status?.failedNamespaces?.find((f: FailedNamespace) => f.name === namespace);
    if (failed) {
      reasons.push({
        code: 'CredentialFailedInNamespace',
        message: `RegistryCredential ${rc.metadata.name} reports ${failed.reason} in ${namespace}: ${failed.message}`,
      });
    }
    // A credential that cannot resolve its sources (SourceInvalid, SourceNotFound, …) writes
    // nowhere; per-namespace failures are the entry above.
    const ready = rc.status?.conditions?.find((c) => c.type === 'Ready');
    const perNamespace = ['Conflict', 'PartiallySynced', 'NoTargets'];
    if (
      ready?.status === 'False' &&
      !perNamespace.includes(ready.reason) &&
      (!ns || targets(rc, ns))
    ) {
      reasons.push({
        code: 'CredentialNotReady',
        message: `RegistryCredential ${rc.metadata.name} is not Ready (${ready.reason}): ${ready.message}`,
      });
    }
    for (const r of rc.status?.registries ?? []) {
      if (
        r.expiresAt &&
        Date.parse(r.expiresAt) <= input.now.getTime() &&
        imageMatchesServer(repository, r.server)
      ) {
        reasons.push({
          code: 'TokenExpired',
          message: `RegistryCredential ${rc.metadata.name}'s token for ${withoutUserinfo(r.server)} expired at ${r.expiresAt}`,
        });
      }
    }
  }
  return reasons;
}

/** The credential whose matchLabels agree with most of the namespace's labels. */
function closestCredential(covering: RegistryCredential[], ns: NamespaceInfo): RegistryCredential {
  const agreeing = (rc: RegistryCredential) =>
    Object.entries(rc.spec.namespaceSelector?.matchLabels ?? {}).filter(
      ([k, v]) => ns.labels[k] === v,
    ).length;
  return covering.reduce((best, rc) => (agreeing(rc) > agreeing(best) ? rc : best));
}

function registriesOf(rc: RegistryCredential): string[] {
  const servers = new Set<string>();
  for (const r of rc.spec.registries ?? []) if (r.server) servers.add(r.server);
  for (const r of rc.status?.registries ?? []) servers.add(r.server);
  return [...servers];
}

function targets(rc: RegistryCredential, ns: NamespaceInfo): boolean {
  try {
    return namespaceSelection(rc.spec)(ns);
  } catch {
    return false;
  }
}

/** Keys whose host matches the image's but whose port or path does not: both shown. */
function nearMisses(present: ExplainSecret[], repository: string): Reason[] {
  const reasons: Reason[] = [];
  for (const secret of present) {
    const read = readPullSecret(secret);
    if (!read.readable) continue;
    for (const entry of read.entries) {
      if (entry.key === undefined) continue;
      const comparison = compareKeyToRepository(entry.key, repository);
      if (!comparison?.hostMatches || comparison.matches) continue;
      const parts: string[] = [];
      if (!comparison.portMatches) {
        parts.push(
          `port ${show(comparison.keyPort)} in the key, ${show(comparison.imagePort)} in the image`,
        );
      }
      if (!comparison.pathMatches) {
        parts.push(
          `path ${show(comparison.keyPath)} in the key is not a prefix of the image's ${show(comparison.imagePath)}`,
        );
      }
      reasons.push({
        code: 'PortOrPathMismatch',
        message: `Secret ${secret.name}'s key ${JSON.stringify(withoutUserinfo(entry.server))} matches the host of ${repository} but not its ${comparison.portMatches ? 'path' : comparison.pathMatches ? 'port' : 'port and path'}: ${parts.join('; ')}`,
      });
    }
  }
  return reasons;
}

function show(part: string): string {
  return part === '' ? '(none)' : JSON.stringify(part);
}

function list(names: string[]): string {
  return names.join(', ');
}

/**
 * An auths key (or a RegistryCredential's server) without the user info it may carry
 * (`https://user:password@host`: the kubelet accepts and ignores it): never printed.
 */
export function withoutUserinfo(server: string): string {
  const scheme = /^[A-Za-z][A-Za-z0-9+.-]*:\/\//.exec(server)?.[0] ?? '';
  const rest = server.slice(scheme.length);
  const end = rest.search(/[/?#]/);
  const authority = end < 0 ? rest : rest.slice(0, end);
  const at = authority.lastIndexOf('@');
  if (at < 0) return server;
  return `${scheme}REDACTED@${rest.slice(at + 1)}`;
}

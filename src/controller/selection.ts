// Which namespaces and ServiceAccounts a RegistryCredential writes into. Pure functions of
// the spec and what the caches hold; the rule itself is API.md's "What the operator writes".
import type { V1LabelSelector, V1Namespace } from '@kubernetes/client-node';
import { IGNORE_ANNOTATION, type RegistryCredentialSpec, SYSTEM_NAMESPACES } from '../api/types.ts';
import { CredentialError } from '../credentials/errors.ts';

export interface NamespaceInfo {
  name: string;
  labels: Readonly<Record<string, string>>;
  annotations: Readonly<Record<string, string>>;
  terminating: boolean;
}

export function namespaceInfo(ns: V1Namespace): NamespaceInfo {
  return {
    name: ns.metadata?.name ?? '',
    labels: { ...ns.metadata?.labels },
    annotations: { ...ns.metadata?.annotations },
    terminating: ns.metadata?.deletionTimestamp != null || ns.status?.phase === 'Terminating',
  };
}

export type LabelPredicate = (labels: Readonly<Record<string, string>>) => boolean;

const LABEL_NAME = /^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$/;
const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

/**
 * Validates a selector once and returns its predicate, with metav1.LabelSelectorAsSelector's
 * semantics: `{}` matches everything, matchLabels and matchExpressions are ANDed, NotIn and
 * DoesNotExist match when the key is absent. What the API server would reject (bad operator,
 * In without values, Exists with values, malformed keys or values) throws InvalidSpec, so a
 * typo is reported rather than silently matching nothing.
 */
export function compileLabelSelector(
  selector: V1LabelSelector,
  field = 'spec.namespaceSelector',
): LabelPredicate {
  const checks: LabelPredicate[] = [];
  for (const [key, value] of Object.entries(selector.matchLabels ?? {})) {
    const path = `${field}.matchLabels[${JSON.stringify(key)}]`;
    checkKey(key, path);
    checkValue(value, path);
    checks.push((labels) => has(labels, key) && labels[key] === value);
  }
  (selector.matchExpressions ?? []).forEach((req, i) => {
    const path = `${field}.matchExpressions[${i}]`;
    checkKey(req.key, `${path}.key`);
    const values = req.values ?? [];
    switch (req.operator) {
      case 'In':
      case 'NotIn': {
        if (values.length === 0) {
          throw invalidSpec(`${path}: operator ${req.operator} needs at least one value`);
        }
        for (const v of values) checkValue(v, `${path}.values`);
        const set = new Set(values);
        const key = req.key;
        checks.push(
          req.operator === 'In'
            ? (labels) => has(labels, key) && set.has(labels[key] ?? '')
            : (labels) => !has(labels, key) || !set.has(labels[key] ?? ''),
        );
        break;
      }
      case 'Exists':
      case 'DoesNotExist': {
        if (values.length > 0) {
          throw invalidSpec(`${path}: operator ${req.operator} takes no values`);
        }
        const key = req.key;
        checks.push(
          req.operator === 'Exists' ? (labels) => has(labels, key) : (labels) => !has(labels, key),
        );
        break;
      }
      default:
        throw invalidSpec(
          `${path}.operator ${JSON.stringify(req.operator)} is not one of In, NotIn, Exists, DoesNotExist`,
        );
    }
  });
  return (labels) => checks.every((check) => check(labels));
}

export function matchesLabelSelector(
  selector: V1LabelSelector,
  labels: Readonly<Record<string, string>>,
): boolean {
  return compileLabelSelector(selector)(labels);
}

/**
 * The rule for one namespace, compiled once per spec. Ignore wins over everything: a
 * namespace annotated `regcred.dev/ignore: "true"` is excluded even when named in
 * spec.namespaces, because the annotation is the namespace owner's only way to opt out.
 * Terminating namespaces are excluded (writes there fail). System namespaces are only
 * targeted when named. Throws InvalidSpec for an invalid selector.
 */
export function namespaceSelection(spec: RegistryCredentialSpec): (ns: NamespaceInfo) => boolean {
  const named = new Set(spec.namespaces ?? []);
  const selector =
    spec.namespaceSelector === undefined ? undefined : compileLabelSelector(spec.namespaceSelector);
  return (ns) => {
    if (ns.terminating) return false;
    if (ns.annotations[IGNORE_ANNOTATION] === 'true') return false;
    if (named.has(ns.name)) return true;
    if (SYSTEM_NAMESPACES.includes(ns.name)) return false;
    // No selector selects nothing (metav1: a nil selector matches nothing, `{}` everything).
    return selector?.(ns.labels) ?? false;
  };
}

export function selectsNamespace(spec: RegistryCredentialSpec, ns: NamespaceInfo): boolean {
  return namespaceSelection(spec)(ns);
}

/** Sorted, distinct names. A name in spec.namespaces that doesn't exist is not a target yet. */
export function targetNamespaces(
  spec: RegistryCredentialSpec,
  namespaces: Iterable<NamespaceInfo>,
): string[] {
  const selects = namespaceSelection(spec);
  const targets = new Set<string>();
  for (const ns of namespaces) {
    if (selects(ns)) targets.add(ns.name);
  }
  return [...targets].sort(compareCodeUnits);
}

/**
 * The ServiceAccounts to patch, sorted: spec.serviceAccounts absent means `default`;
 * `["*"]` (a `*` anywhere) means all; `[]` means none. Names that don't exist are skipped:
 * they are patched when created.
 */
export function selectedServiceAccounts(
  spec: RegistryCredentialSpec,
  serviceAccountNames: Iterable<string>,
): string[] {
  const existing = new Set(serviceAccountNames);
  const wanted = spec.serviceAccounts ?? ['default'];
  const chosen = wanted.includes('*') ? existing : wanted.filter((name) => existing.has(name));
  return [...new Set(chosen)].sort(compareCodeUnits);
}

function has(labels: Readonly<Record<string, string>>, key: string): boolean {
  return Object.hasOwn(labels, key);
}

function checkKey(key: string, path: string): void {
  const slash = key.indexOf('/');
  const prefix = slash < 0 ? undefined : key.slice(0, slash);
  const name = slash < 0 ? key : key.slice(slash + 1);
  const validPrefix = prefix === undefined || (prefix.length <= 253 && DNS_SUBDOMAIN.test(prefix));
  if (!validPrefix || name.length > 63 || !LABEL_NAME.test(name)) {
    throw invalidSpec(`${path}: ${JSON.stringify(key)} is not a valid label key`);
  }
}

function checkValue(value: string, path: string): void {
  if (value.length > 63 || (value !== '' && !LABEL_NAME.test(value))) {
    throw invalidSpec(`${path}: ${JSON.stringify(value)} is not a valid label value`);
  }
}

function invalidSpec(message: string): CredentialError {
  return new CredentialError('InvalidSpec', message);
}

function compareCodeUnits(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

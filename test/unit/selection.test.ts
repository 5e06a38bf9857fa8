import assert from 'node:assert/strict';
import type { V1LabelSelector, V1LabelSelectorRequirement } from '@kubernetes/client-node';
import fc from 'fast-check';
import type { RegistryCredentialSpec } from '../../src/api/types.ts';
import {
  matchesLabelSelector,
  type NamespaceInfo,
  namespaceInfo,
  selectedServiceAccounts,
  selectsNamespace,
  targetNamespaces,
} from '../../src/controller/selection.ts';
import { CredentialError } from '../../src/credentials/errors.ts';

function ns(
  name: string,
  labels: Record<string, string> = {},
  extra: Partial<NamespaceInfo> = {},
): NamespaceInfo {
  return { name, labels, annotations: {}, terminating: false, ...extra };
}

const spec = (s: Partial<RegistryCredentialSpec>): RegistryCredentialSpec => ({
  registries: [],
  ...s,
});

function invalidSpec(fn: () => unknown): CredentialError {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof CredentialError, `expected CredentialError, got ${String(err)}`);
    assert.equal(err.reason, 'InvalidSpec');
    return err;
  }
  assert.fail('expected an InvalidSpec CredentialError');
}

describe('selection', () => {
  describe('namespaceInfo', () => {
    it('reads name, labels and annotations, defaulting to empty', () => {
      assert.deepEqual(namespaceInfo({ metadata: { name: 'a' } }), {
        name: 'a',
        labels: {},
        annotations: {},
        terminating: false,
      });
      assert.deepEqual(
        namespaceInfo({
          metadata: {
            name: 'b',
            labels: { tenant: 'acme' },
            annotations: { 'regcred.dev/ignore': 'true' },
          },
          status: { phase: 'Active' },
        }),
        {
          name: 'b',
          labels: { tenant: 'acme' },
          annotations: { 'regcred.dev/ignore': 'true' },
          terminating: false,
        },
      );
    });

    it('is terminating with a deletionTimestamp or in phase Terminating', () => {
      assert.ok(
        namespaceInfo({ metadata: { name: 'a', deletionTimestamp: new Date() } }).terminating,
      );
      assert.ok(
        namespaceInfo({ metadata: { name: 'a' }, status: { phase: 'Terminating' } }).terminating,
      );
    });
  });

  describe('matchesLabelSelector', () => {
    const labels = { tenant: 'acme', env: 'prod', 'example.com/team': 'pay' };
    const cases: [string, V1LabelSelector, boolean][] = [
      ['an empty selector matches everything', {}, true],
      ['empty lists match everything', { matchLabels: {}, matchExpressions: [] }, true],
      ['matchLabels hit', { matchLabels: { tenant: 'acme' } }, true],
      ['matchLabels with a prefixed key', { matchLabels: { 'example.com/team': 'pay' } }, true],
      ['matchLabels miss', { matchLabels: { tenant: 'other' } }, false],
      ['all matchLabels must match', { matchLabels: { tenant: 'acme', env: 'dev' } }, false],
      [
        'In hit',
        { matchExpressions: [{ key: 'env', operator: 'In', values: ['dev', 'prod'] }] },
        true,
      ],
      ['In miss', { matchExpressions: [{ key: 'env', operator: 'In', values: ['dev'] }] }, false],
      [
        'In on an absent key',
        { matchExpressions: [{ key: 'zone', operator: 'In', values: ['a'] }] },
        false,
      ],
      [
        'NotIn hit',
        { matchExpressions: [{ key: 'env', operator: 'NotIn', values: ['dev'] }] },
        true,
      ],
      [
        'NotIn miss',
        { matchExpressions: [{ key: 'env', operator: 'NotIn', values: ['prod'] }] },
        false,
      ],
      [
        'NotIn on an absent key matches',
        { matchExpressions: [{ key: 'zone', operator: 'NotIn', values: ['a'] }] },
        true,
      ],
      ['Exists hit', { matchExpressions: [{ key: 'tenant', operator: 'Exists' }] }, true],
      ['Exists miss', { matchExpressions: [{ key: 'zone', operator: 'Exists' }] }, false],
      [
        'Exists with an empty values list',
        { matchExpressions: [{ key: 'tenant', operator: 'Exists', values: [] }] },
        true,
      ],
      [
        'DoesNotExist on an absent key',
        { matchExpressions: [{ key: 'zone', operator: 'DoesNotExist' }] },
        true,
      ],
      [
        'DoesNotExist on a present key',
        { matchExpressions: [{ key: 'env', operator: 'DoesNotExist' }] },
        false,
      ],
      [
        'matchLabels AND matchExpressions',
        {
          matchLabels: { tenant: 'acme' },
          matchExpressions: [{ key: 'env', operator: 'In', values: ['dev'] }],
        },
        false,
      ],
    ];
    for (const [what, selector, expected] of cases) {
      it(`${what}`, () => {
        assert.equal(matchesLabelSelector(selector, labels), expected);
      });
    }

    it('matches an empty-valued label only with an empty value', () => {
      assert.ok(matchesLabelSelector({ matchLabels: { flag: '' } }, { flag: '' }));
      assert.ok(!matchesLabelSelector({ matchLabels: { flag: '' } }, {}));
    });

    it('does not see inherited properties as labels', () => {
      assert.ok(
        !matchesLabelSelector(
          { matchExpressions: [{ key: 'constructor', operator: 'Exists' }] },
          {},
        ),
      );
      assert.ok(
        matchesLabelSelector(
          { matchExpressions: [{ key: 'toString', operator: 'DoesNotExist' }] },
          {},
        ),
      );
    });

    const refused: [string, V1LabelSelector, RegExp][] = [
      [
        'an unknown operator',
        { matchExpressions: [{ key: 'a', operator: 'Equals', values: ['x'] }] },
        /operator "Equals" is not one of In, NotIn, Exists, DoesNotExist/,
      ],
      [
        'a lower-case operator',
        { matchExpressions: [{ key: 'a', operator: 'in', values: ['x'] }] },
        /operator "in"/,
      ],
      [
        'In without values',
        { matchExpressions: [{ key: 'a', operator: 'In', values: [] }] },
        /matchExpressions\[0\]: operator In needs at least one value/,
      ],
      [
        'NotIn without values',
        { matchExpressions: [{ key: 'a', operator: 'NotIn' }] },
        /NotIn needs at least one value/,
      ],
      [
        'Exists with values',
        { matchExpressions: [{ key: 'a', operator: 'Exists', values: ['x'] }] },
        /Exists takes no values/,
      ],
      [
        'DoesNotExist with values',
        { matchExpressions: [{ key: 'a', operator: 'DoesNotExist', values: ['x'] }] },
        /DoesNotExist takes no values/,
      ],
      [
        'a key with spaces',
        { matchLabels: { 'my team': 'x' } },
        /"my team" is not a valid label key/,
      ],
      [
        'an empty key',
        { matchExpressions: [{ key: '', operator: 'Exists' }] },
        /"" is not a valid label key/,
      ],
      ['a key with two slashes', { matchLabels: { 'a/b/c': 'x' } }, /not a valid label key/],
      [
        'a key with an upper-case prefix',
        { matchLabels: { 'Example.com/x': 'x' } },
        /not a valid label key/,
      ],
      [
        'a key name of 64 characters',
        { matchLabels: { ['k'.repeat(64)]: 'x' } },
        /not a valid label key/,
      ],
      [
        'a key whose prefix has an underscore (not a DNS subdomain)',
        { matchLabels: { 'my_corp.example.com/tier': 'x' } },
        /"my_corp\.example\.com\/tier" is not a valid label key/,
      ],
      [
        'a key whose prefix ends in a dash',
        { matchExpressions: [{ key: 'corp-/tier', operator: 'Exists' }] },
        /"corp-\/tier" is not a valid label key/,
      ],
      [
        'a key whose prefix is 254 characters long',
        {
          matchLabels: {
            [`${'a'.repeat(63)}.${'b'.repeat(63)}.${'c'.repeat(63)}.${'d'.repeat(62)}/n`]: 'x',
          },
        },
        /not a valid label key/,
      ],
      [
        'a value with a slash',
        { matchLabels: { tenant: 'a/b' } },
        /"a\/b" is not a valid label value/,
      ],
      [
        'a value of 64 characters',
        { matchLabels: { tenant: 'v'.repeat(64) } },
        /not a valid label value/,
      ],
      [
        'a value ending in a dash',
        { matchExpressions: [{ key: 'a', operator: 'In', values: ['ok', 'bad-'] }] },
        /"bad-" is not a valid label value/,
      ],
    ];
    for (const [what, selector, message] of refused) {
      it(`refuses ${what} as InvalidSpec, naming the field`, () => {
        const err = invalidSpec(() => matchesLabelSelector(selector, {}));
        assert.match(err.message, /^spec\.namespaceSelector\./);
        assert.match(err.message, message);
      });
    }

    it('accepts the longest valid key and value', () => {
      const key = `${'a'.repeat(63)}.${'b'.repeat(63)}.${'c'.repeat(63)}.${'d'.repeat(61)}/${'n'.repeat(63)}`;
      assert.ok(
        matchesLabelSelector({ matchLabels: { [key]: 'v'.repeat(63) } }, { [key]: 'v'.repeat(63) }),
      );
    });

    it('agrees with the metav1 rules on random selectors and labels (property)', () => {
      const key = fc.constantFrom('a', 'b', 'c', 'x.io/d');
      const value = fc.constantFrom('1', '2', '3');
      const labelSet = fc.dictionary(key, value, { maxKeys: 4 });
      const requirement: fc.Arbitrary<V1LabelSelectorRequirement> = fc.oneof(
        fc.record({
          key,
          operator: fc.constantFrom('In', 'NotIn'),
          values: fc.uniqueArray(value, { minLength: 1, maxLength: 3 }),
        }),
        fc.record({ key, operator: fc.constantFrom('Exists', 'DoesNotExist') }),
      );
      const selector = fc.record(
        {
          matchLabels: fc.dictionary(key, value, { maxKeys: 2 }),
          matchExpressions: fc.array(requirement, { maxLength: 3 }),
        },
        { requiredKeys: [] },
      );
      // A direct reading of the rules in apimachinery's labels.Requirement.Matches.
      const oracle = (sel: V1LabelSelector, l: Record<string, string>): boolean => {
        const present = (k: string) => Object.keys(l).includes(k);
        for (const [k, v] of Object.entries(sel.matchLabels ?? {})) {
          if (!present(k) || l[k] !== v) return false;
        }
        for (const r of sel.matchExpressions ?? []) {
          const v = l[r.key];
          const inValues = v !== undefined && (r.values ?? []).includes(v);
          const ok =
            r.operator === 'In'
              ? present(r.key) && inValues
              : r.operator === 'NotIn'
                ? !present(r.key) || !inValues
                : r.operator === 'Exists'
                  ? present(r.key)
                  : !present(r.key);
          if (!ok) return false;
        }
        return true;
      };
      fc.assert(
        fc.property(selector, labelSet, (sel, l) => {
          assert.equal(matchesLabelSelector(sel, l), oracle(sel, l));
        }),
      );
    });
  });

  describe('targetNamespaces', () => {
    const cluster = [
      ns('team-b', { tenant: 'acme' }),
      ns('team-a', { tenant: 'acme' }),
      ns('other', { tenant: 'globex' }),
      ns('shared-tools'),
      ns('kube-system', { tenant: 'acme' }),
      ns('kube-public', { tenant: 'acme' }),
      ns('kube-node-lease', { tenant: 'acme' }),
      ns('opted-out', { tenant: 'acme' }, { annotations: { 'regcred.dev/ignore': 'true' } }),
      ns('going', { tenant: 'acme' }, { terminating: true }),
    ];

    it('selector matches plus existing named namespaces, sorted', () => {
      const targets = targetNamespaces(
        spec({
          namespaceSelector: { matchLabels: { tenant: 'acme' } },
          namespaces: ['shared-tools'],
        }),
        cluster,
      );
      assert.deepEqual(targets, ['shared-tools', 'team-a', 'team-b']);
    });

    it('a named namespace that does not exist yet is not a target, until it is created', () => {
      const s = spec({ namespaces: ['later', 'shared-tools'] });
      assert.deepEqual(targetNamespaces(s, cluster), ['shared-tools']);
      assert.deepEqual(targetNamespaces(s, [...cluster, ns('later')]), ['later', 'shared-tools']);
    });

    it('system namespaces are targets only when named', () => {
      const s = spec({ namespaceSelector: {}, namespaces: ['kube-system'] });
      const targets = targetNamespaces(s, cluster);
      assert.ok(targets.includes('kube-system'));
      assert.ok(!targets.includes('kube-public'));
      assert.ok(!targets.includes('kube-node-lease'));
    });

    it('ignore wins, even over a name in spec.namespaces', () => {
      const s = spec({ namespaces: ['opted-out'] });
      assert.deepEqual(targetNamespaces(s, cluster), []);
    });

    it('only the exact value "true" opts a namespace out', () => {
      const maybe = ns('maybe', {}, { annotations: { 'regcred.dev/ignore': 'True' } });
      assert.deepEqual(targetNamespaces(spec({ namespaces: ['maybe'] }), [maybe]), ['maybe']);
    });

    it('terminating namespaces are never targets, even when named', () => {
      assert.deepEqual(targetNamespaces(spec({ namespaces: ['going'] }), cluster), []);
    });

    it('without a selector, only named namespaces; an empty selector, every ordinary one', () => {
      assert.deepEqual(targetNamespaces(spec({}), cluster), []);
      assert.deepEqual(targetNamespaces(spec({ namespaceSelector: {} }), cluster), [
        'other',
        'shared-tools',
        'team-a',
        'team-b',
      ]);
    });

    it('an invalid selector is reported even when no namespace exists', () => {
      invalidSpec(() =>
        targetNamespaces(
          spec({ namespaceSelector: { matchExpressions: [{ key: 'a', operator: 'Bogus' }] } }),
          [],
        ),
      );
    });

    it('is sorted, distinct, and agrees with selectsNamespace and the exclusion rules (property)', () => {
      const name = fc.constantFrom('a', 'b', 'c', 'kube-system', 'kube-public', 'default');
      const namespace = fc.record({
        name,
        labels: fc.dictionary(fc.constantFrom('t', 'u'), fc.constantFrom('1', '2'), { maxKeys: 2 }),
        annotations: fc.oneof<fc.Arbitrary<Record<string, string>>[]>(
          fc.constant({}),
          fc.constant({ 'regcred.dev/ignore': 'true' }),
          fc.constant({ 'regcred.dev/ignore': 'false' }),
        ),
        terminating: fc.boolean(),
      });
      const specArb = fc.record(
        {
          namespaceSelector: fc.oneof(
            fc.constant({}),
            fc.record({
              matchLabels: fc.dictionary(fc.constantFrom('t', 'u'), fc.constantFrom('1', '2'), {
                maxKeys: 1,
              }),
            }),
          ),
          namespaces: fc.uniqueArray(name, { maxLength: 3 }),
        },
        { requiredKeys: [] },
      );
      fc.assert(
        fc.property(
          specArb,
          fc.uniqueArray(namespace, { selector: (n) => n.name }),
          (partial, nss) => {
            const s = spec(partial);
            const targets = targetNamespaces(s, nss);
            assert.deepEqual(targets, [...new Set(targets)].sort());
            assert.deepEqual(
              targets,
              nss
                .filter((n) => selectsNamespace(s, n))
                .map((n) => n.name)
                .sort(),
            );
            for (const n of nss) {
              const isTarget = targets.includes(n.name);
              if (n.terminating || n.annotations['regcred.dev/ignore'] === 'true')
                assert.ok(!isTarget);
              else if ((s.namespaces ?? []).includes(n.name)) assert.ok(isTarget);
              else if (n.name.startsWith('kube-')) assert.ok(!isTarget);
            }
          },
        ),
      );
    });
  });

  describe('selectedServiceAccounts', () => {
    const sas = ['deployer', 'default', 'builder'];

    it('defaults to the default ServiceAccount when it exists', () => {
      assert.deepEqual(selectedServiceAccounts(spec({}), sas), ['default']);
      assert.deepEqual(selectedServiceAccounts(spec({}), ['builder']), []);
    });

    it('"*" selects every ServiceAccount, sorted', () => {
      assert.deepEqual(selectedServiceAccounts(spec({ serviceAccounts: ['*'] }), sas), [
        'builder',
        'default',
        'deployer',
      ]);
    });

    it('[] selects none (the Secret is still written)', () => {
      assert.deepEqual(selectedServiceAccounts(spec({ serviceAccounts: [] }), sas), []);
    });

    it('a list selects those that exist, sorted and distinct', () => {
      const s = spec({ serviceAccounts: ['deployer', 'missing', 'builder', 'deployer'] });
      assert.deepEqual(selectedServiceAccounts(s, sas), ['builder', 'deployer']);
    });
  });
});

// The text `kubectl regcred explain` prints (`-o json` prints the Explanation itself).
import type { Explanation } from './explain.ts';

export function renderExplanation(e: Explanation, now: Date): string {
  const lines: string[] = [];
  const repo = e.reference
    ? ` (repository ${e.reference.repository}${e.reference.digest ? `, digest ${e.reference.digest}` : `, tag ${e.reference.tag}`})`
    : '';
  lines.push(`Image:         ${e.image}${repo}`);
  lines.push(`For:           ${e.subject}`);
  lines.push(`Pull Secrets:  ${e.pullSecrets.length > 0 ? e.pullSecrets.join(', ') : '(none)'}`);
  lines.push('');
  if (e.candidates.length > 0) {
    lines.push('Candidates, in the order the kubelet passes them to the runtime:');
    for (const c of e.candidates) {
      const how = c.dockerHubFallback ? 'Docker Hub fallback key' : 'key';
      lines.push(
        `  ${c.rank}. Secret ${c.secret}, ${how} ${JSON.stringify(c.server)}, username ${JSON.stringify(c.username)}`,
      );
      const details: string[] = [];
      details.push(
        c.registryCredential
          ? `written by RegistryCredential ${c.registryCredential}`
          : 'not written by regcred-operator',
      );
      if (c.expiresAt) {
        details.push(
          c.expired
            ? `token EXPIRED at ${c.expiresAt}`
            : `token expires ${c.expiresAt} (${inWords(Date.parse(c.expiresAt) - now.getTime())})`,
        );
      }
      if (c.unorderedWith.length > 0) {
        details.push(
          `same key as ${c.unorderedWith.map((s) => JSON.stringify(s)).join(', ')} in this Secret: the kubelet orders them at random`,
        );
      }
      lines.push(`     ${details.join('; ')}`);
    }
    lines.push(
      `The runtime tries candidate 1 first${e.candidates.length > 1 ? ', and the next only when a pull with one fails' : ''}.`,
    );
    lines.push(
      "The node's own credentials (its config.json, credential provider plugins) come after these.",
    );
  } else {
    lines.push(
      e.reference
        ? `No credential in these pull Secrets matches ${e.reference.repository}.`
        : 'The kubelet cannot pull this image with any credential.',
    );
  }
  if (e.reasons.length > 0) {
    lines.push('');
    lines.push(e.candidates.length > 0 ? 'But:' : 'Why, most specific first:');
    for (const r of e.reasons) lines.push(`  - ${r.message} [${r.code}]`);
  }
  if (e.unreadable.length > 0) {
    lines.push('');
    lines.push('Not readable with your credentials (left out of this answer):');
    for (const u of e.unreadable) lines.push(`  - ${u}`);
  }
  return `${lines.join('\n')}\n`;
}

function inWords(ms: number): string {
  const minutes = Math.round(ms / 60_000);
  if (minutes < 60) return `in ${minutes} min`;
  const hours = Math.floor(minutes / 60);
  return `in ${hours} h ${minutes % 60} min`;
}

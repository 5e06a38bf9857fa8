// The one leak check of the suites: every form in which a credential string can show up in
// what the operator lets out of its process (logs, Events, statuses, /metrics).

/** A place to look, as lines of text. */
export interface Haystack {
  where: string;
  lines: readonly string[];
}

/**
 * Every way `value` can show up in text: as is, base64 (whose unpadded form is a prefix of it),
 * and escaped inside a JSON string. Register `user:password`, an `auth` and a whole
 * `.dockerconfigjson` as strings of their own: their base64 is then looked for too.
 */
export function credentialForms(value: string): string[] {
  return [
    ...new Set([
      value,
      Buffer.from(value).toString('base64').replace(/=+$/, ''),
      JSON.stringify(value).slice(1, -1),
    ]),
  ];
}

/** Each form of each secret found in a haystack, with where and the line (cut) it is in. */
export function findLeaks(secrets: Iterable<string>, haystacks: readonly Haystack[]): string[] {
  const found: string[] = [];
  const forms = [...new Set(secrets)].flatMap(credentialForms);
  for (const { where, lines } of haystacks) {
    const text = lines.join('\n');
    for (const form of forms) {
      if (!text.includes(form)) continue;
      const line = lines.find((l) => l.includes(form)) ?? '';
      found.push(`${where}: ${JSON.stringify(form)} in ${line.slice(0, 300)}`);
    }
  }
  return found;
}

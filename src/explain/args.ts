// The command line of `kubectl regcred`: parsed here, with every mistake named, before anything
// is read from the cluster.
import { parseArgs } from 'node:util';

export interface ExplainArgs {
  image: string;
  namespace?: string;
  serviceAccount?: string;
  pod?: string;
  output: 'text' | 'json';
  kubeconfig?: string;
  context?: string;
}

export type ParsedCommand =
  | { command: 'explain'; args: ExplainArgs }
  | { command: 'help'; text: string }
  | { command: 'error'; message: string };

export const USAGE = `Usage:
  kubectl regcred explain IMAGE [-n NAMESPACE] [--service-account SA | --pod POD] [-o json]
                                [--kubeconfig PATH] [--context NAME]

Explains which pull credentials the kubelet tries for IMAGE, in its order, for a Pod (--pod) or
for Pods created now under a ServiceAccount (--service-account, default "default"), and when none
matches, why. Reads only what your kubeconfig may read; anything else is named, not guessed.
`;

export function parseCommand(argv: readonly string[]): ParsedCommand {
  const [command, ...rest] = argv;
  if (command === undefined || command === 'help' || command === '--help' || command === '-h') {
    return { command: 'help', text: USAGE };
  }
  if (command !== 'explain') {
    return {
      command: 'error',
      message: `unknown command ${JSON.stringify(command)}; the command is "explain"\n\n${USAGE}`,
    };
  }
  let parsed: ReturnType<typeof parseExplain>;
  try {
    parsed = parseExplain(rest);
  } catch (error) {
    return { command: 'error', message: `${(error as Error).message}\n\n${USAGE}` };
  }
  const { values, positionals } = parsed;
  if (values.help) return { command: 'help', text: USAGE };
  if (positionals.length === 0)
    return { command: 'error', message: `explain needs an IMAGE\n\n${USAGE}` };
  if (positionals.length > 1) {
    return {
      command: 'error',
      message: `explain takes one IMAGE, got ${positionals.length}: ${positionals.join(' ')}`,
    };
  }
  if (values.pod !== undefined && values['service-account'] !== undefined) {
    return {
      command: 'error',
      message: '--pod and --service-account are exclusive: a Pod names its own ServiceAccount',
    };
  }
  const output = values.output ?? 'text';
  if (output !== 'json' && output !== 'text') {
    return {
      command: 'error',
      message: `-o ${JSON.stringify(output)} is not supported; use -o json (or nothing, for text)`,
    };
  }
  for (const [flag, value] of [
    ['--namespace', values.namespace],
    ['--pod', values.pod],
    ['--service-account', values['service-account']],
  ] as const) {
    if (value !== undefined && !/^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/.test(value)) {
      return {
        command: 'error',
        message: `${flag} ${JSON.stringify(value)} is not a valid Kubernetes name`,
      };
    }
  }
  return {
    command: 'explain',
    args: {
      image: positionals[0] ?? '',
      output,
      ...(values.namespace !== undefined ? { namespace: values.namespace } : {}),
      ...(values.pod !== undefined ? { pod: values.pod } : {}),
      ...(values['service-account'] !== undefined
        ? { serviceAccount: values['service-account'] }
        : {}),
      ...(values.kubeconfig !== undefined ? { kubeconfig: values.kubeconfig } : {}),
      ...(values.context !== undefined ? { context: values.context } : {}),
    },
  };
}

function parseExplain(args: string[]) {
  return parseArgs({
    args,
    allowPositionals: true,
    strict: true,
    options: {
      namespace: { type: 'string', short: 'n' },
      'service-account': { type: 'string' },
      pod: { type: 'string' },
      output: { type: 'string', short: 'o' },
      kubeconfig: { type: 'string' },
      context: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
}

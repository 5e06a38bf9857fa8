// A KubeConfig for an API server stand-in in unit tests: one cluster, one bearer token.
import { KubeConfig } from '@kubernetes/client-node';

export function standInKubeconfig(
  server: string,
  { token = 'not-a-real-token', ca }: { token?: string; ca?: string } = {},
): KubeConfig {
  const kc = new KubeConfig();
  kc.loadFromOptions({
    clusters: [
      ca === undefined
        ? { name: 'c', server, skipTLSVerify: true }
        : { name: 'c', server, caData: Buffer.from(ca).toString('base64') },
    ],
    users: [{ name: 'u', token }],
    contexts: [{ name: 'x', cluster: 'c', user: 'u' }],
    currentContext: 'x',
  });
  return kc;
}

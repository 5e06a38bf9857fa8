// The webhook scenario's floor: the least any Pod webhook on Node must do, in its own process
// with the operator's NODE_OPTIONS: the same node:https server, the AdmissionReview read and
// parsed, and an answer with a JSON patch adding one imagePullSecrets entry, without caches or
// any decision. Prints `{"port":…,"ca":"<PEM>"}` on its first line, then serves until killed;
// SIGTERM exits normally, so a --cpu-prof in NODE_OPTIONS writes its profile as the operator's does.
import { createServer } from 'node:https';
import { createCertificateAuthority, issueServingCertificate } from '../src/webhook/x509.ts';

const secretName = process.argv[2] ?? 'bench-pull';
const validity = {
  notBefore: new Date(Date.now() - 60_000),
  notAfter: new Date(Date.now() + 86_400_000),
};
const ca = createCertificateAuthority('regcred-bench-floor-ca', validity);
const serving = issueServingCertificate(ca, ['127.0.0.1'], validity);
const patch = Buffer.from(
  JSON.stringify([{ op: 'add', path: '/spec/imagePullSecrets/-', value: { name: secretName } }]),
).toString('base64');

const server = createServer(
  { cert: serving.cert, key: serving.key, minVersion: 'TLSv1.2' },
  (req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const review = JSON.parse(Buffer.concat(chunks).toString('utf8')) as {
        apiVersion?: string;
        request?: { uid?: string };
      };
      res.writeHead(200, { 'content-type': 'application/json' }).end(
        JSON.stringify({
          apiVersion: review.apiVersion ?? 'admission.k8s.io/v1',
          kind: 'AdmissionReview',
          response: {
            uid: review.request?.uid ?? '',
            allowed: true,
            patchType: 'JSONPatch',
            patch,
          },
        }),
      );
    });
  },
);
server.keepAliveTimeout = 120_000;
// How the API server calls it: connections opened and requests answered, printed at exit.
let connections = 0;
let requests = 0;
server.on('secureConnection', () => {
  connections += 1;
});
server.on('request', () => {
  requests += 1;
});
server.listen(0, '127.0.0.1', () => {
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : 0;
  process.stdout.write(`${JSON.stringify({ port, ca: ca.cert })}\n`);
});
process.once('SIGTERM', () => {
  process.stderr.write(
    `[bench] floor webhook: ${connections} TLS connections, ${requests} requests\n`,
  );
  server.close();
  server.closeAllConnections();
  process.exit(0);
});

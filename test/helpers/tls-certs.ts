/**
 * A CA, a server certificate (SAN 127.0.0.1, localhost), a client certificate (SAN DNS:prometheus)
 * and a second CA with its own client certificate, made with openssl in `dir` for TLS tests.
 */
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';

export interface TestCerts {
  caCert: string;
  serverCert: string;
  serverKey: string;
  clientCert: string;
  clientKey: string;
  /** Signed by another CA: must be refused. */
  otherClientCert: string;
  otherClientKey: string;
  otherCaCert: string;
}

export function makeTestCerts(dir: string): TestCerts {
  const path = (name: string): string => join(dir, name);
  const openssl = (...args: string[]): void => {
    execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
  };
  const ca = (name: string): void =>
    openssl(
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:prime256v1',
      '-nodes',
      '-days',
      '2',
      '-subj',
      `/CN=${name}`,
      '-keyout',
      path(`${name}.key`),
      '-out',
      path(`${name}.crt`),
    );
  const leaf = (name: string, signer: string, san: string, usage: string): void => {
    writeFileSync(
      path(`${name}.ext`),
      `subjectAltName=${san}\nextendedKeyUsage=${usage}\nbasicConstraints=CA:FALSE\n`,
    );
    openssl(
      'req',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:prime256v1',
      '-nodes',
      '-subj',
      `/CN=${name}`,
      '-keyout',
      path(`${name}.key`),
      '-out',
      path(`${name}.csr`),
    );
    openssl(
      'x509',
      '-req',
      '-in',
      path(`${name}.csr`),
      '-CA',
      path(`${signer}.crt`),
      '-CAkey',
      path(`${signer}.key`),
      '-CAcreateserial',
      '-days',
      '2',
      '-extfile',
      path(`${name}.ext`),
      '-out',
      path(`${name}.crt`),
    );
  };
  ca('ca');
  ca('other-ca');
  leaf('server', 'ca', 'IP:127.0.0.1,DNS:localhost', 'serverAuth');
  leaf('client', 'ca', 'DNS:prometheus', 'clientAuth');
  leaf('other-client', 'other-ca', 'DNS:prometheus', 'clientAuth');
  return {
    caCert: path('ca.crt'),
    serverCert: path('server.crt'),
    serverKey: path('server.key'),
    clientCert: path('client.crt'),
    clientKey: path('client.key'),
    otherClientCert: path('other-client.crt'),
    otherClientKey: path('other-client.key'),
    otherCaCert: path('other-ca.crt'),
  };
}

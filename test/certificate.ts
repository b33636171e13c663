// A self-signed certificate made by openssl at run time: for the TLS tests (through
// temporaryCertificate() in test/support.ts) and for autobahn/run.ts, whose nghttpx runs need
// TLS on the HTTP/2 hop.

import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';

export interface Certificate {
  /** The PEM key and certificate. */
  key: string;
  cert: string;
  /** Where they are: `key.pem` and `cert.pem` in the directory given. */
  keyFile: string;
  certFile: string;
}

/** A self-signed certificate for localhost and 127.0.0.1 (openssl, valid one day), made in `dir`. */
export async function selfSignedCertificate(dir: string): Promise<Certificate> {
  const keyFile = join(dir, 'key.pem');
  const certFile = join(dir, 'cert.pem');
  await new Promise<void>((resolve, reject) => execFile('openssl', [
    'req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', keyFile, '-out', certFile, '-days', '1',
    '-subj', '/CN=localhost', '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1',
  ], { timeout: 30_000 }, (error, _stdout, stderr) => (error ? reject(new Error(`openssl failed: ${stderr}`, { cause: error })) : resolve())));
  return { key: await readFile(keyFile, 'utf8'), cert: await readFile(certFile, 'utf8'), keyFile, certFile };
}

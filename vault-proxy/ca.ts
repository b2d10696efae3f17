// The Berth CA: the proxy terminates a sandbox's TLS with a leaf certificate per host, signed by this CA.
// Sandboxes trust the CA's certificate (never its key). ECDSA P-256 keeps signing and handshakes cheap;
// one leaf key serves every host, and each host's certificate is made once and cached.
import 'reflect-metadata'; // @peculiar/x509 uses tsyringe, which needs it loaded first
import * as x509 from '@peculiar/x509';
import { KeyObject, createPrivateKey, createPublicKey, randomBytes, webcrypto } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { isIP } from 'node:net';
import path from 'node:path';
import tls from 'node:tls';

x509.cryptoProvider.set(webcrypto as unknown as Crypto);

const ALG = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;
/** A CA brought by the operator (pod mode) may be RSA; leaves are always ECDSA P-256. */
const RSA_ALG = { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' } as const;
type SigningAlg = typeof ALG | typeof RSA_ALG;
const DAY = 86_400_000;
const MAX_CACHED_HOSTS = 2000;
const SYSTEM_CA_FILES = ['/etc/ssl/certs/ca-certificates.crt', '/etc/pki/tls/certs/ca-bundle.crt'];

export interface CaFiles {
  certFile: string;
  keyFile: string;
  /** System CAs plus the Berth CA: what SSL_CERT_FILE and friends point at inside a sandbox. */
  bundleFile: string;
}

export function caFiles(dir: string): CaFiles {
  return { certFile: path.join(dir, 'ca.crt'), keyFile: path.join(dir, 'ca.key'), bundleFile: path.join(dir, 'ca-bundle.crt') };
}

/** The system's trusted CAs as PEM: the distribution bundle when there is one, else Node's built-in list. */
export function systemCaPem(): string {
  const file = SYSTEM_CA_FILES.find((f) => existsSync(f));
  return file ? readFileSync(file, 'utf8') : tls.rootCertificates.join('\n');
}

function writeAtomic(file: string, content: string, mode: number): void {
  writeFileSync(`${file}.tmp`, content, { mode });
  renameSync(`${file}.tmp`, file);
}

export class CertificateAuthority {
  private readonly contexts = new Map<string, Promise<tls.SecureContext>>();

  private constructor(
    private readonly caCert: x509.X509Certificate,
    private readonly caKey: CryptoKey,
    private readonly caAlg: SigningAlg,
    private readonly leafKeys: CryptoKeyPair,
    private readonly leafKeyPem: string,
    readonly certPem: string,
  ) {}

  /** Loads the CA from `dir`, creating it (key mode 0600) on first use, and (re)writes the sandbox bundle. */
  static async loadOrCreate(dir: string): Promise<CertificateAuthority> {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    const files = caFiles(dir);
    if (!existsSync(files.keyFile) || !existsSync(files.certFile)) {
      const keys = await webcrypto.subtle.generateKey(ALG, true, ['sign', 'verify']);
      const cert = await x509.X509CertificateGenerator.createSelfSigned({
        serialNumber: randomBytes(16).toString('hex').replace(/^[89a-f]/, '1'),
        name: 'CN=Berth vault proxy CA, O=Berth',
        notBefore: new Date(Date.now() - DAY),
        notAfter: new Date(Date.now() + 3650 * DAY),
        keys,
        signingAlgorithm: ALG,
        extensions: [
          new x509.BasicConstraintsExtension(true, 0, true),
          new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
          await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
        ],
      });
      writeAtomic(files.keyFile, KeyObject.from(keys.privateKey).export({ type: 'pkcs8', format: 'pem' }).toString(), 0o600);
      writeAtomic(files.certFile, cert.toString('pem') + '\n', 0o644);
    }
    const certPem = readFileSync(files.certFile, 'utf8');
    writeAtomic(files.bundleFile, `${systemCaPem().trimEnd()}\n${certPem}`, 0o644);
    return CertificateAuthority.fromPem(certPem, readFileSync(files.keyFile, 'utf8'));
  }

  /** The CA from PEM text (pod mode: the `berth-vault-proxy` Secret). `source` names it in errors. */
  static async fromPem(certPem: string, keyPem: string, source = 'the CA'): Promise<CertificateAuthority> {
    let caCert: x509.X509Certificate;
    let key: KeyObject;
    try {
      caCert = new x509.X509Certificate(certPem);
      key = createPrivateKey(keyPem);
    } catch (err) {
      throw new Error(`${source}: cannot read the certificate or key PEM: ${(err as Error).message}`);
    }
    const spki = (k: KeyObject) => k.export({ type: 'spki', format: 'der' });
    if (!spki(createPublicKey(key)).equals(Buffer.from(caCert.publicKey.rawData))) {
      throw new Error(`${source}: the private key does not belong to the certificate`);
    }
    const curve = key.asymmetricKeyDetails?.namedCurve;
    const alg = key.asymmetricKeyType === 'rsa' ? RSA_ALG : key.asymmetricKeyType === 'ec' && curve === 'prime256v1' ? ALG : undefined;
    if (!alg) throw new Error(`${source}: expected an EC P-256 or RSA key, got ${key.asymmetricKeyType}${curve ? ` ${curve}` : ''}`);
    const der = key.export({ type: 'pkcs8', format: 'der' });
    const caKey = await webcrypto.subtle.importKey('pkcs8', der, alg, false, ['sign']);
    const leafKeys = await webcrypto.subtle.generateKey(ALG, true, ['sign', 'verify']);
    const leafKeyPem = KeyObject.from(leafKeys.privateKey).export({ type: 'pkcs8', format: 'pem' }).toString();
    return new CertificateAuthority(caCert, caKey, alg, leafKeys, leafKeyPem, caCert.toString('pem') + '\n');
  }

  /** The TLS context presenting a leaf certificate for `host` (a name or an IP address). */
  contextFor(host: string): Promise<tls.SecureContext> {
    const key = host.toLowerCase();
    let ctx = this.contexts.get(key);
    if (!ctx) {
      if (this.contexts.size >= MAX_CACHED_HOSTS) this.contexts.delete(this.contexts.keys().next().value!);
      ctx = this.issue(key);
      ctx.catch(() => this.contexts.delete(key));
      this.contexts.set(key, ctx);
    }
    return ctx;
  }

  private async issue(host: string): Promise<tls.SecureContext> {
    const { key, cert } = await this.issuePem([host]);
    return tls.createSecureContext({ key, cert });
  }

  /** A leaf certificate (with the CA appended) for names and IP addresses, and its private key, as PEM. */
  async issuePem(hosts: string[]): Promise<{ key: string; cert: string }> {
    const san = hosts.map((h) => (isIP(h) ? { type: 'ip' as const, value: h } : { type: 'dns' as const, value: h }));
    const leaf = await x509.X509CertificateGenerator.create({
      serialNumber: randomBytes(16).toString('hex').replace(/^[89a-f]/, '1'),
      subject: `CN=${isIP(hosts[0]!) ? 'berth-ip' : hosts[0]!.slice(0, 64)}`,
      issuer: this.caCert.subject,
      notBefore: new Date(Date.now() - DAY),
      notAfter: new Date(Date.now() + 90 * DAY),
      signingKey: this.caKey,
      publicKey: this.leafKeys.publicKey,
      signingAlgorithm: this.caAlg,
      extensions: [
        new x509.BasicConstraintsExtension(false, undefined, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
        new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth]),
        new x509.SubjectAlternativeNameExtension(san),
        await x509.AuthorityKeyIdentifierExtension.create(this.caCert),
      ],
    });
    return { key: this.leafKeyPem, cert: `${leaf.toString('pem')}\n${this.certPem}` };
  }
}

/**
 * Certificates for the TLS tests, made with the machine's `openssl` in a temporary folder: a CA, a
 * server certificate it signs for 127.0.0.1, and a second CA that signed nothing (an untrusted one).
 */
import { execFile } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { promisify } from "node:util"

export interface Certificates {
  readonly folder: string
  readonly caFile: string
  /** Signed by `caFile`, for IP 127.0.0.1; PEM, key unencrypted (PKCS#8). */
  readonly certFile: string
  readonly keyFile: string
  /** A CA that did not sign `certFile`. */
  readonly otherCaFile: string
}

const openssl = (folder: string, ...args: Array<string>) => promisify(execFile)("openssl", args, { cwd: folder })

const selfSignedCa = (folder: string, name: string) =>
  openssl(
    folder,
    "req",
    "-x509",
    "-newkey",
    "rsa:2048",
    "-nodes",
    "-keyout",
    `${name}.key`,
    "-out",
    `${name}.pem`,
    "-days",
    "2",
    "-subj",
    `/CN=Sentinel test ${name}`
  )

export const makeCertificates = async (): Promise<Certificates> => {
  const folder = fs.mkdtempSync(path.join(os.tmpdir(), "sentinel-tls-"))
  await selfSignedCa(folder, "ca")
  await selfSignedCa(folder, "other-ca")
  await openssl(
    folder,
    "req",
    "-newkey",
    "rsa:2048",
    "-nodes",
    "-keyout",
    "server.key",
    "-out",
    "server.csr",
    "-subj",
    "/CN=127.0.0.1"
  )
  fs.writeFileSync(
    path.join(folder, "server.ext"),
    [
      "subjectAltName=IP:127.0.0.1",
      "basicConstraints=CA:FALSE",
      "keyUsage=digitalSignature,keyEncipherment",
      "extendedKeyUsage=serverAuth,clientAuth",
      ""
    ].join("\n")
  )
  await openssl(
    folder,
    "x509",
    "-req",
    "-in",
    "server.csr",
    "-CA",
    "ca.pem",
    "-CAkey",
    "ca.key",
    "-CAcreateserial",
    "-out",
    "server.pem",
    "-days",
    "2",
    "-extfile",
    "server.ext"
  )
  return {
    folder,
    caFile: path.join(folder, "ca.pem"),
    certFile: path.join(folder, "server.pem"),
    keyFile: path.join(folder, "server.key"),
    otherCaFile: path.join(folder, "other-ca.pem")
  }
}

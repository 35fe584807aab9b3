/**
 * The certificate files the configuration names (a CA, a client certificate and its key), read when
 * a client is built. The configuration checked at start that each one is a readable file.
 */
import * as fs from "node:fs"
import type { ConnectionOptions } from "node:tls"

export interface TlsFiles {
  /** PEM CA bundle that signs the server's certificate; undefined trusts the system's CAs. */
  readonly caFile: string | undefined
  /** PEM client certificate and key, for servers that authenticate their clients by certificate. */
  readonly certFile: string | undefined
  readonly keyFile: string | undefined
}

/** Node's TLS options for `files`; the server's certificate is verified unless told otherwise. */
export const tlsOptions = (files: TlsFiles, rejectUnauthorized = true): ConnectionOptions => ({
  rejectUnauthorized,
  ...(files.caFile === undefined ? {} : { ca: fs.readFileSync(files.caFile) }),
  ...(files.certFile === undefined ? {} : { cert: fs.readFileSync(files.certFile) }),
  ...(files.keyFile === undefined ? {} : { key: fs.readFileSync(files.keyFile) })
})

/**
 * What must never be shown of the configuration (`sentinel run --print-config`, logs): passwords,
 * keys, tokens, and the passwords inside URLs.
 */

export const masked = "****"

/** CLICKHOUSE_PASSWORD, KAFKA_SASL_PASSWORD, SENTINEL_PSEUDONYMISE_KEY, and any other such name. */
export const isSecretName = (name: string): boolean => /PASSWORD|SECRET|TOKEN|_KEY$/.test(name)

const secretParameter = /pass|secret|token/i

/** `raw` with the password of a `scheme://user:password@…` URL, and password-like parameters, masked. */
export const maskUrl = (raw: string): string => {
  if (!/^[a-z][a-z0-9+.-]*:\/\//i.test(raw)) return raw
  let url: URL
  try {
    url = new URL(raw)
  } catch {
    return raw
  }
  const secrets = [...url.searchParams.keys()].filter((name) => secretParameter.test(name))
  if (url.password === "" && secrets.length === 0) return raw
  if (url.password !== "") url.password = masked
  for (const name of secrets) url.searchParams.set(name, masked)
  return url.toString()
}

/** A variable's value as it may be shown. */
export const maskValue = (name: string, value: string): string =>
  isSecretName(name) ? (value === "" ? "" : masked) : maskUrl(value)

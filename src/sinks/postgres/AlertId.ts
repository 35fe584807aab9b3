/**
 * An alert's identity: a UUID v5 (RFC 9562) of its transaction id, so every replay of a result names
 * the same alert in PostgreSQL, in the outbox and in ClickHouse.
 */
import { createHash } from "node:crypto"

// Fixed forever: changing it would give every past transaction a second alert id.
const namespace = Buffer.from("6c8ec130e3574f379b60ae2b958cd1c2", "hex")

export const alertIdOf = (transactionId: string): string => {
  const bytes = createHash("sha1").update(namespace).update(transactionId, "utf8").digest().subarray(0, 16)
  bytes[6] = (bytes[6]! & 0x0f) | 0x50
  bytes[8] = (bytes[8]! & 0x3f) | 0x80
  const hex = bytes.toString("hex")
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`
}

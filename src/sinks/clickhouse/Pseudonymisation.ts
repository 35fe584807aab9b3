/**
 * Pseudonymisation of user ids in the ClickHouse analytics (`SENTINEL_PSEUDONYMISE_KEY`): every user
 * id written to ClickHouse — transaction_records, detection_results (and so fraud_features and the
 * rollups its views fill) and the relayed alerts — becomes the first 32 hex digits of
 * HMAC-SHA256(key, user id). PostgreSQL keeps the raw ids, so investigators still see who it is.
 *
 * The same key maps a user to the same pseudonym everywhere, so analytics still group and join by
 * user; without the key the mapping cannot be recomputed from guessed ids (a plain hash could). Rows
 * are identified by transaction id, never by user, so deduplication is unaffected. A new key gives
 * new pseudonyms: rows written before and after a rotation no longer join.
 *
 * 32 hex digits are 128 bits: a collision between two users is negligible (about n²/2¹²⁹, 10⁻²¹ for a
 * billion users), and it keeps the key columns and their bloom-filter indexes half the size of the
 * full digest.
 */
import { Redacted } from "effect"
import { createHmac } from "node:crypto"

export interface Pseudonymisation {
  /** What ClickHouse stores for `userId`. */
  readonly userId: (userId: string) => string
}

/** Without a key: user ids are written as they are. */
export const none: Pseudonymisation = { userId: (userId) => userId }

export const pseudonymLength = 32

/**
 * Users recur from batch to batch and an HMAC costs microseconds, so pseudonyms are remembered: up to
 * this many, then the memory starts afresh.
 */
const remembered = 100_000

export const make = (key: Redacted.Redacted | undefined): Pseudonymisation => {
  if (key === undefined) return none
  const secret = Buffer.from(Redacted.value(key))
  const known = new Map<string, string>()
  return {
    userId: (userId) => {
      let pseudonym = known.get(userId)
      if (pseudonym === undefined) {
        pseudonym = createHmac("sha256", secret).update(userId).digest("hex").slice(0, pseudonymLength)
        if (known.size >= remembered) known.clear()
        known.set(userId, pseudonym)
      }
      return pseudonym
    }
  }
}

/**
 * The daemon talks to PostgreSQL as `sentinel_writer` (created by migrations/0005_writer_role.sql): it may
 * insert and read what it writes, but never rewrite the audit log. The daemon's login role must be
 * granted it (`GRANT sentinel_writer TO <login>`); migrations run as the schema's owner instead.
 *
 * The role is a startup parameter of every connection (`options=-c role=…` in the URL) rather than a
 * `SET ROLE` after connecting: PostgreSQL then applies it before the first statement of each pooled
 * connection, including the ones @effect/sql-pg opens for LISTEN, and `RESET ROLE` / `DISCARD ALL`
 * return to it instead of to the login role.
 */
import { Redacted } from "effect"

export const writerRole = "sentinel_writer"

/** `url` with every session starting as `role`; other startup options in the URL are kept. */
export const connectAs = (url: Redacted.Redacted, role: string = writerRole): Redacted.Redacted => {
  const parsed = new URL(Redacted.value(url))
  const options = parsed.searchParams.get("options")
  parsed.searchParams.set("options", `${options === null ? "" : `${options} `}-c role=${role}`)
  return Redacted.make(parsed.toString())
}

/**
 * How far a running Sentinel has got, seen from outside as an operator sees it: its consumer groups'
 * committed offsets against the ends of the topics (Kafka admin), the outbox rows published
 * (PostgreSQL), and its `/metrics` page.
 */
import type { Admin } from "kafkajs"
import pg from "pg"
import type { Topics } from "../../src/config/Config.ts"
import { consumerLag, totalLag } from "../../src/source/ConsumerLag.ts"
import { kafkaClient, topicList } from "../../src/source/KafkaSource.ts"

export interface Groups {
  readonly alerts: string
  readonly analytics: string
}

/** A `/metrics` page, or why there is none. */
export type Scrape = { readonly text: string } | { readonly unavailable: string }

export class Progress {
  private constructor(
    private readonly admin: Admin,
    private readonly database: pg.Client,
    private readonly topics: ReadonlyArray<string>,
    readonly groups: Groups,
    private readonly metricsUrl: string
  ) {}

  static async open(options: {
    readonly brokers: ReadonlyArray<string>
    readonly topics: Topics
    readonly groups: Groups
    readonly databaseUrl: string
    readonly httpPort: number
  }): Promise<Progress> {
    const admin = kafkaClient({ brokers: options.brokers, clientId: "sentinel-bench-progress" }).admin()
    await admin.connect()
    const database = new pg.Client({ connectionString: options.databaseUrl })
    try {
      await database.connect()
    } catch (error) {
      await admin.disconnect()
      throw error
    }
    return new Progress(
      admin,
      database,
      topicList({ topics: options.topics }),
      options.groups,
      `http://127.0.0.1:${options.httpPort}/metrics`
    )
  }

  /** Records of the topics not yet committed by `groupId`. */
  async lag(groupId: string): Promise<number> {
    return totalLag(await consumerLag(this.admin, this.topics, [groupId]), groupId)
  }

  /** True when both of the daemon's consumer groups have members and are done rebalancing. */
  async joined(): Promise<boolean> {
    const { groups } = await this.admin.describeGroups([this.groups.alerts, this.groups.analytics])
    return groups.length === 2 && groups.every((group) => group.state === "Stable" && group.members.length > 0)
  }

  async published(): Promise<number> {
    const { rows } = await this.database.query<{ published: number }>(
      "SELECT count(*)::int AS published FROM outbox WHERE published_at IS NOT NULL"
    )
    return rows[0]!.published
  }

  /** The relay's work: rows published, claims, and seconds from the first claim to the last publication. */
  async relay(): Promise<{ rows: number; claims: number; seconds: number }> {
    const { rows } = await this.database.query<{ rows: number; claims: number; seconds: number | null }>(
      `SELECT count(*)::int AS rows, count(DISTINCT claim_id)::int AS claims,
              extract(epoch FROM max(published_at) - min(claimed_at))::float8 AS seconds
         FROM outbox WHERE published_at IS NOT NULL`
    )
    return { rows: rows[0]!.rows, claims: rows[0]!.claims, seconds: rows[0]!.seconds ?? NaN }
  }

  async scrape(): Promise<Scrape> {
    try {
      const response = await fetch(this.metricsUrl, { signal: AbortSignal.timeout(2_000) })
      if (!response.ok) return { unavailable: `GET ${this.metricsUrl} answered ${response.status}` }
      return { text: await response.text() }
    } catch (error) {
      const cause = error instanceof Error && error.cause instanceof Error ? error.cause.message : String(error)
      return { unavailable: `GET ${this.metricsUrl} failed (${cause})` }
    }
  }

  async close(): Promise<void> {
    await this.admin.disconnect().catch(() => undefined)
    await this.database.end().catch(() => undefined)
  }
}

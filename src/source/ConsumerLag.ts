/**
 * How far each consumer group is behind: per partition of its topics, the records after its
 * committed offset (from the partition's start when it has committed nothing). Readiness, the
 * `sentinel_consumer_lag_records` gauge, the tests and the bench all read it here.
 */
import type { Admin } from "kafkajs"

export interface PartitionLag {
  readonly group: string
  readonly topic: string
  readonly partition: number
  readonly behind: number
}

export const consumerLag = async (
  admin: Admin,
  topics: ReadonlyArray<string>,
  groups: ReadonlyArray<string>
): Promise<ReadonlyArray<PartitionLag>> => {
  // Committed offsets first, then the ends: read the other way round, a commit in between would
  // make a lag negative.
  const committed = new Map<string, Awaited<ReturnType<Admin["fetchOffsets"]>>>()
  for (const group of groups) committed.set(group, await admin.fetchOffsets({ groupId: group, topics: [...topics] }))
  const ends = new Map<string, Array<{ partition: number; high: string; low: string }>>()
  for (const topic of topics) ends.set(topic, await admin.fetchTopicOffsets(topic))
  const lags: Array<PartitionLag> = []
  for (const group of groups) {
    for (const { partitions, topic } of committed.get(group) ?? []) {
      for (const end of ends.get(topic) ?? []) {
        const done = partitions.find((p) => p.partition === end.partition)
        const from = done === undefined || done.offset === "-1" ? BigInt(end.low) : BigInt(done.offset)
        lags.push({ group, topic, partition: end.partition, behind: Math.max(0, Number(BigInt(end.high) - from)) })
      }
    }
  }
  return lags
}

/** The records `group` has not committed yet, over all its partitions. */
export const totalLag = (lags: ReadonlyArray<PartitionLag>, group: string): number =>
  lags.reduce((sum, lag) => (lag.group === group ? sum + lag.behind : sum), 0)

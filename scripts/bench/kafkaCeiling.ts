/**
 * Ceiling of the source: a kafkajs consumer group reading every produced record and doing nothing
 * with it, configured as Sentinel's source consumer is (src/source/KafkaSource.ts).
 */
import type { Topics } from "../../src/config/Config.ts"
import { kafkaClient, topicList } from "../../src/source/KafkaSource.ts"

export interface KafkaCeiling {
  readonly records: number
  /** From the first record received to the last. */
  readonly seconds: number
  readonly recordsPerSecond: number
  /** From connecting to the first record: joining the group and the first fetch. */
  readonly secondsToFirstRecord: number
}

export const kafkaConsumeCeiling = async (options: {
  readonly brokers: ReadonlyArray<string>
  readonly topics: Topics
  readonly groupId: string
  readonly expected: number
  readonly timeoutMs: number
}): Promise<KafkaCeiling> => {
  const consumer = kafkaClient({ brokers: options.brokers, clientId: "sentinel-bench" }).consumer({
    groupId: options.groupId,
    allowAutoTopicCreation: false,
    sessionTimeout: 30_000,
    heartbeatInterval: 3_000,
    maxWaitTimeInMs: 250
  })
  const connected = performance.now()
  let first: number | undefined
  let received = 0
  let finish: (last: number) => void = () => undefined
  const done = new Promise<number>((resolve) => (finish = resolve))
  try {
    await consumer.connect()
    await consumer.subscribe({ topics: [...topicList({ topics: options.topics })], fromBeginning: true })
    await consumer.run({
      autoCommit: false,
      partitionsConsumedConcurrently: 2,
      eachBatch: async ({ batch }) => {
        if (batch.messages.length === 0) return
        first ??= performance.now()
        received += batch.messages.length
        if (received >= options.expected) finish(performance.now())
      }
    })
    let timer: NodeJS.Timeout | undefined
    const last = await Promise.race([
      done,
      new Promise<never>((_, reject) => {
        timer = setTimeout(
          () =>
            reject(
              new Error(
                `kafkajs consume-only: ${received} of ${options.expected} records after ${options.timeoutMs / 1000}s`
              )
            ),
          options.timeoutMs
        )
      })
    ]).finally(() => clearTimeout(timer))
    if (received !== options.expected) {
      throw new Error(`kafkajs consume-only: received ${received} records, ${options.expected} were produced`)
    }
    const seconds = (last - first!) / 1000
    return {
      records: received,
      seconds,
      recordsPerSecond: received / seconds,
      secondsToFirstRecord: (first! - connected) / 1000
    }
  } finally {
    await consumer.disconnect().catch(() => undefined)
  }
}

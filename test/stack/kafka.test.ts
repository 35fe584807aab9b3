import { describe, expect, it } from "vitest"
import { createTopics, kafkaFor, uniqueName } from "../support/services.ts"

describe("Kafka (KRaft, local stack)", () => {
  it("carries 1,000 messages from a producer to a consumer group, every one exactly as sent", async () => {
    const topic = uniqueName("smoke")
    await createTopics([topic], 6)
    const kafka = kafkaFor()
    const producer = kafka.producer({ idempotent: true })
    await producer.connect()
    const sent = Array.from({ length: 1000 }, (_, i) => ({ key: `k${i % 37}`, value: JSON.stringify({ n: i }) }))
    for (let i = 0; i < sent.length; i += 250) {
      await producer.send({ topic, messages: sent.slice(i, i + 250) })
    }
    await producer.disconnect()

    const consumer = kafka.consumer({ groupId: uniqueName("smoke-group") })
    await consumer.connect()
    await consumer.subscribe({ topic, fromBeginning: true })
    const received: Array<number> = []
    const partitions = new Set<number>()
    await new Promise<void>((resolve, reject) => {
      consumer
        .run({
          eachMessage: async ({ partition, message }) => {
            partitions.add(partition)
            received.push((JSON.parse(message.value!.toString()) as { n: number }).n)
            if (received.length === sent.length) resolve()
          }
        })
        .catch(reject)
    })
    await consumer.disconnect()

    expect(received.sort((a, b) => a - b)).toEqual(sent.map((_, i) => i))
    // 37 keys over 6 partitions: the default partitioner spreads them.
    expect(partitions.size).toBeGreaterThan(1)
  })
})

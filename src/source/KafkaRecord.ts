/**
 * A record as it left Kafka: its coordinates and raw bytes. Every stage after the source carries
 * these so that offsets can be committed only behind durable data and so analytics rows can name
 * where they came from.
 */
export interface KafkaRecord {
  readonly topic: string
  readonly partition: number
  /** Kafka offsets are int64; kept as a decimal string so nothing above 2^53 is rounded. */
  readonly offset: string
  /** The record's Kafka timestamp, epoch milliseconds. */
  readonly timestamp: number
  readonly key: string | null
  /** Header values decoded as UTF-8; a repeated header keeps its last value. */
  readonly headers: Readonly<Record<string, string>>
  readonly value: Buffer | null
}

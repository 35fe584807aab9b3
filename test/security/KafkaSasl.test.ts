/**
 * Sentinel against a Kafka broker that authenticates its clients: a private KRaft broker with a
 * SASL_PLAINTEXT listener (PLAIN, SCRAM) and a SASL_SSL one (a certificate made by openssl).
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { type PrivateKafka, privateKafka } from "../fault/privateKafka.ts"
import {
  type Deployment,
  drained,
  freshDeployment,
  pgQuery,
  produce,
  sentinel,
  sentinelExit,
  startDaemon,
  stopDaemon,
  waitFor
} from "../support/daemon.ts"
import { type Certificates, makeCertificates } from "./certificates.ts"

const user = "sentinel"
const password = "sentinel-secret"

describe("Kafka with SASL", () => {
  let certificates: Certificates
  let kafka: PrivateKafka
  let deployment: Deployment
  beforeAll(async () => {
    certificates = await makeCertificates()
    kafka = await privateKafka({ users: { [user]: password }, tls: certificates })
    deployment = await freshDeployment({ KAFKA_BROKERS: kafka.saslBrokers! })
    await sentinel(deployment.env, "migrate")
  }, 240_000)
  afterAll(async () => {
    await kafka?.remove()
    await deployment?.drop()
  })

  /** The deployment as the test's own probes see it: through the broker's unauthenticated listener. */
  const probed = () => ({ ...deployment, env: { ...deployment.env, KAFKA_BROKERS: kafka.brokers } })

  /** Publishes records with `env`'s credentials, runs the daemon with them until every record is in. */
  const movesRecords = async (env: Record<string, string>, first: number) => {
    const [before] = await pgQuery<{ n: string }>(deployment.databaseUrl, "SELECT count(*) AS n FROM outbox")
    const tally = await produce(
      env,
      "--count",
      "200",
      "--malformed",
      "0",
      "--alert-share",
      "0.5",
      "--first",
      `${first}`
    )
    expect(tally.alerts).toBeGreaterThan(0)
    const daemon = startDaemon(env)
    await waitFor(
      "every record committed and every alert relayed",
      () => drained(probed(), Number(before!.n) + tally.alerts)
    ).catch((error: Error) => {
      throw new Error(`${error.message}\n${daemon.output()}`)
    })
    expect(await stopDaemon(daemon), daemon.output()).toEqual({ code: 0, signal: null })
  }

  it("moves records with SASL/PLAIN and the right credentials", async () => {
    await movesRecords(
      { ...deployment.env, KAFKA_SASL_MECHANISM: "plain", KAFKA_SASL_USERNAME: user, KAFKA_SASL_PASSWORD: password },
      0
    )
  }, 240_000)

  it("stops produce and the daemon with a clear error and exit 1 on wrong credentials", async () => {
    const wrong = {
      ...deployment.env,
      KAFKA_SASL_MECHANISM: "plain",
      KAFKA_SASL_USERNAME: user,
      KAFKA_SASL_PASSWORD: "not-the-password",
      SENTINEL_MAX_RESTARTS: "1",
      SENTINEL_RESTART_BACKOFF_MS: "100"
    }
    const produced = await sentinelExit(wrong, "produce", "--count", "10")
    expect(produced.code).toBe(1)
    // kafkajs's own log lines come first; the last line is the command's verdict.
    expect(produced.stderr).toMatch(
      /^sentinel produce: kafka create topics failed: SASL PLAIN authentication failed: .*Invalid username or password$/m
    )

    const daemon = startDaemon(wrong)
    expect(await daemon.exited, daemon.output()).toEqual({ code: 1, signal: null })
    expect(daemon.output()).toMatch(
      /^sentinel run: kafka .+ failed: SASL PLAIN authentication failed: .*Invalid username or password$/m
    )
  }, 240_000)

  it("moves records with SCRAM-SHA-512 over SASL_SSL, checking the broker against the CA", async () => {
    await movesRecords(
      {
        ...deployment.env,
        KAFKA_BROKERS: kafka.saslSslBrokers!,
        KAFKA_SSL: "true",
        KAFKA_SSL_CA_FILE: certificates.caFile,
        KAFKA_SASL_MECHANISM: "scram-sha-512",
        KAFKA_SASL_USERNAME: user,
        KAFKA_SASL_PASSWORD: password
      },
      200
    )
  }, 240_000)
})

import { Effect, Either } from "effect"
import { spawn } from "node:child_process"
import * as fs from "node:fs"
import * as net from "node:net"
import * as os from "node:os"
import * as path from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { describeConfigError, load } from "../../src/config/Config.ts"
import * as ConfigFile from "../../src/config/ConfigFile.ts"
import { effectiveConfiguration } from "../../src/config/PrintConfig.ts"
import { maskValue } from "../../src/config/Secrets.ts"
import { projectRoot } from "../support/services.ts"

const folder = fs.mkdtempSync(path.join(os.tmpdir(), "sentinel-config-file-"))
const write = (name: string, text: string) => {
  const file = path.join(folder, name)
  fs.writeFileSync(file, text)
  return file
}

const parsed = (text: string) => ConfigFile.parse("sentinel.env", text)

const sources = (env: Record<string, string>, text?: string): ConfigFile.Sources => ({
  env,
  file: text === undefined ? undefined : Either.getOrThrow(parsed(text))
})

const loadFrom = (from: ConfigFile.Sources) =>
  Effect.runSync(Effect.either(Effect.withConfigProvider(load, ConfigFile.provider(from))))

const problems = (from: ConfigFile.Sources) => {
  const result = loadFrom(from)
  if (Either.isRight(result)) throw new Error("expected a configuration error")
  return describeConfigError(result.left)
}

describe("the config file", () => {
  it("reads NAME=value lines, comments, blank lines and quoted values", () => {
    const file = Either.getOrThrow(parsed(
      [
        "# Sentinel's settings",
        "",
        "KAFKA_BROKERS=a:1,b:2",
        "  SENTINEL_GROUP_ID = fraud  ",
        "CLICKHOUSE_PASSWORD=\"p#ss word\"",
        "SENTINEL_PG_ROLE=''",
        "OTEL_SERVICE_NAME='sentinel = prod'",
        "DATABASE_URL=postgres://u:p@h:5/db?options=-c%20x=1",
        "   # an indented comment"
      ].join("\r\n")
    ))
    expect(Object.fromEntries([...file.entries].map(([name, { line, value }]) => [name, [value, line]]))).toEqual({
      KAFKA_BROKERS: ["a:1,b:2", 3],
      SENTINEL_GROUP_ID: ["fraud", 4],
      CLICKHOUSE_PASSWORD: ["p#ss word", 5],
      SENTINEL_PG_ROLE: ["", 6],
      OTEL_SERVICE_NAME: ["sentinel = prod", 7],
      DATABASE_URL: ["postgres://u:p@h:5/db?options=-c%20x=1", 8]
    })
  })

  it("names the line of a bad one", () => {
    const message = (text: string) => Either.getOrThrow(Either.flip(parsed(text))).message
    expect(message("# ok\nKAFKA_BROKERS=a:1\nthis is not an assignment\n")).toBe(
      "config file sentinel.env line 3: expected NAME=value"
    )
    expect(message("1ABC=x")).toBe("config file sentinel.env line 1: expected NAME=value")
    expect(message("\nCLICKHOUSE_PASSWORD=\"open")).toBe(
      "config file sentinel.env line 2: CLICKHOUSE_PASSWORD: expected a closing \""
    )
    expect(message("A=1\nB=2\nA=3")).toBe("config file sentinel.env line 3: A is set twice (also on line 1)")
  })

  it("fills in what the environment lacks; the environment wins", () => {
    const settings = Either.getOrThrow(loadFrom(sources(
      { SENTINEL_GROUP_ID: "from-env" },
      "SENTINEL_GROUP_ID=from-file\nSENTINEL_BATCH_MAX_RECORDS=42\nKAFKA_SSL=true"
    )))
    expect(settings.kafka.groupId).toBe("from-env")
    expect(settings.batch.maxRecords).toBe(42)
    expect(settings.kafka.tls).toBeDefined()
    // Twice the batch size, whichever source set that.
    expect(settings.kafka.maxInFlight).toBe(84)
  })

  it("validates a value from the file with the environment's message", () => {
    expect(problems(sources({}, "SENTINEL_BATCH_MAX_WAIT_MS=soon\nSENTINEL_BATCH_MAX_RECORDS=0"))).toBe(
      [
        "SENTINEL_BATCH_MAX_RECORDS: expected a positive integer",
        "SENTINEL_BATCH_MAX_WAIT_MS: Expected an integer value but received \"soon\""
      ].join("\n")
    )
  })

  it("never lets the file stand in for a bad environment value", () => {
    expect(problems(sources({ SENTINEL_BATCH_MAX_WAIT_MS: "soon" }, "SENTINEL_BATCH_MAX_WAIT_MS=5"))).toBe(
      "SENTINEL_BATCH_MAX_WAIT_MS: Expected an integer value but received \"soon\""
    )
  })

  it("is named by --config, else by SENTINEL_CONFIG_FILE", async () => {
    const first = write("first.env", "SENTINEL_GROUP_ID=first\n")
    const second = write("second.env", "SENTINEL_GROUP_ID=second\n")
    const resolved = (option: string | undefined, env: Record<string, string>) =>
      Effect.runPromise(ConfigFile.resolve(option, env)).then((s) => s.file?.entries.get("SENTINEL_GROUP_ID")?.value)
    expect(await resolved(undefined, { SENTINEL_CONFIG_FILE: first })).toBe("first")
    expect(await resolved(second, { SENTINEL_CONFIG_FILE: first })).toBe("second")
    expect(await resolved(undefined, {})).toBeUndefined()
    const failure = await Effect.runPromise(Effect.flip(ConfigFile.resolve(path.join(folder, "nope.env"), {})))
    expect(failure.message).toBe(`config file ${path.join(folder, "nope.env")}: cannot read it (ENOENT)`)
  })
})

describe("the effective configuration", () => {
  it("lists every variable with its value and source, secrets masked", () => {
    const shown = effectiveConfiguration(sources(
      {
        DATABASE_URL: "postgres://sentinel:hunter2@db:5432/sentinel?sslmode=require",
        KAFKA_SASL_PASSWORD: "kafka-secret",
        SENTINEL_PSEUDONYMISE_KEY: "k".repeat(40)
      },
      [
        "CLICKHOUSE_URL=https://default:ch-secret@ch.example:8443",
        "CLICKHOUSE_PASSWORD=ch-secret-2",
        "KAFKA_SASL_MECHANISM=plain",
        "KAFKA_SASL_USERNAME=sentinel",
        "DATABASE_URL=postgres://ignored",
        "JAEGER_QUERY_URL=http://j:16686"
      ].join("\n")
    ))
    expect(shown.settings.DATABASE_URL).toEqual({
      value: "postgres://sentinel:****@db:5432/sentinel?sslmode=require",
      source: "env"
    })
    expect(shown.settings.KAFKA_SASL_PASSWORD).toEqual({ value: "****", source: "env" })
    expect(shown.settings.SENTINEL_PSEUDONYMISE_KEY).toEqual({ value: "****", source: "env" })
    expect(shown.settings.CLICKHOUSE_URL).toEqual({ value: "https://default:****@ch.example:8443/", source: "file" })
    expect(shown.settings.CLICKHOUSE_PASSWORD).toEqual({ value: "****", source: "file" })
    expect(shown.settings.KAFKA_SASL_USERNAME).toEqual({ value: "sentinel", source: "file" })
    expect(shown.settings.KAFKA_BROKERS).toEqual({ value: "127.0.0.1:9092", source: "default" })
    expect(shown.settings.SENTINEL_BATCH_MAX_RECORDS).toEqual({ value: "5000", source: "default" })
    expect(shown.settings.KAFKA_SSL_CA_FILE).toEqual({ value: null, source: "default" })
    expect(shown.configFile).toBe("sentinel.env")
    expect(shown.ignored).toEqual({ JAEGER_QUERY_URL: 6 })
    expect(JSON.stringify(shown)).not.toMatch(/hunter2|secret|kkkk/)
  })

  it("masks by name and inside URLs", () => {
    expect(maskValue("SOME_API_TOKEN", "t")).toBe("****")
    expect(maskValue("OTHER_KEY", "k")).toBe("****")
    expect(maskValue("KAFKA_SSL_KEY_FILE", "/etc/key.pem")).toBe("/etc/key.pem")
    expect(maskValue("CLICKHOUSE_PASSWORD", "")).toBe("")
    expect(maskValue("DATABASE_URL", "postgres://h/db?password=p&user=u")).toBe("postgres://h/db?password=****&user=u")
    expect(maskValue("DATABASE_URL", "postgres://u@h/db")).toBe("postgres://u@h/db")
    expect(maskValue("KAFKA_BROKERS", "a:1,b:2")).toBe("a:1,b:2")
  })
})

/** `sentinel` as a user runs it, with only `env` (and PATH) for an environment. */
const sentinel = (env: Record<string, string>, ...args: Array<string>) =>
  new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
    const child = spawn(process.execPath, [path.join(projectRoot, "bin", "sentinel.js"), ...args], {
      env: { PATH: process.env.PATH ?? "", HOME: process.env.HOME ?? "", ...env },
      cwd: projectRoot
    })
    let stdout = ""
    let stderr = ""
    child.stdout.on("data", (chunk: Buffer) => (stdout += chunk.toString()))
    child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()))
    child.once("exit", (code) => resolve({ code, stdout, stderr }))
  })

describe("sentinel with a config file", () => {
  // Every service address points here: a connection attempt would be counted.
  let connections = 0
  let address = ""
  const listener = net.createServer((socket) => {
    connections++
    socket.destroy()
  })
  beforeAll(async () => {
    await new Promise<void>((resolve) => listener.listen(0, "127.0.0.1", resolve))
    address = `127.0.0.1:${(listener.address() as net.AddressInfo).port}`
  })
  afterAll(() => new Promise<void>((resolve) => listener.close(() => resolve())))

  it("run --print-config prints the configuration and exits 0 without connecting anywhere", async () => {
    const file = write(
      "print.env",
      [
        `KAFKA_BROKERS=${address}`,
        `CLICKHOUSE_URL=https://default:ch-secret@${address}`,
        "CLICKHOUSE_PASSWORD=ch-secret",
        "SENTINEL_GROUP_ID=from-file"
      ].join("\n")
    )
    const result = await sentinel(
      {
        DATABASE_URL: `postgres://sentinel:pg-secret@${address}/sentinel`,
        SENTINEL_PSEUDONYMISE_KEY: "p".repeat(32),
        SENTINEL_GROUP_ID: "from-env"
      },
      "run",
      "--print-config",
      "--config",
      file
    )
    expect(result.stderr).toBe("")
    expect(result.code).toBe(0)
    const shown = JSON.parse(result.stdout) as ReturnType<typeof effectiveConfiguration>
    expect(shown.configFile).toBe(file)
    expect(shown.settings.SENTINEL_GROUP_ID).toEqual({ value: "from-env", source: "env" })
    expect(shown.settings.KAFKA_BROKERS).toEqual({ value: address, source: "file" })
    expect(shown.settings.DATABASE_URL).toEqual({
      value: `postgres://sentinel:****@${address}/sentinel`,
      source: "env"
    })
    expect(shown.settings.CLICKHOUSE_PASSWORD).toEqual({ value: "****", source: "file" })
    expect(shown.settings.SENTINEL_PSEUDONYMISE_KEY).toEqual({ value: "****", source: "env" })
    expect(shown.settings.SENTINEL_OUTBOX_BATCH_SIZE).toEqual({ value: "5000", source: "default" })
    expect(result.stdout).not.toMatch(/secret|pppp/)
    expect(connections).toBe(0)
  }, 60_000)

  it("takes the file from SENTINEL_CONFIG_FILE, and says which names it ignores", async () => {
    const file = write("named.env", "SENTINEL_BATCH_MAX_RECORDS=7\nSENTINEL_BACTH_MAX_WAIT_MS=5\n")
    const result = await sentinel({ SENTINEL_CONFIG_FILE: file }, "run", "--print-config")
    expect(result.code).toBe(0)
    expect(result.stderr).toBe(
      `sentinel: config file ${file} line 2: SENTINEL_BACTH_MAX_WAIT_MS is not a Sentinel setting (ignored)\n`
    )
    const shown = JSON.parse(result.stdout) as ReturnType<typeof effectiveConfiguration>
    expect(shown.settings.SENTINEL_BATCH_MAX_RECORDS).toEqual({ value: "7", source: "file" })
  }, 60_000)

  it("stops with exit 78 and one line naming the file and line", async () => {
    const missing = path.join(folder, "missing.env")
    const unreadable = await sentinel({}, "migrate", "--config", missing)
    expect(unreadable.code).toBe(78)
    expect(unreadable.stderr).toBe(`sentinel: config file ${missing}: cannot read it (ENOENT)\n`)

    const bad = write("bad.env", "# settings\nKAFKA_BROKERS=a:1\nSENTINEL_GROUP_ID\n")
    const badLine = await sentinel({}, "produce", "--count", "1", "--config", bad)
    expect(badLine.code).toBe(78)
    expect(badLine.stderr).toBe(`sentinel: config file ${bad} line 3: expected NAME=value\n`)

    const badValue = write("bad-value.env", "SENTINEL_PSEUDONYMISE_KEY=short\n")
    const invalid = await sentinel({ SENTINEL_CONFIG_FILE: badValue }, "run", "--print-config")
    expect(invalid.code).toBe(78)
    expect(invalid.stderr).toBe(
      "sentinel: invalid configuration\n" +
        "SENTINEL_PSEUDONYMISE_KEY: expected at least 32 bytes (e.g. `openssl rand -hex 32`)\n"
    )
    expect(connections).toBe(0)
  }, 90_000)
})

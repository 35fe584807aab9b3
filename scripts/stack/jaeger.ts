/**
 * Jaeger, built once from the Go module proxy into the project cache, receiving OTLP over HTTP and
 * serving its query API on loopback with in-memory storage (otel/jaeger.yaml).
 */
import * as fs from "node:fs"
import * as path from "node:path"
import { dirs, ensureDir, projectRoot } from "./layout.ts"
import {
  choosePort,
  isAlive,
  readStarted,
  recordStarted,
  requireCommand,
  run,
  spawnDetached,
  waitUntil
} from "./process.ts"

export const jaegerVersion = "v1.76.0"
const binary = path.join(dirs.cache, "bin", `jaeger-${jaegerVersion}`)
const marker = binary

/**
 * `go install pkg@version` refuses Jaeger because its go.mod has replace directives, so the
 * program is added as a tool of a throwaway module in the cache and built from there.
 */
const ensureBinary = async (log: (line: string) => void): Promise<void> => {
  if (fs.existsSync(binary)) return
  requireCommand("go", "the Go toolchain (https://go.dev/doc/install, or `apt-get install golang`)")
  log(`jaeger: building github.com/jaegertracing/jaeger/cmd/jaeger@${jaegerVersion} (first run only, a few minutes)`)
  const module = ensureDir(path.join(dirs.cache, "jaeger-module"))
  if (!fs.existsSync(path.join(module, "go.mod"))) {
    await run("go", ["mod", "init", "sentinel.local/jaeger"], { cwd: module })
  }
  await run("go", ["get", "-tool", `github.com/jaegertracing/jaeger/cmd/jaeger@${jaegerVersion}`], { cwd: module })
  const partial = `${binary}.partial`
  await run("go", ["build", "-o", partial, "github.com/jaegertracing/jaeger/cmd/jaeger"], { cwd: module })
  fs.renameSync(partial, binary)
}

export const probeJaeger = async (queryUrl: string): Promise<boolean> => {
  const response = await fetch(`${queryUrl}/api/services`, { signal: AbortSignal.timeout(2000) })
  return response.ok
}

export interface JaegerState {
  readonly otlpPort: number
  readonly queryPort: number
  readonly queryGrpcPort: number
  readonly healthPort: number
}

const addresses = (state: JaegerState) => ({
  otlp: `http://127.0.0.1:${state.otlpPort}`,
  query: `http://127.0.0.1:${state.queryPort}`
})

export const startJaeger = async (
  previous: JaegerState | undefined,
  log: (line: string) => void
): Promise<{ otlp: string; query: string; state: JaegerState; started: boolean }> => {
  const running = readStarted("jaeger")
  if (isAlive(running) && previous !== undefined) {
    const found = addresses(previous)
    await waitUntil("jaeger", () => probeJaeger(found.query), 30_000)
    return { ...found, state: previous, started: false }
  }
  await ensureBinary(log)
  const state: JaegerState = {
    otlpPort: await choosePort(process.env.SENTINEL_JAEGER_OTLP_PORT, previous?.otlpPort),
    queryPort: await choosePort(process.env.SENTINEL_JAEGER_QUERY_PORT, previous?.queryPort),
    queryGrpcPort: await choosePort(undefined, previous?.queryGrpcPort),
    healthPort: await choosePort(undefined, previous?.healthPort)
  }
  const pid = spawnDetached(binary, ["--config", path.join(projectRoot, "otel", "jaeger.yaml")], "jaeger", {
    env: {
      ...process.env,
      JAEGER_OTLP_HTTP_PORT: String(state.otlpPort),
      JAEGER_QUERY_PORT: String(state.queryPort),
      JAEGER_QUERY_GRPC_PORT: String(state.queryGrpcPort),
      JAEGER_HEALTH_PORT: String(state.healthPort)
    }
  })
  recordStarted("jaeger", { pid, marker })
  const found = addresses(state)
  await waitUntil("jaeger", () => probeJaeger(found.query), 60_000, () => {
    if (!isAlive({ pid, marker })) {
      throw new Error(`jaeger exited during start; see ${path.join(dirs.logs, "jaeger.log")}`)
    }
  })
  return { ...found, state, started: true }
}

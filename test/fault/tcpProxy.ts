/**
 * A small TCP proxy to put between Sentinel and PostgreSQL, to cut connections the ways networks
 * do: `refuse` new connections (nothing listens), `reset` the open ones (RST), `stall` (connections
 * stay open, nothing gets through), or `pass`.
 */
import * as net from "node:net"

export type ProxyMode = "pass" | "refuse" | "stall"

export interface TcpProxy {
  readonly port: number
  readonly setMode: (mode: ProxyMode) => Promise<void>
  /** Resets every open connection, as a dropped route or a firewall does. */
  readonly resetAll: () => void
  /** Connections accepted so far, in every mode but `refuse`. */
  readonly accepted: () => number
  readonly close: () => Promise<void>
}

export const tcpProxy = async (target: { readonly host: string; readonly port: number }): Promise<TcpProxy> => {
  let mode: ProxyMode = "pass"
  let accepted = 0
  const pairs = new Set<{ readonly client: net.Socket; readonly upstream: net.Socket }>()
  const server = net.createServer((client) => {
    const upstream = net.connect(target)
    const pair = { client, upstream }
    pairs.add(pair)
    accepted++
    const forward = (from: net.Socket, to: net.Socket) =>
      from.on("data", (chunk: Buffer) => {
        // Stalled: bytes are held back, as on a congested or black-holed route.
        if (mode === "stall") from.pause()
        to.write(chunk)
      })
    forward(client, upstream)
    forward(upstream, client)
    const drop = () => {
      pairs.delete(pair)
      client.destroy()
      upstream.destroy()
    }
    client.on("error", drop).on("close", drop)
    upstream.on("error", drop).on("close", drop)
    if (mode === "stall") {
      client.pause()
      upstream.pause()
    }
  })
  const listen = (port: number) =>
    new Promise<number>((resolve, reject) => {
      server.once("error", reject)
      server.listen(port, "127.0.0.1", () => {
        const address = server.address()
        resolve(typeof address === "object" && address !== null ? address.port : port)
      })
    })
  const port = await listen(0)
  const stopListening = () => new Promise<void>((resolve) => server.close(() => resolve()))

  return {
    port,
    setMode: async (next) => {
      if (next === mode) return
      if (mode === "refuse") await listen(port)
      if (next === "refuse") {
        const closed = stopListening()
        // Refusing also means what was open breaks: a server that went away.
        for (const { client, upstream } of pairs) {
          client.resetAndDestroy()
          upstream.destroy()
        }
        mode = next
        await closed
        return
      }
      mode = next
      if (next === "pass") {
        for (const { client, upstream } of pairs) {
          client.resume()
          upstream.resume()
        }
      }
    },
    resetAll: () => {
      for (const { client, upstream } of pairs) {
        client.resetAndDestroy()
        upstream.destroy()
      }
    },
    accepted: () => accepted,
    close: async () => {
      for (const { client, upstream } of pairs) {
        client.destroy()
        upstream.destroy()
      }
      if (mode !== "refuse") await stopListening()
    }
  }
}

/** A proxy in front of the PostgreSQL at `databaseUrl`, and that URL through the proxy. */
export const postgresProxy = async (
  databaseUrl: string
): Promise<{ readonly proxy: TcpProxy; readonly url: string }> => {
  const url = new URL(databaseUrl)
  const proxy = await tcpProxy({ host: url.hostname, port: Number(url.port) })
  url.port = String(proxy.port)
  return { proxy, url: url.toString() }
}

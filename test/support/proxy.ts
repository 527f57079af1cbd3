import { connect, createServer, type Socket } from "node:net"

/** TCP forwarder to the test server, so a test can make "the database" hang or vanish. */
export const proxy = async (targetPort: number) => {
  const sockets = new Set<Socket>()
  const links = new Set<{ client: Socket; upstream: Socket }>()
  let mode: "forward" | "hang" | "refuse" = "forward"
  const server = createServer((client) => {
    sockets.add(client)
    client.on("error", () => {})
    if (mode === "hang") return
    if (mode === "refuse") return void client.destroy()
    const upstream = connect(targetPort, "127.0.0.1")
    sockets.add(upstream)
    links.add({ client, upstream })
    upstream.on("error", () => client.destroy())
    client.pipe(upstream).pipe(client)
  })
  await new Promise<void>((done) => server.listen(0, "127.0.0.1", done))
  const address = server.address()
  const port = typeof address === "object" && address ? address.port : 0
  const dropAll = () => {
    for (const s of sockets) s.destroy()
    sockets.clear()
    links.clear()
  }
  return {
    port,
    /** Open connections stay open but nothing gets through any more; new ones are never answered. */
    hang: () => {
      mode = "hang"
      for (const { client, upstream } of links) {
        client.unpipe(upstream)
        upstream.unpipe(client)
        client.pause()
        upstream.pause()
      }
    },
    /** Drop every connection and reset new ones: the database is down. */
    refuse: () => {
      mode = "refuse"
      dropAll()
    },
    /** Forward again: the database is back. */
    restore: () => {
      mode = "forward"
    },
    close: () => {
      server.close()
      dropAll()
    },
  }
}

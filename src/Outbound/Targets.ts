/**
 * Where webhooks may go. Unless WEBHOOK_ALLOW_PRIVATE=true, a URL must be https and none of its
 * host's addresses may be private, loopback, link-local or otherwise not publicly routable: checked
 * when the endpoint is saved and again, on a fresh resolution, before every attempt (a name may
 * resolve elsewhere since, DNS rebinding). Between that check and the connection the name could in
 * principle change again; https with certificate checks is what keeps such a request from reaching
 * an internal service (it would have to present a certificate for the endpoint's host).
 */
import { lookup } from "node:dns/promises"
import { isIP } from "node:net"
import { Effect } from "effect"

/** IPv4 ranges that are not publicly routable (RFC 6890 and friends): [network, prefix length]. */
const V4_BLOCKED: ReadonlyArray<readonly [string, number]> = [
  ["0.0.0.0", 8], // "this network"
  ["10.0.0.0", 8], // private
  ["100.64.0.0", 10], // carrier-grade NAT
  ["127.0.0.0", 8], // loopback
  ["169.254.0.0", 16], // link-local (cloud metadata services live here)
  ["172.16.0.0", 12], // private
  ["192.0.0.0", 24], // IETF protocol assignments
  ["192.0.2.0", 24], // documentation
  ["192.88.99.0", 24], // 6to4 relay
  ["192.168.0.0", 16], // private
  ["198.18.0.0", 15], // benchmarking
  ["198.51.100.0", 24], // documentation
  ["203.0.113.0", 24], // documentation
  ["224.0.0.0", 4], // multicast
  ["240.0.0.0", 4], // reserved, broadcast
]

const v4Number = (address: string) => address.split(".").reduce((n, part) => n * 256 + Number(part), 0)

const inV4Range = (address: string, [network, bits]: readonly [string, number]) => {
  const size = 2 ** (32 - bits)
  return Math.floor(v4Number(address) / size) === Math.floor(v4Number(network) / size)
}

/** The eight 16-bit groups of an IPv6 address (a trailing dotted IPv4 part included). */
const v6Groups = (address: string): ReadonlyArray<number> => {
  let text = address.toLowerCase().split("%")[0]
  const v4 = /(\d+\.\d+\.\d+\.\d+)$/.exec(text)?.[1]
  if (v4 !== undefined) {
    const n = v4Number(v4)
    text = `${text.slice(0, -v4.length)}${(n >>> 16).toString(16)}:${(n & 0xffff).toString(16)}`
  }
  const [head, tail] = text.split("::")
  const parse = (part: string | undefined) => (part ? part.split(":").map((g) => Number.parseInt(g, 16)) : [])
  const front = parse(head)
  const back = parse(tail)
  return tail === undefined ? front : [...front, ...Array(8 - front.length - back.length).fill(0), ...back]
}

const v4FromGroups = (hi: number, lo: number) => `${hi >>> 8}.${hi & 255}.${lo >>> 8}.${lo & 255}`

/** Why `address` (an IP literal) is not a public address, or undefined. */
export const privateAddress = (address: string): string | undefined => {
  const family = isIP(address)
  if (family === 4) return V4_BLOCKED.some((range) => inV4Range(address, range)) ? address : undefined
  if (family !== 6) return address // not an address at all: refuse rather than guess
  const g = v6Groups(address)
  const zeroPrefix = (n: number) => g.slice(0, n).every((x) => x === 0)
  if (zeroPrefix(7) && (g[7] === 0 || g[7] === 1)) return address // :: and ::1
  // IPv4-mapped (::ffff:a.b.c.d), IPv4-compatible and NAT64 (64:ff9b::/96) carry an IPv4 address
  if (
    (zeroPrefix(5) && g[5] === 0xffff) ||
    zeroPrefix(6) ||
    (g[0] === 0x64 && g[1] === 0xff9b && g.slice(2, 6).every((x) => x === 0))
  )
    return privateAddress(v4FromGroups(g[6], g[7])) === undefined ? undefined : address
  if ((g[0] & 0xfe00) === 0xfc00) return address // unique local fc00::/7
  if ((g[0] & 0xffc0) === 0xfe80) return address // link-local fe80::/10
  if ((g[0] & 0xffc0) === 0xfec0) return address // site-local (deprecated) fec0::/10
  if ((g[0] & 0xff00) === 0xff00) return address // multicast
  if (g[0] === 0x2001 && g[1] === 0x0db8) return address // documentation
  // 6to4 (2002::/16) carries an IPv4 address in its second and third groups
  if (g[0] === 0x2002) return privateAddress(v4FromGroups(g[1], g[2])) === undefined ? undefined : address
  if (g[0] === 0x2001 && g[1] === 0) return address // Teredo 2001::/32: tunnels to any IPv4 address
  if (g[0] === 0x0100 && g[1] === 0 && g[2] === 0 && g[3] === 0) return address // discard-only 100::/64
  return undefined
}

/** The host of a URL as an address or name (IPv6 literals lose their brackets). */
const hostOf = (url: URL) => url.hostname.replace(/^\[(.*)\]$/, "$1")

/** The addresses `host` resolves to (itself if it is an address); empty when it does not resolve. */
const resolve = (host: string) =>
  isIP(host) !== 0
    ? Effect.succeed([host])
    : Effect.promise(() =>
        lookup(host, { all: true, verbatim: true }).then(
          (found) => found.map((a) => a.address),
          () => [] as Array<string>,
        ),
      )

/**
 * Why webhooks may not go to `raw`, or undefined. `allowPrivate` (WEBHOOK_ALLOW_PRIVATE) lifts both
 * rules, for local development and tests. A name that does not resolve (yet) is accepted when an
 * endpoint is saved (`unresolved: "accept"`), and refused for an attempt (the request would resolve
 * it on its own, unchecked); every attempt resolves it again.
 */
export const refusal = (
  raw: string,
  allowPrivate: boolean,
  unresolved: "accept" | "refuse" = "accept",
): Effect.Effect<string | undefined> =>
  Effect.gen(function* () {
    if (allowPrivate) return undefined
    const url = new URL(raw)
    if (url.protocol !== "https:")
      return "must be an https URL (http is allowed only with WEBHOOK_ALLOW_PRIVATE=true)"
    const addresses = yield* resolve(hostOf(url))
    if (addresses.length === 0 && unresolved === "refuse") return `${url.hostname} does not resolve`
    const blocked = addresses.map(privateAddress).find((a) => a !== undefined)
    return blocked === undefined
      ? undefined
      : `must not point at a private, loopback or link-local address (${url.hostname} is ${blocked})`
  })

import { assert, assertEquals } from "./_assert.ts";
import { inCidrs, limiterKey, parseCidr, parseIp } from "../lib/rate_limit/ip.ts";

Deno.test("addresses parse in every notation and CIDRs match across IPv4 and IPv6", () => {
  const same = (a: string, b: string) => assertEquals(parseIp(a), parseIp(b), `${a} = ${b}`);
  same("::ffff:192.0.2.1", "192.0.2.1");
  same("::ffff:c000:201", "192.0.2.1");
  same("[2001:db8::1]", "2001:0db8:0000:0000:0000:0000:0000:0001");
  same("fe80::1%eth0", "fe80::1");
  for (
    const bad of [
      "",
      "1.2.3",
      "1.2.3.256",
      "01.2.3.4",
      "1::2::3",
      "12345::",
      "::1.2.3.4:5",
      "a.b.c.d",
      "1.2.3.4::",
    ]
  ) {
    assertEquals(parseIp(bad), null, bad);
  }
  const cidrs = ["10.0.0.0/8", "2001:db8::/32", "127.0.0.1", "::1"].map((c) => parseCidr(c)!);
  assert(inCidrs(parseIp("10.255.0.1")!, cidrs));
  assert(inCidrs(parseIp("::ffff:10.0.0.1")!, cidrs));
  assert(inCidrs(parseIp("2001:db8:ffff::1")!, cidrs));
  assert(inCidrs(parseIp("127.0.0.1")!, cidrs));
  assert(inCidrs(parseIp("::1")!, cidrs));
  assert(!inCidrs(parseIp("11.0.0.1")!, cidrs));
  assert(!inCidrs(parseIp("127.0.0.2")!, cidrs));
  assert(!inCidrs(parseIp("2001:db9::1")!, cidrs));
  assert(inCidrs(parseIp("8.8.8.8")!, [parseCidr("0.0.0.0/0")!]));
  assert(!inCidrs(parseIp("2001:db8::1")!, [parseCidr("0.0.0.0/0")!]), "an IPv4 /0 holds IPv4 only");
  assert(inCidrs(parseIp("2001:db8::1")!, [parseCidr("::/0")!]));
  for (const bad of ["10.0.0.0/33", "::/129", "10.0.0.0/-1", "10.0.0.0/8/8", "nonsense", "10.0.0.0/"]) {
    assertEquals(parseCidr(bad), null, bad);
  }
});

Deno.test("limiter keys: IPv4 per address, IPv6 per /64, unknown peers share one bucket", () => {
  assertEquals(limiterKey(parseIp("::ffff:192.0.2.1")), "192.0.2.1");
  assertEquals(limiterKey(parseIp("2001:db8:1:2:3:4:5:6")), "2001:db8:1:2::/64");
  assertEquals(limiterKey(null), "unknown");
});

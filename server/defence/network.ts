// The network a request comes from, as spot checks see it: two copies of one check go to volunteers on
// different networks, so one person's two identities on one connection cannot agree on a lie. IPv4 by
// /24 and IPv6 by /64: what one home, office or cloud host usually holds (as BOINC spreads a workunit's
// replicas over hosts). Not proof against an attacker with many networks; that is what the reference
// tie-break and robust aggregation are for.
import { isIPv4, isIPv6 } from 'node:net';

export function networkOf(address: string): string {
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  const v4 = mapped ? mapped[1] : address;
  if (isIPv4(v4)) return `v4:${v4.split('.').slice(0, 3).join('.')}`;
  if (isIPv6(address)) return `v6:${expandIPv6(address).slice(0, 4).join(':')}`;
  return `other:${address}`;
}

/** The eight hextets of an IPv6 address, `::` expanded and leading zeros dropped. */
function expandIPv6(a: string): string[] {
  const [head, tail] = a.split('::');
  const parts = (s: string | undefined) => (s ? s.split(':') : []);
  const h = parts(head), t = tail === undefined ? [] : parts(tail);
  const all = tail === undefined ? h : [...h, ...Array(8 - h.length - t.length).fill('0'), ...t];
  return all.map((x) => (x.includes('.') ? x : (parseInt(x, 16) || 0).toString(16)));
}

package netdirtest

import (
	"crypto/sha256"
	"encoding/binary"

	"github.com/onionlite/onionlite/internal/netdoc"
)

// Microdescs returns one microdescriptor for every relay of c. Relays
// whose real microdescriptor is among real keep it unchanged. For the
// others a SYNTHETIC one is made, with the consensus digest so it
// matches, and:
//   - ntor key and ed25519 identity: SHA-256 of (seed, identity, label);
//   - family: the first real "family" line (with its "family-ids") in
//     real that lists the relay's identity, so real operator families,
//     including the ~400-member ones, are reproduced for their members
//     present in c;
//   - exit policy: for Exit-flagged relays, one of the real
//     microdescriptors' accepting IPv4 policies chosen by hash; for other
//     relays, reject-all.
//
// The result shares family and policy objects with real.
func Microdescs(c *netdoc.Consensus, real []netdoc.Microdesc, seed uint64) []netdoc.Microdesc {
	byDigest := make(map[[32]byte]*netdoc.Microdesc, len(real))
	famOf := map[[20]byte]*netdoc.Microdesc{}
	var exitPolicies []*netdoc.PortPolicy
	seenPol := map[*netdoc.PortPolicy]bool{}
	for i := range real {
		m := &real[i]
		byDigest[m.Digest] = m
		if m.Family != nil {
			for _, id := range m.Family.IDs {
				if _, ok := famOf[id]; !ok {
					famOf[id] = m
				}
			}
		}
		if p := m.IPv4Policy; p != nil && p.Accept && p.AllowsAny() && !seenPol[p] {
			seenPol[p] = true
			exitPolicies = append(exitPolicies, p)
		}
	}
	out := make([]netdoc.Microdesc, len(c.Relays))
	for i := range c.Relays {
		rs := &c.Relays[i]
		if m, ok := byDigest[rs.MicrodescDigest]; ok {
			out[i] = *m
			continue
		}
		m := netdoc.Microdesc{
			Digest:     rs.MicrodescDigest,
			NtorKey:    derive(seed, rs.Identity, "ntor"),
			Ed25519ID:  derive(seed, rs.Identity, "ed25519"),
			IPv4Policy: netdoc.RejectAllPolicy(),
			IPv6Policy: netdoc.RejectAllPolicy(),
		}
		if f, ok := famOf[rs.Identity]; ok {
			m.Family, m.FamilyIDs = f.Family, f.FamilyIDs
		}
		if rs.Flags&netdoc.FlagExit != 0 && len(exitPolicies) > 0 {
			h := derive(seed, rs.Identity, "policy")
			m.IPv4Policy = exitPolicies[binary.BigEndian.Uint64(h[:8])%uint64(len(exitPolicies))]
		}
		out[i] = m
	}
	return out
}

func derive(seed uint64, id [20]byte, label string) [32]byte {
	h := sha256.New()
	var s [8]byte
	binary.BigEndian.PutUint64(s[:], seed)
	h.Write([]byte("onionlite netdirtest synthetic\x00"))
	h.Write(s[:])
	h.Write(id[:])
	h.Write([]byte(label))
	var out [32]byte
	h.Sum(out[:0])
	return out
}

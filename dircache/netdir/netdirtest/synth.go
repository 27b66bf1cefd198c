package netdirtest

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"net/netip"
	"time"

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

// Relay describes one relay of a hand-made network (Network).
type Relay struct {
	Addr      string // IPv4 ORPort, "10.1.0.1:9001"
	IPv6      string // optional, "[2001:db8::1]:9001"
	Nickname  string // optional
	Flags     netdoc.RelayFlags
	Bandwidth uint32 // kB/s
	// Policy is the "p" line summary ("accept 80,443"); empty rejects
	// every port.
	Policy string
	// Family lists the relays (indices into the slice given to Network)
	// named by this relay's "family" line.
	Family []int
	// FamilyIDs is the "family-ids" line.
	FamilyIDs []string
	// NoMicrodesc leaves the relay without a microdescriptor.
	NoMicrodesc bool
}

// ID is the RSA identity Network gives relay k.
func ID(k int) [20]byte { return [20]byte{byte(k >> 8), byte(k)} }

// Network makes a consensus and matching microdescriptors for a
// hand-made network: relay k gets identity ID(k), microdescriptor digest
// and keys derived from k, and the flags given plus Running and Valid.
// Every bandwidth-weight is 10000 (plain bandwidth weighting). The
// consensus is valid from validAfter for three hours.
func Network(relays []Relay, validAfter time.Time) (*netdoc.Consensus, []netdoc.Microdesc, error) {
	c := &netdoc.Consensus{
		Flavor: "microdesc", ValidAfter: validAfter,
		FreshUntil: validAfter.Add(time.Hour), ValidUntil: validAfter.Add(3 * time.Hour),
	}
	for _, n := range []string{"Wbd", "Wbe", "Wbg", "Wbm", "Wdb", "Web", "Wed", "Wee", "Weg", "Wem", "Wgb", "Wgd", "Wgg", "Wgm", "Wmb", "Wmd", "Wme", "Wmg", "Wmm"} {
		c.BandwidthWeights = append(c.BandwidthWeights, netdoc.Param{Name: n, Value: 10000})
	}
	var mds []netdoc.Microdesc
	for k, r := range relays {
		addr, err := netip.ParseAddrPort(r.Addr)
		if err != nil {
			return nil, nil, fmt.Errorf("relay %d: %v", k, err)
		}
		var v6 netip.AddrPort
		if r.IPv6 != "" {
			if v6, err = netip.ParseAddrPort(r.IPv6); err != nil {
				return nil, nil, fmt.Errorf("relay %d: %v", k, err)
			}
		}
		digest := derive(uint64(k), ID(k), "md")
		c.Relays = append(c.Relays, netdoc.RouterStatus{
			Identity: ID(k), MicrodescDigest: digest, Nickname: r.Nickname, Addr: addr, IPv6: v6,
			Flags: r.Flags | netdoc.FlagRunning | netdoc.FlagValid, Bandwidth: r.Bandwidth, HasWeight: true,
		})
		if r.NoMicrodesc {
			continue
		}
		text := "onion-key\nntor-onion-key AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\n"
		if r.Policy != "" {
			text += "p " + r.Policy + "\n"
		}
		parsed, err := netdoc.ParseMicrodescs([]byte(text))
		if err != nil || len(parsed) != 1 {
			return nil, nil, fmt.Errorf("relay %d: policy %q: %v", k, r.Policy, err)
		}
		md := parsed[0]
		md.Digest = digest
		md.NtorKey = derive(uint64(k), ID(k), "ntor")
		md.Ed25519ID = derive(uint64(k), ID(k), "ed25519")
		if r.Family != nil {
			f := &netdoc.Family{}
			h := sha256.New()
			for _, j := range r.Family {
				f.IDs = append(f.IDs, ID(j))
				h.Write(f.IDs[len(f.IDs)-1][:])
			}
			h.Sum(f.Key[:0]) // equal lines give equal keys, as netdoc does
			md.Family = f
		}
		md.FamilyIDs = r.FamilyIDs
		mds = append(mds, md)
	}
	return c, mds, nil
}

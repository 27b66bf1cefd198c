package faulttest

import (
	"encoding/binary"
	"net"
	"strings"
	"sync"
	"testing"
)

// canaryDomain is the suffix of every name the DNS tests dial. It is in no
// hosts file and no real zone.
const canaryDomain = "onionlite-canary.example"

// exitDNS is a DNS server on 127.0.0.1:53, the name server of the test
// network's exits (their resolv.conf): names under canaryDomain resolve
// to 127.0.0.1, everything else is NXDOMAIN at once. It records what the
// exits asked, which shows that a name went to the exit. Other test
// networks on this machine use the same name server; while it runs, their
// exits get fast NXDOMAINs instead of timeouts, nothing else changes.
type exitDNS struct {
	pc    net.PacketConn
	mu    sync.Mutex
	asked map[string]int
	done  chan struct{}
}

// startExitDNS starts the server for the rest of the test, or returns nil
// when 127.0.0.1:53 cannot be bound (not root, or in use).
func startExitDNS(t *testing.T) *exitDNS {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:53")
	if err != nil {
		t.Logf("no DNS server for the exits (%v): names will fail at the exit instead of resolving", err)
		return nil
	}
	d := &exitDNS{pc: pc, asked: map[string]int{}, done: make(chan struct{})}
	go d.serve()
	t.Cleanup(func() {
		pc.Close()
		<-d.done
	})
	return d
}

func (d *exitDNS) serve() {
	defer close(d.done)
	buf := make([]byte, 1500)
	for {
		n, from, err := d.pc.ReadFrom(buf)
		if err != nil {
			return
		}
		if resp := d.answer(buf[:n]); resp != nil {
			d.pc.WriteTo(resp, from)
		}
	}
}

// askedFor reports how many queries named host (any case).
func (d *exitDNS) askedFor(host string) int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.asked[strings.ToLower(host)]
}

// answer builds the reply to one query, or nil for what is not a query.
func (d *exitDNS) answer(q []byte) []byte {
	if len(q) < 12 || q[2]&0x80 != 0 || binary.BigEndian.Uint16(q[4:]) != 1 {
		return nil
	}
	// The question: labels, then type and class. Tor randomises the case
	// of names (0x20 bits): the question is echoed as sent.
	p := 12
	var labels []string
	for {
		if p >= len(q) {
			return nil
		}
		l := int(q[p])
		if l == 0 {
			p++
			break
		}
		if l > 63 || p+1+l > len(q) {
			return nil
		}
		labels = append(labels, string(q[p+1:p+1+l]))
		p += 1 + l
	}
	if p+4 > len(q) {
		return nil
	}
	qtype := binary.BigEndian.Uint16(q[p:])
	p += 4
	name := strings.ToLower(strings.Join(labels, "."))
	d.mu.Lock()
	d.asked[name]++
	d.mu.Unlock()

	resp := make([]byte, 0, p+16)
	resp = append(resp, q[0], q[1]) // ID
	ours := name == canaryDomain || strings.HasSuffix(name, "."+canaryDomain)
	rcode := byte(3) // NXDOMAIN
	if ours {
		rcode = 0
	}
	resp = append(resp, 0x84|q[2]&0x01, 0x80|rcode) // QR, AA, RD copied; RA
	answers := uint16(0)
	if ours && qtype == 1 {
		answers = 1
	}
	resp = binary.BigEndian.AppendUint16(resp, 1)
	resp = binary.BigEndian.AppendUint16(resp, answers)
	resp = append(resp, 0, 0, 0, 0)
	resp = append(resp, q[12:p]...)
	if answers == 1 {
		resp = append(resp, 0xc0, 12) // the name of the question
		resp = binary.BigEndian.AppendUint16(resp, 1)
		resp = binary.BigEndian.AppendUint16(resp, 1)
		resp = binary.BigEndian.AppendUint32(resp, 60)
		resp = binary.BigEndian.AppendUint16(resp, 4)
		resp = append(resp, 127, 0, 0, 1)
	}
	return resp
}

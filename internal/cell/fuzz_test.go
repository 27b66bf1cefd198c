package cell

import (
	"bytes"
	"testing"
)

// FuzzRelayMsg parses arbitrary relay bodies. Whatever parses must
// re-encode, and the re-encoding must parse to the same encoding again.
func FuzzRelayMsg(f *testing.F) {
	for _, tc := range relayCases {
		b, _ := tc.msg.Append(nil)
		f.Add(uint8(tc.msg.Cmd()), b)
	}
	f.Add(uint8(RelayEnd), []byte{4, 1, 2, 3, 4, 0, 0, 0, 9})
	f.Fuzz(func(t *testing.T, cmd uint8, body []byte) {
		m, err := ParseRelayMsg(RelayCmd(cmd), body)
		if err != nil {
			return
		}
		b1, err := m.Append(nil)
		if err != nil {
			// Some parsed values (unknown SENDME versions) cannot be
			// re-encoded; that must be reported, not panic.
			return
		}
		m2, err := ParseRelayMsg(RelayCmd(cmd), b1)
		if err != nil {
			t.Fatalf("%v: re-encoded %x does not parse: %v", RelayCmd(cmd), b1, err)
		}
		b2, err := m2.Append(nil)
		if err != nil || !bytes.Equal(b1, b2) {
			t.Fatalf("%v: unstable encoding %x -> %x (%v)", RelayCmd(cmd), b1, b2, err)
		}
	})
}

// FuzzRelayCell decodes an arbitrary decrypted relay payload the way the
// circuit reactor does.
func FuzzRelayCell(f *testing.F) {
	for _, tc := range relayCases {
		var c Cell
		if _, err := c.SetRelay(1, CmdRelay, 3, tc.msg); err == nil {
			f.Add(c[HeaderLen:])
		}
	}
	f.Fuzz(func(t *testing.T, payload []byte) {
		var c Cell
		copy(c[HeaderLen:], payload)
		h, body, err := c.RelayBody()
		if err != nil {
			return
		}
		if len(body) != int(h.Length) || len(body) > RelayBodyMax {
			t.Fatalf("body %d for length %d", len(body), h.Length)
		}
		_, _ = ParseRelayMsg(h.Cmd, body)
		_ = c.RelayPadding()
	})
}

// FuzzLinkCells parses the handshake cells a relay sends a client.
func FuzzLinkCells(f *testing.F) {
	v, _ := AppendCerts(nil, []CertEntry{{Type: 2, Body: []byte{1, 2, 3}}, {Type: 7, Body: nil}})
	f.Add(uint8(CmdCerts), v)
	f.Add(uint8(CmdVersions), AppendVersions(nil, []uint16{3, 4, 5}))
	a, _ := AuthChallenge{Methods: []uint16{1, 3}}.Append(nil)
	f.Add(uint8(CmdAuthChallenge), a)
	n, _ := Netinfo{Time: 5}.Append(nil)
	f.Add(uint8(CmdNetinfo), n)
	c2, _ := Created2{HData: []byte{1}}.Append(nil)
	f.Add(uint8(CmdCreated2), c2)
	f.Fuzz(func(t *testing.T, cmd uint8, p []byte) {
		switch Command(cmd) {
		case CmdCerts:
			certs, err := ParseCerts(p)
			if err == nil {
				b, err := AppendCerts(nil, certs)
				if err != nil || !bytes.HasPrefix(p, b) {
					t.Fatalf("CERTS re-encoding %x is not a prefix of %x", b, p)
				}
			}
		case CmdVersions:
			vs, err := ParseVersions(p)
			if err == nil && !bytes.Equal(AppendVersions(nil, vs), p) {
				t.Fatal("VERSIONS round trip")
			}
		case CmdAuthChallenge:
			_, _ = ParseAuthChallenge(p)
		case CmdNetinfo:
			if n, err := ParseNetinfo(p); err == nil {
				if _, err := n.Append(nil); err != nil {
					t.Fatal(err)
				}
			}
		case CmdCreated2:
			_, _ = ParseCreated2(p)
		default:
			_, _ = ParseCreate2(p)
		}
	})
}

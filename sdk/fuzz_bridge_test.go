package sdk

import (
	"encoding/hex"
	"strings"
	"testing"
)

// FuzzParseBridge parses arbitrary bridge lines, as an app passes them on
// from a user or a QR code. Nothing panics; a line that parses names a
// dialable address (an IP, a non-zero port) and a fingerprint that was
// spelled in the line, and the canonical form parses to the same bridge.
func FuzzParseBridge(f *testing.F) {
	f.Add("127.0.0.1:9001 0123456789ABCDEF0123456789ABCDEF01234567")
	f.Add("Bridge 192.0.2.3:443 4352 E58A 2F8B 4E4A 2F3C 8C6E 1F6E 7A3B 2C1D 0E9F 8A7B")
	f.Add("bridge [2001:db8::7]:9001 0123456789abcdef0123456789abcdef01234567")
	f.Add("obfs4 192.0.2.3:443 0123456789ABCDEF0123456789ABCDEF01234567 cert=x iat-mode=0")
	// Regression seeds: each of these parsed once (port 0, unspecified
	// and zoned addresses).
	f.Add("192.0.2.3:0 0123456789ABCDEF0123456789ABCDEF01234567")
	f.Add("0.0.0.0:9001 0123456789ABCDEF0123456789ABCDEF01234567")
	f.Add("[::]:9001 0123456789ABCDEF0123456789ABCDEF01234567")
	f.Add("[fe80::1%eth0]:9001 0123456789ABCDEF0123456789ABCDEF01234567")
	f.Fuzz(func(t *testing.T, line string) {
		d, err := parseBridge(line)
		if err != nil {
			return
		}
		if !d.Addr.IsValid() || d.Addr.Port() == 0 || d.Addr.Addr().IsUnspecified() || d.Addr.Addr().Zone() != "" {
			t.Fatalf("%q parsed to an address no one can dial: %v", line, d.Addr)
		}
		fp := strings.ToUpper(hex.EncodeToString(d.Fingerprint[:]))
		if !strings.Contains(strings.ToUpper(strings.Join(strings.Fields(line), "")), fp) {
			t.Fatalf("%q parsed to fingerprint %s", line, fp)
		}
		again, err := parseBridge(d.Addr.String() + " " + fp)
		if err != nil || again != d {
			t.Fatalf("%q: canonical form does not parse back: %v", line, err)
		}
	})
}

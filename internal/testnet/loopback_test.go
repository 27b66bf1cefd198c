package testnet_test

import (
	"bufio"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"testing"
)

// procSockets maps socket inode to "proto local remote" for every entry of
// /proc/net/{tcp,tcp6,udp,udp6}.
func procSockets(t *testing.T) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, proto := range []string{"tcp", "tcp6", "udp", "udp6"} {
		f, err := os.Open("/proc/net/" + proto)
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(f)
		sc.Scan() // header
		for sc.Scan() {
			fl := strings.Fields(sc.Text())
			if len(fl) < 10 {
				continue
			}
			out[fl[9]] = fmt.Sprintf("%s %s %s", proto, procAddr(t, fl[1]), procAddr(t, fl[2]))
		}
		f.Close()
	}
	return out
}

// procAddr decodes "0100007F:1F90" (IPv4 in host byte order) or its
// 32-hex-digit IPv6 form.
func procAddr(t *testing.T, s string) netip.AddrPort {
	t.Helper()
	h, p, ok := strings.Cut(s, ":")
	port, err := strconv.ParseUint(p, 16, 16)
	raw, err2 := hex.DecodeString(h)
	if !ok || err != nil || err2 != nil || (len(raw) != 4 && len(raw) != 16) {
		t.Fatalf("bad /proc/net address %q", s)
	}
	var b [16]byte
	for i := 0; i < len(raw); i += 4 {
		binary.BigEndian.PutUint32(b[i:], binary.NativeEndian.Uint32(raw[i:]))
	}
	if len(raw) == 4 {
		return netip.AddrPortFrom(netip.AddrFrom4([4]byte(b[:4])), uint16(port))
	}
	return netip.AddrPortFrom(netip.AddrFrom16(b), uint16(port))
}

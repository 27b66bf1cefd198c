package testnet

import (
	"errors"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
)

// Ports are picked at random below the kernel's ephemeral range, so that
// outgoing connections (which take ephemeral source ports) never grab a
// port between our check and tor's bind. A port is taken only if binding
// 127.0.0.1:port works now; ports handed out in this process are never
// handed out twice.
var (
	portMu    sync.Mutex
	portsUsed = map[int]bool{}
)

const portFloor = 10000

func ephemeralLow() int {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err == nil {
		if f := strings.Fields(string(b)); len(f) == 2 {
			if lo, err := strconv.Atoi(f[0]); err == nil && lo > portFloor+1000 {
				return lo
			}
		}
	}
	return 32768
}

// pickPorts returns n distinct ports that are free on 127.0.0.1 right now.
func pickPorts(n int) ([]int, error) {
	portMu.Lock()
	defer portMu.Unlock()
	hi := ephemeralLow()
	var out []int
	for tries := 0; len(out) < n; tries++ {
		if tries > 50*n+1000 {
			return nil, errors.New("testnet: no free ports on 127.0.0.1")
		}
		p := portFloor + rand.IntN(hi-portFloor)
		if portsUsed[p] || !portFree(p) {
			continue
		}
		portsUsed[p] = true
		out = append(out, p)
	}
	return out, nil
}

// releasePorts lets this process hand out ports again (after a failed
// attempt whose ports may be busy elsewhere: they are re-checked anyway).
func releasePorts(ps []int) {
	portMu.Lock()
	defer portMu.Unlock()
	for _, p := range ps {
		delete(portsUsed, p)
	}
}

func portFree(p int) bool {
	ln, err := net.Listen("tcp4", "127.0.0.1:"+strconv.Itoa(p))
	if err != nil {
		return false
	}
	ln.Close()
	return true
}

package faulttest

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// tcpConn is one established IPv4 TCP connection of a process, by port:
// the test network runs on 127.0.0.1 only, so ports name the ends.
type tcpConn struct{ local, remote int }

// establishedTCP lists the established IPv4 TCP connections whose sockets
// process pid holds ("self" for this one): the socket inodes of
// /proc/PID/fd matched against /proc/PID/net/tcp.
func establishedTCP(pid string) ([]tcpConn, error) {
	fds, err := os.ReadDir(filepath.Join("/proc", pid, "fd"))
	if err != nil {
		return nil, err
	}
	inodes := map[string]bool{}
	for _, fd := range fds {
		l, err := os.Readlink(filepath.Join("/proc", pid, "fd", fd.Name()))
		if err != nil {
			continue // closed meanwhile
		}
		if ino, ok := strings.CutPrefix(l, "socket:["); ok {
			inodes[strings.TrimSuffix(ino, "]")] = true
		}
	}
	f, err := os.Open(filepath.Join("/proc", pid, "net", "tcp"))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []tcpConn
	sc := bufio.NewScanner(f)
	sc.Scan() // header
	for sc.Scan() {
		// sl local rem st tx:rx tr:when retrnsmt uid timeout inode ...
		fs := strings.Fields(sc.Text())
		if len(fs) < 10 || fs[3] != "01" || !inodes[fs[9]] {
			continue
		}
		lp, err1 := hexPort(fs[1])
		rp, err2 := hexPort(fs[2])
		if err1 != nil || err2 != nil {
			return nil, fmt.Errorf("/proc/%s/net/tcp: %q", pid, sc.Text())
		}
		out = append(out, tcpConn{local: lp, remote: rp})
	}
	return out, sc.Err()
}

// hexPort reads the port of "0100007F:1F90".
func hexPort(addr string) (int, error) {
	_, p, ok := strings.Cut(addr, ":")
	if !ok {
		return 0, fmt.Errorf("no port in %q", addr)
	}
	v, err := strconv.ParseUint(p, 16, 16)
	return int(v), err
}

package benchrun

import (
	"bytes"
	"fmt"
	"strconv"
	"strings"
)

// userHZ is the unit of utime and stime in /proc/PID/stat (USER_HZ,
// sysconf(_SC_CLK_TCK)): 100 on every Linux architecture Go supports.
const userHZ = 100

// parseStatCPU reads fields 14 and 15 (utime, stime) of a /proc/PID/stat
// line. The command name (field 2) may hold spaces and parentheses, so
// fields are counted after its last ')'.
func parseStatCPU(b []byte) (float64, error) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, fmt.Errorf("bad /proc stat line %q", b)
	}
	f := strings.Fields(string(b[i+1:]))
	// f[0] is field 3 (state); utime is field 14, stime field 15.
	if len(f) < 13 {
		return 0, fmt.Errorf("short /proc stat line %q", b)
	}
	u, err1 := strconv.ParseInt(f[11], 10, 64)
	s, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("bad utime/stime in /proc stat line %q", b)
	}
	return float64(u+s) / userHZ, nil
}

// parseStatusKB reads a "Key:  N kB" line of /proc/PID/status as bytes.
func parseStatusKB(b []byte, key string) (int64, error) {
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, key); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				return 0, fmt.Errorf("bad %s line %q", key, l)
			}
			return kb << 10, nil
		}
	}
	return 0, fmt.Errorf("no %s line", key)
}

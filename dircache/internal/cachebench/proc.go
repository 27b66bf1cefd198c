package main

import (
	"bufio"
	"os"
	"strconv"
	"strings"
)

// procStatus returns the kB fields of /proc/self/status that we report
// (VmHWM, VmRSS, VmPeak, VmSize), in bytes. Missing fields are 0.
func procStatus() map[string]int64 {
	out := map[string]int64{}
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return out
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		switch k {
		case "VmHWM", "VmRSS", "VmPeak", "VmSize":
			n, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			out[k] = n << 10
		}
	}
	return out
}

package slowlink

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// ParseRate parses a rate as tc writes it: a number with a unit of bit,
// kbit, mbit or gbit (bits per second) or bps, kbps, mbps (bytes per
// second); a bare number is bits per second. Multipliers are powers of
// 1000. "0" and "unlimited" mean no limit (0).
func ParseRate(s string) (int64, error) {
	t := strings.ToLower(strings.TrimSpace(s))
	if t == "unlimited" || t == "0" {
		return 0, nil
	}
	units := []struct {
		suffix string
		mult   float64
	}{
		{"gbit", 1e9}, {"mbit", 1e6}, {"kbit", 1e3}, {"bit", 1},
		{"mbps", 8e6}, {"kbps", 8e3}, {"bps", 8},
	}
	mult := 1.0
	for _, u := range units {
		if num, ok := strings.CutSuffix(t, u.suffix); ok {
			t, mult = num, u.mult
			break
		}
	}
	v, err := strconv.ParseFloat(strings.TrimSpace(t), 64)
	if err != nil || v < 0 || math.IsInf(v, 0) || math.IsNaN(v) || v*mult > 1e12 {
		return 0, fmt.Errorf("slowlink: bad rate %q (want e.g. 64kbit, 1mbit, 500kbps)", s)
	}
	return int64(math.Round(v * mult)), nil
}

// ParseSize parses a byte count: a number with an optional suffix K, KB,
// KiB, M, MB, MiB, G, GB or GiB (K and KiB are 1024, KB is 1000).
func ParseSize(s string) (int64, error) {
	t := strings.TrimSpace(s)
	units := []struct {
		suffix string
		mult   int64
	}{
		{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10},
		{"GB", 1e9}, {"MB", 1e6}, {"KB", 1e3}, {"kB", 1e3},
		{"G", 1 << 30}, {"M", 1 << 20}, {"K", 1 << 10}, {"k", 1 << 10}, {"B", 1},
	}
	mult := int64(1)
	for _, u := range units {
		if num, ok := strings.CutSuffix(t, u.suffix); ok {
			t, mult = num, u.mult
			break
		}
	}
	v, err := strconv.ParseInt(strings.TrimSpace(t), 10, 64)
	if err != nil || v < 0 || v > math.MaxInt64/mult {
		return 0, fmt.Errorf("slowlink: bad size %q (want e.g. 1000, 64KiB, 1MiB)", s)
	}
	return v * mult, nil
}

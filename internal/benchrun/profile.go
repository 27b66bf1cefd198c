package benchrun

import (
	"fmt"
	"strings"
	"time"

	"github.com/onionlite/onionlite/internal/testnet/slowlink"
)

// Profile is an emulated link between a client and every relay, made by a
// slowlink proxy. Rate and delay apply in each direction.
type Profile struct {
	Name       string        `json:"name"`
	Title      string        `json:"title"`
	Rate       int64         `json:"rate_bits"`   // bits per second each way; 0 = unlimited
	RTT        time.Duration `json:"rtt_ns"`      // round trip added by the proxy (half each way)
	ResetEvery int64         `json:"reset_every"` // reset the connection carrying every Nth byte; 0 = never
}

// Throttled reports whether the profile limits the rate.
func (p Profile) Throttled() bool { return p.Rate > 0 }

// Slowlink returns the proxy configuration for the profile.
func (p Profile) Slowlink() slowlink.Config {
	return slowlink.Config{Rate: p.Rate, Delay: p.RTT / 2, ResetEvery: p.ResetEvery}
}

// Profiles are the link profiles, in report order.
var Profiles = []Profile{
	{Name: "unthrottled", Title: "unthrottled loopback"},
	{Name: "3g", Title: "3G: 1 Mbit/s, 100 ms RTT", Rate: 1_000_000, RTT: 100 * time.Millisecond},
	{Name: "edge", Title: "EDGE: 200 kbit/s, 300 ms RTT", Rate: 200_000, RTT: 300 * time.Millisecond},
	{Name: "gprs", Title: "GPRS: 50 kbit/s, 600 ms RTT", Rate: 50_000, RTT: 600 * time.Millisecond},
	{Name: "slow64", Title: "issue 4: 64 kbit/s, 300 ms RTT", Rate: 64_000, RTT: 300 * time.Millisecond},
	{Name: "lossy", Title: "lossy: 64 kbit/s, 300 ms RTT, reset every 200 KB", Rate: 64_000, RTT: 300 * time.Millisecond, ResetEvery: 200_000},
}

// HeadlineProfile is the slow link the issue-4 goals name.
const HeadlineProfile = "slow64"

// ProfileByName finds a profile of Profiles.
func ProfileByName(name string) (Profile, bool) {
	for _, p := range Profiles {
		if p.Name == name {
			return p, true
		}
	}
	return Profile{}, false
}

// ParseProfiles turns "unthrottled,slow64" (or "all") into profiles, in
// the order of Profiles.
func ParseProfiles(s string) ([]Profile, error) {
	if s == "" || s == "all" {
		return append([]Profile(nil), Profiles...), nil
	}
	want := map[string]bool{}
	for _, n := range strings.Split(s, ",") {
		n = strings.TrimSpace(n)
		if _, ok := ProfileByName(n); !ok {
			return nil, fmt.Errorf("unknown link profile %q (have %s)", n, profileNames())
		}
		want[n] = true
	}
	var out []Profile
	for _, p := range Profiles {
		if want[p.Name] {
			out = append(out, p)
		}
	}
	return out, nil
}

func profileNames() string {
	var ns []string
	for _, p := range Profiles {
		ns = append(ns, p.Name)
	}
	return strings.Join(ns, ", ")
}

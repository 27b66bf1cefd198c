package testnet

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// consensusInfo is what the readiness check needs from a consensus.
type consensusInfo struct {
	validAfter, freshUntil, validUntil time.Time
	routers                            []routerInfo
}

type routerInfo struct {
	nick  string
	flags []string
	md    string // microdesc flavour: base64 SHA-256 of the microdescriptor
}

func (r *routerInfo) has(flag string) bool {
	for _, f := range r.flags {
		if f == flag {
			return true
		}
	}
	return false
}

func (c *consensusInfo) router(nick string) *routerInfo {
	for i := range c.routers {
		if c.routers[i].nick == nick {
			return &c.routers[i]
		}
	}
	return nil
}

// live reports whether the consensus may be used at now.
func (c *consensusInfo) live(now time.Time) bool {
	return !now.Before(c.validAfter.Add(-time.Minute)) && now.Before(c.validUntil)
}

// parseConsensus reads the fields the readiness check needs from a
// consensus of either flavour. It is lenient: it is not a validating
// parser (internal/netdoc is); it only errors when a needed field is
// missing or malformed.
func parseConsensus(doc []byte) (*consensusInfo, error) {
	c := &consensusInfo{}
	sc := bufio.NewScanner(bytes.NewReader(doc))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	var cur *routerInfo
	parseTime := func(f []string) (time.Time, error) {
		if len(f) != 3 {
			return time.Time{}, fmt.Errorf("bad %s line", f[0])
		}
		return time.Parse("2006-01-02 15:04:05", f[1]+" "+f[2])
	}
	var err error
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 0 {
			continue
		}
		switch f[0] {
		case "valid-after":
			c.validAfter, err = parseTime(f)
		case "fresh-until":
			c.freshUntil, err = parseTime(f)
		case "valid-until":
			c.validUntil, err = parseTime(f)
		case "r":
			if len(f) < 3 {
				return nil, fmt.Errorf("bad r line %q", sc.Text())
			}
			c.routers = append(c.routers, routerInfo{nick: f[1]})
			cur = &c.routers[len(c.routers)-1]
		case "s":
			if cur != nil {
				cur.flags = f[1:]
			}
		case "m":
			if cur != nil && len(f) == 2 {
				cur.md = f[1]
			}
		case "directory-footer":
			cur = nil
		}
		if err != nil {
			return nil, err
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if c.validAfter.IsZero() || c.validUntil.IsZero() {
		return nil, fmt.Errorf("consensus without valid-after/valid-until")
	}
	return c, nil
}

// splitMicrodescs splits a /tor/micro/d/ answer at lines that are exactly
// "onion-key" and returns the base64 SHA-256 digest of each piece.
func splitMicrodescs(body []byte) map[string]bool {
	got := map[string]bool{}
	var starts []int
	for off := 0; off < len(body); {
		end := bytes.IndexByte(body[off:], '\n')
		line := body[off:]
		next := len(body)
		if end >= 0 {
			line = body[off : off+end]
			next = off + end + 1
		}
		if string(line) == "onion-key" {
			starts = append(starts, off)
		}
		off = next
	}
	for i, s := range starts {
		e := len(body)
		if i+1 < len(starts) {
			e = starts[i+1]
		}
		sum := sha256.Sum256(body[s:e])
		got[base64.RawStdEncoding.EncodeToString(sum[:])] = true
	}
	return got
}

// dirHTTP fetches directory documents over plain HTTP from DirPorts. It
// never uses a proxy from the environment and never asks for compression.
var dirHTTP = &http.Client{
	Transport: &http.Transport{
		Proxy:              nil,
		DialContext:        (&net.Dialer{Timeout: 3 * time.Second}).DialContext,
		DisableCompression: true,
		DisableKeepAlives:  true,
	},
	Timeout: 5 * time.Second,
}

func dirGet(ctx context.Context, dirPort int, path string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://127.0.0.1:"+strconv.Itoa(dirPort)+path, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept-Encoding", "identity")
	resp, err := dirHTTP.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s: HTTP %d", path, resp.StatusCode)
	}
	return b, nil
}

// checkReady runs one round of the readiness check of the notes (section
// 5), made stricter: every node, not only the first authority, must serve
// a live microdesc consensus listing every node, and every microdescriptor.
// It returns a one-line state, whether the network is ready, and, once
// the first authority's consensus is complete, the nodes that do not yet
// serve it or every microdescriptor.
func checkReady(ctx context.Context, nodes []Node, now time.Time) (state string, ready bool, lagging []string) {
	var auth *Node
	for i := range nodes {
		if nodes[i].Role == Authority {
			auth = &nodes[i]
			break
		}
	}
	if auth == nil {
		return "no authority", false, nil
	}
	b, err := dirGet(ctx, auth.DirPort, "/tor/status-vote/current/consensus")
	if err != nil {
		return fmt.Sprintf("no consensus on %s yet (%v)", auth.Nick, err), false, nil
	}
	ns, err := parseConsensus(b)
	if err != nil {
		return fmt.Sprintf("%s: consensus: %v", auth.Nick, err), false, nil
	}
	if !ns.live(now) {
		return fmt.Sprintf("%s serves a consensus valid until %s: not live", auth.Nick, ns.validUntil.Format(time.DateTime)), false, nil
	}
	listed, running, exits, wantExits := 0, 0, 0, 0
	for _, n := range nodes {
		if n.Role == Exit {
			wantExits++
		}
		r := ns.router(n.Nick)
		if r == nil {
			continue
		}
		listed++
		if r.has("Running") && r.has("Valid") {
			running++
		}
		if n.Role == Exit && r.has("Exit") {
			exits++
		}
	}
	state = fmt.Sprintf("consensus (valid-after %s): %d/%d listed, %d running+valid, %d/%d exits",
		ns.validAfter.Format(time.TimeOnly), listed, len(nodes), running, exits, wantExits)
	if listed != len(nodes) || running != len(nodes) || exits != wantExits {
		return state, false, nil
	}

	// The microdesc consensus, from every node.
	var digests []string
	mdOK := 0
	for _, n := range nodes {
		b, err := dirGet(ctx, n.DirPort, "/tor/status-vote/current/consensus-microdesc")
		if err != nil {
			lagging = append(lagging, n.Nick)
			continue
		}
		md, err := parseConsensus(b)
		if err != nil || !md.live(now) {
			lagging = append(lagging, n.Nick)
			continue
		}
		all := true
		var ds []string
		for _, m := range nodes {
			r := md.router(m.Nick)
			if r == nil || r.md == "" {
				all = false
				break
			}
			ds = append(ds, r.md)
		}
		if !all {
			lagging = append(lagging, n.Nick)
			continue
		}
		if digests == nil {
			digests = ds
		}
		mdOK++
	}
	state += fmt.Sprintf("; md consensus on %d/%d nodes", mdOK, len(nodes))
	if mdOK != len(nodes) {
		return state, false, lagging
	}

	// Every microdescriptor from every node (tor answers at most 92
	// digests per request; ask for 90 at a time).
	served := 0
	for _, n := range nodes {
		ok := true
		for i := 0; i < len(digests) && ok; i += 90 {
			batch := digests[i:min(i+90, len(digests))]
			b, err := dirGet(ctx, n.DirPort, "/tor/micro/d/"+strings.Join(batch, "-"))
			if err != nil {
				ok = false
				break
			}
			got := splitMicrodescs(b)
			for _, d := range batch {
				if !got[d] {
					ok = false
					break
				}
			}
		}
		if ok {
			served++
		} else {
			lagging = append(lagging, n.Nick)
		}
	}
	state += fmt.Sprintf("; all microdescs on %d/%d nodes", served, len(nodes))
	return state, served == len(nodes), lagging
}

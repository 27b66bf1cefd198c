package testnet

import (
	"bytes"
	"fmt"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"
)

// CheckGoroutines snapshots the running goroutines. The returned func
// fails t if goroutines started since then are still running, retrying
// for up to 5 s while they wind down. Call it after closing what the test
// opened:
//
//	check := testnet.CheckGoroutines(t)
//	defer check()
//
// Goroutines of this package (the shared network's HTTP target and
// process reapers, and what they start) and of the testing package are
// ignored.
func CheckGoroutines(t testing.TB) func() {
	t.Helper()
	before := map[int]bool{}
	for _, g := range goroutines() {
		before[g.id] = true
	}
	return func() {
		t.Helper()
		var leaked []goroutine
		deadline := time.Now().Add(leakWait)
		for {
			leaked = leaked[:0]
			all := goroutines()
			byID := map[int]*goroutine{}
			for i := range all {
				byID[all[i].id] = &all[i]
			}
			for _, g := range all {
				if !before[g.id] && !ignoredGoroutine(&g, byID) {
					leaked = append(leaked, g)
				}
			}
			if len(leaked) == 0 {
				return
			}
			if time.Now().After(deadline) {
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
		var b strings.Builder
		for _, g := range leaked {
			b.WriteString("\n\n")
			b.WriteString(g.stack)
		}
		t.Errorf("%d goroutine(s) leaked:%s", len(leaked), b.String())
	}
}

// leakWait is how long CheckGoroutines waits for new goroutines to end.
var leakWait = 5 * time.Second

type goroutine struct {
	id      int
	creator int // 0 when unknown
	stack   string
}

func goroutines() []goroutine {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	var out []goroutine
	for _, s := range bytes.Split(buf, []byte("\n\n")) {
		g, ok := parseGoroutine(string(s))
		if ok {
			out = append(out, g)
		}
	}
	return out
}

// parseGoroutine reads "goroutine N [state]:" and the "created by ... in
// goroutine M" line of one stack.
func parseGoroutine(s string) (goroutine, bool) {
	rest, ok := strings.CutPrefix(s, "goroutine ")
	if !ok {
		return goroutine{}, false
	}
	sp := strings.IndexByte(rest, ' ')
	if sp < 0 {
		return goroutine{}, false
	}
	id, err := strconv.Atoi(rest[:sp])
	if err != nil {
		return goroutine{}, false
	}
	g := goroutine{id: id, stack: s}
	if i := strings.LastIndex(s, "\ncreated by "); i >= 0 {
		line, _, _ := strings.Cut(s[i+1:], "\n")
		if j := strings.LastIndex(line, " in goroutine "); j >= 0 {
			g.creator, _ = strconv.Atoi(line[j+len(" in goroutine "):])
		}
	}
	return g, true
}

func ignoredGoroutine(g *goroutine, byID map[int]*goroutine) bool {
	s := g.stack
	created := ""
	if i := strings.LastIndex(s, "\ncreated by "); i >= 0 {
		created, _, _ = strings.Cut(s[i+len("\ncreated by "):], "\n")
	}
	// Test runners (subtests, parallel tests) and runtime helpers.
	if strings.HasPrefix(created, "testing.") || strings.Contains(s, "os/signal.signal_recv") || strings.Contains(s, "runtime/trace.") {
		return true
	}
	return infraGoroutine(g, byID, 0)
}

// infraMarkers are functions of this package that run for a network's
// whole life; goroutines running them, or started by such goroutines
// (the HTTP target's connection handlers), are not leaks of the test.
var infraMarkers = []string{
	"onionlite/internal/testnet.startHTTPTarget",
	"onionlite/internal/testnet.startProc",
	"onionlite/internal/testnet.(*controlConn).readLoop",
}

// infraGoroutine reports whether g runs network infrastructure of this
// package, or was started (directly or not) by a goroutine that does.
func infraGoroutine(g *goroutine, byID map[int]*goroutine, depth int) bool {
	for _, m := range infraMarkers {
		if strings.Contains(g.stack, m) {
			return true
		}
	}
	if depth < 20 && g.creator != 0 {
		if c, ok := byID[g.creator]; ok {
			return infraGoroutine(c, byID, depth+1)
		}
	}
	return false
}

// String describes a goroutine for messages.
func (g goroutine) String() string { return fmt.Sprintf("goroutine %d", g.id) }

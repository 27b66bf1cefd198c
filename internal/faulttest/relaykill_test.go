package faulttest

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/onionlite/onionlite/internal/testnet"
	"github.com/onionlite/onionlite/sdk"
)

// startGet sends a GET for name over conn and returns the response with
// its body unread.
func startGet(t *testing.T, conn net.Conn, target, name string) *http.Response {
	t.Helper()
	fmt.Fprintf(conn, "GET /%s HTTP/1.0\r\nHost: %s\r\n\r\n", name, target)
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("GET %s: %v", name, err)
	}
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s: %s", name, resp.Status)
	}
	return resp
}

// fetchSum dials target through c, fetches name and checks its SHA-256.
func fetchSum(t *testing.T, ctx context.Context, c *sdk.Client, n *testnet.Network, name string) {
	t.Helper()
	conn, err := c.DialContext(ctx, "tcp", n.HTTPTarget())
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(2 * time.Minute)) // a hang guard, not an assertion
	resp := startGet(t, conn, n.HTTPTarget(), name)
	h := sha256.New()
	if _, err := io.Copy(h, resp.Body); err != nil {
		t.Fatalf("fetch %s: %v", name, err)
	}
	want, _ := n.Body(name)
	if hex.EncodeToString(h.Sum(nil)) != want.SHA256 {
		t.Fatalf("fetch %s: wrong body", name)
	}
}

func targetPort(t *testing.T, n *testnet.Network) int {
	_, ps, _ := net.SplitHostPort(n.HTTPTarget())
	p, err := strconv.Atoi(ps)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// nodesConnectedTo returns the running nodes holding an established
// connection to port.
func nodesConnectedTo(t *testing.T, n *testnet.Network, port int) []testnet.Node {
	t.Helper()
	var out []testnet.Node
	for _, nd := range n.Nodes() {
		if nd.PID == 0 {
			continue
		}
		conns, err := establishedTCP(strconv.Itoa(nd.PID))
		if err != nil {
			continue // exited meanwhile
		}
		for _, c := range conns {
			if c.remote == port {
				out = append(out, nd)
				break
			}
		}
	}
	return out
}

// pathLog records the paths of the circuits the client logs as built
// ("circmgr: circuit N built in D: G M E", each hop the first four bytes of
// its RSA identity in hex).
type pathLog struct {
	t    *testing.T
	mu   sync.Mutex
	last []string
}

func (l *pathLog) logf(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	l.t.Log(msg)
	if !strings.HasPrefix(msg, "circmgr: circuit ") || !strings.Contains(msg, " built in ") {
		return
	}
	f := strings.Fields(msg[strings.LastIndex(msg, ":")+1:])
	if len(f) == 3 {
		l.mu.Lock()
		l.last = f
		l.mu.Unlock()
	}
}

// reset forgets the circuits built so far.
func (l *pathLog) reset() {
	l.mu.Lock()
	l.last = nil
	l.mu.Unlock()
}

// hop returns the node at position i (0 guard, 2 exit) of the last
// circuit built since reset.
func (l *pathLog) hop(t *testing.T, n *testnet.Network, i int) testnet.Node {
	t.Helper()
	l.mu.Lock()
	last := l.last
	l.mu.Unlock()
	if last == nil {
		t.Fatal("no circuit built since the network change")
	}
	for _, nd := range n.Nodes() {
		if strings.HasPrefix(strings.ToLower(nd.Fingerprint), last[i]) {
			return nd
		}
	}
	t.Fatalf("no node with identity %s…", last[i])
	return testnet.Node{}
}

// killer kills nodes for one test and, when the test ends, restarts all of
// them and waits until the network is whole again for the next test.
type killer struct {
	t     *testing.T
	n     *testnet.Network
	nicks []string
}

func newKiller(t *testing.T, n *testnet.Network) *killer {
	k := &killer{t: t, n: n}
	t.Cleanup(k.restart)
	return k
}

func (k *killer) kill(nick string) {
	k.t.Helper()
	if err := k.n.KillNode(nick); err != nil {
		k.t.Fatalf("kill %s: %v", nick, err)
	}
	k.nicks = append(k.nicks, nick)
	k.t.Logf("killed %s", nick)
}

func (k *killer) restart() {
	if len(k.nicks) == 0 {
		return
	}
	for _, nick := range k.nicks {
		if err := k.n.RestartNode(nick); err != nil {
			k.t.Errorf("restart %s: %v", nick, err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if err := k.n.WaitReady(ctx); err != nil {
		k.t.Errorf("network not whole again after restarting %v: %v", k.nicks, err)
	}
	k.nicks = nil
}

// TestRelayKilledMidStream kills, in the middle of a 10 MiB download
// through the sdk, first the exit of the stream's circuit, then its guard
// (both from the path the client logs for the circuit; the exit is checked
// to be a tor process connected to the HTTP target). Only that relay dies:
// killing every relay the process happened to be connected to (a directory
// connection's, another build's) once took an exit down as a "guard" and
// left no usable exit for the next fetch. The reader
// gets a typed *sdk.Error of KindNetwork, never a hang or a short body
// passed off as EOF, and the next dial succeeds and fetches intact data
// over other relays.
func TestRelayKilledMidStream(t *testing.T) {
	t.Cleanup(testnet.CheckGoroutines(t)) // runs last: after the client closed
	n := testnet.Shared(t)
	pl := &pathLog{t: t}
	c := newClient(t, n, t.TempDir(), pl.logf)
	c.PreemptiveCircuits = -1 // only the stream's circuit: its relays are the ones we see
	// One circuit per stream: with a conflux set the stream would have
	// two guards, and losing one is what conflux survives.
	c.Conflux = sdk.ConfluxOff
	ctx := ctxFor(t, 8*time.Minute)
	if err := c.Bootstrap(ctx); err != nil {
		t.Fatal(err)
	}
	port := targetPort(t, n)
	for _, victim := range []string{"exit", "guard"} {
		t.Run(victim, func(t *testing.T) {
			c.NetworkChanged() // close every circuit: the dial builds the stream's
			pl.reset()
			conn, err := c.DialContext(ctx, "tcp", n.HTTPTarget())
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			conn.SetDeadline(time.Now().Add(2 * time.Minute)) // a hang guard, not an assertion
			resp := startGet(t, conn, n.HTTPTarget(), "10MiB.bin")
			if _, err := io.CopyN(io.Discard, resp.Body, 256<<10); err != nil {
				t.Fatal(err)
			}
			// The stream's circuit is the last one built since the
			// network change (a build that failed, or a circuit whose
			// exit refused the port, came before it). Its exit must be
			// a node connected to the target: a check that the log and
			// the network agree.
			var kill testnet.Node
			switch victim {
			case "exit":
				kill = pl.hop(t, n, 2)
				if !slices.ContainsFunc(nodesConnectedTo(t, n, port), func(nd testnet.Node) bool { return nd.Nick == kill.Nick }) {
					t.Fatalf("the stream's exit %s holds no connection to the target", kill.Nick)
				}
			case "guard":
				kill = pl.hop(t, n, 0)
			}
			k := newKiller(t, n)
			k.kill(kill.Nick)
			got, err := io.Copy(io.Discard, resp.Body)
			var se *sdk.Error
			if !errors.As(err, &se) || se.Kind != sdk.KindNetwork {
				t.Fatalf("read after the %s died: %d more bytes, then %v (%T); want an *sdk.Error of KindNetwork", victim, got, err, err)
			}
			t.Logf("%s killed: %d more bytes, then %v", victim, got, err)
			conn.Close()

			fetchSum(t, ctx, c, n, "64KiB.bin")
			if victim == "exit" {
				// The connection from the dead exit is gone; whoever
				// served the fetch is alive.
				for _, nd := range nodesConnectedTo(t, n, port) {
					if nd.Nick == kill.Nick {
						t.Fatalf("fetched through the dead exit %s", nd.Nick)
					}
				}
			}
		})
	}
}

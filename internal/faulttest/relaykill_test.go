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
	"strconv"
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

// relaysWeUse returns the nodes whose ORPort this process is connected to.
func relaysWeUse(t *testing.T, n *testnet.Network) []testnet.Node {
	t.Helper()
	conns, err := establishedTCP("self")
	if err != nil {
		t.Fatal(err)
	}
	var out []testnet.Node
	for _, nd := range n.Nodes() {
		for _, c := range conns {
			if c.remote == nd.ORPort {
				out = append(out, nd)
				break
			}
		}
	}
	return out
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
// through the sdk, first the exit of the stream's circuit (found as the
// tor process connected to the HTTP target), then its guard (the only
// relay this process is connected to after NetworkChanged). The reader
// gets a typed *sdk.Error of KindNetwork, never a hang or a short body
// passed off as EOF, and the next dial succeeds and fetches intact data
// over other relays.
func TestRelayKilledMidStream(t *testing.T) {
	t.Cleanup(testnet.CheckGoroutines(t)) // runs last: after the client closed
	n := testnet.Shared(t)
	c := newClient(t, n, t.TempDir(), nil)
	c.PreemptiveCircuits = -1 // only the stream's circuit: its relays are the ones we see
	ctx := ctxFor(t, 8*time.Minute)
	if err := c.Bootstrap(ctx); err != nil {
		t.Fatal(err)
	}
	port := targetPort(t, n)
	for _, victim := range []string{"exit", "guard"} {
		t.Run(victim, func(t *testing.T) {
			c.NetworkChanged() // close every relay connection: only the new circuit's remain
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
			var kill []testnet.Node
			switch victim {
			case "exit":
				kill = nodesConnectedTo(t, n, port)
			case "guard":
				kill = relaysWeUse(t, n)
			}
			// Our relays are usually one guard, but a build that failed
			// at its first hop may have left a second connection. The
			// exit is usually the one tor connected to the target, but
			// another exit can still hold a target connection (seen once
			// in CI: exit7 and exit8; from an earlier test, we guess,
			// not confirmed). The stream's relay is among them, and all
			// of them die; three exits leave one for the next fetch.
			if len(kill) == 0 {
				t.Fatalf("no %s to kill", victim)
			}
			if len(kill) > 1 {
				t.Logf("%d candidates for the %s, killing all: %v", len(kill), victim, kill)
			}
			k := newKiller(t, n)
			for _, nd := range kill {
				k.kill(nd.Nick)
			}
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
					for _, dead := range kill {
						if nd.Nick == dead.Nick {
							t.Fatalf("fetched through the dead exit %s", nd.Nick)
						}
					}
				}
			}
		})
	}
}

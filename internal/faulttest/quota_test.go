package faulttest

import (
	"io"
	"testing"
	"time"

	"github.com/onionlite/onionlite/internal/testnet"
)

// waitQueues polls the client's queue total until ok says yes, failing
// the test after a generous hang guard.
func waitQueues(t *testing.T, what string, queues func() int64, ok func(int64) bool) int64 {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute) // a hang guard, not a timing goal
	for {
		q := queues()
		if ok(q) {
			return q
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: the queues hold %d bytes", what, q)
		}
		time.Sleep(50 * time.Millisecond) // polling
	}
}

// TestAttackerQueuesCounted checks, on the real network, that the queues
// a relay fills are charged to the client's memory quota (sdk Stats
// Memory): a directory download while it is read (its read buffer and
// decoder state, with the compressed body; the decoded document is not a
// queue and is not charged), and the receive queue of a stream the app
// stops reading (the exit keeps sending until flow control stops it),
// which is released when the stream closes. docs/SECURITY.md lists every
// queue and whether it is counted.
func TestAttackerQueuesCounted(t *testing.T) {
	t.Cleanup(testnet.CheckGoroutines(t)) // runs last
	n := testnet.Shared(t)
	ctx := ctxFor(t, 5*time.Minute)
	dir := t.TempDir()
	d := newClient(t, n, dir, nil)
	d.PreemptiveCircuits = -1
	if err := d.Bootstrap(ctx); err != nil {
		t.Fatal(err)
	}
	peak := d.Stats().Memory.QueuesPeak
	d.Close()
	// A download holds at least the header reader (4 KiB) and a
	// decoder's state (a deflate window, 48 KiB; zstd's, 128 KiB).
	if peak < 52<<10 {
		t.Fatalf("during the bootstrap the queues peaked at %d bytes; one directory download holds more", peak)
	}

	c := newClient(t, n, t.TempDir(), nil)
	c.PreemptiveCircuits = -1
	if err := c.Bootstrap(ctx); err != nil {
		t.Fatal(err)
	}
	queues := func() int64 { return c.Stats().Memory.Queues }
	before := queues()

	conn, err := c.DialContext(ctx, "tcp", n.HTTPTarget())
	if err != nil {
		t.Fatal(err)
	}
	resp := startGet(t, conn, n.HTTPTarget(), "10MiB.bin")
	if _, err := io.CopyN(io.Discard, resp.Body, 64<<10); err != nil {
		t.Fatal(err)
	}
	// Stop reading: the exit fills the stream's queue.
	full := waitQueues(t, "an unread stream", queues, func(q int64) bool { return q-before >= 128<<10 })
	t.Logf("queues: %d bytes before, %d with an unread stream", before, full)
	conn.Close()
	waitQueues(t, "a closed stream", queues, func(q int64) bool { return q-before < 16<<10 })
}

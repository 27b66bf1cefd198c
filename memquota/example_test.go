package memquota_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/onionlite/onionlite/memquota"
)

// streamBuf is the shape of an accounted queue: claim before queueing,
// release after dequeueing, keep the head's time in a memquota.Oldest, and
// on Reclaimed drop everything and remember the error for readers and
// writers.
type streamBuf struct {
	partn  *memquota.Participation
	oldest memquota.Oldest

	mu    sync.Mutex
	data  [][]byte
	times []time.Time
	err   error
}

func newStreamBuf(a *memquota.Account) (*streamBuf, error) {
	b := &streamBuf{}
	p, err := a.Register(b)
	if err != nil {
		return nil, err
	}
	b.mu.Lock()
	b.partn = p
	b.mu.Unlock()
	return b, nil
}

func (b *streamBuf) Write(p []byte) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.err != nil {
		return b.err
	}
	if err := b.partn.Claim(int64(len(p))); err != nil {
		return err
	}
	now := b.partn.Account().Tracker().Now()
	if len(b.data) == 0 {
		b.oldest.Set(now)
	}
	b.data = append(b.data, p)
	b.times = append(b.times, now)
	return nil
}

func (b *streamBuf) Read() ([]byte, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.data) == 0 {
		return nil, b.err // nil, nil: nothing yet
	}
	p := b.data[0]
	b.data, b.times = b.data[1:], b.times[1:]
	if len(b.times) > 0 {
		b.oldest.Set(b.times[0])
	} else {
		b.oldest.Clear()
	}
	b.partn.Release(int64(len(p)))
	return p, nil
}

func (b *streamBuf) Oldest() (time.Time, bool) { return b.oldest.Get() }

func (b *streamBuf) Reclaimed(err error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.err = err
	b.data, b.times = nil, nil
	b.oldest.Clear()
}

func Example() {
	now := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	trk, err := memquota.New(memquota.Config{
		Limit: 64 << 10,
		Now:   func() time.Time { return now },
	})
	if err != nil {
		panic(err)
	}
	defer trk.Close()

	ch, _ := trk.NewAccount("channel")
	circ, _ := ch.NewChild("circuit")
	stalled, _ := circ.NewChild("stream 1")
	busy, _ := circ.NewChild("stream 2")
	s1, _ := newStreamBuf(stalled)
	s2, _ := newStreamBuf(busy)

	s1.Write(make([]byte, 498)) // nobody reads stream 1
	now = now.Add(time.Second)
	s2.Write(make([]byte, 498))
	fmt.Println("used:", trk.Used())

	// The OS says memory is short: shed until at most 500 bytes are queued.
	if err := trk.ReclaimTo(context.Background(), 500); err != nil {
		panic(err)
	}
	_, err = s1.Read()
	fmt.Println("stream 1 reader:", errors.Is(err, memquota.ErrReclaimed))
	fmt.Println("stream 1 writer:", s1.Write([]byte("x")) != nil)
	p, err := s2.Read()
	fmt.Println("stream 2:", len(p), err)
	fmt.Println("used:", trk.Used())
	for _, a := range trk.Accounts() {
		fmt.Printf("%*s%s %d\n", 2*a.Depth, "", a.Name, a.SubtreeUsed)
	}
	// Output:
	// used: 996
	// stream 1 reader: true
	// stream 1 writer: true
	// stream 2: 498 <nil>
	// used: 0
	// channel 0
	//   circuit 0
	//     stream 2 0
}

package sdk

import (
	"context"
	"sync"

	"github.com/onionlite/onionlite/bootstrap"
)

// EventKind says what an Event reports.
type EventKind int

// Event kinds.
const (
	// EventProgress: bootstrap progress changed.
	EventProgress EventKind = iota
	// EventReady: the directory became usable (sent once).
	EventReady
	// EventWarning: something degraded but the client carries on (for
	// example the data directory is read-only); Err says what.
	EventWarning
)

// Event is a notification from the client.
type Event struct {
	Kind     EventKind
	Progress Progress
	Err      error
}

// Progress is bootstrap progress, as shown to users.
type Progress struct {
	// Phase is one of "starting", "loading_cache", "connecting",
	// "consensus", "certificates", "microdescriptors", "ready".
	Phase   string
	Percent int
	// DirBytes is the directory bytes read so far; DirBytesExpected an
	// estimate of the total (0 when unknown).
	DirBytes, DirBytesExpected int64
	// Microdescs of MicrodescsWanted relay descriptors are present.
	Microdescs, MicrodescsWanted int
	Message                      string
}

func progressOf(p bootstrap.Progress) Progress {
	return Progress{
		Phase: p.Phase.String(), Percent: p.Percent,
		DirBytes: p.DirBytes, DirBytesExpected: p.DirBytesExpected,
		Microdescs: p.Microdescs, MicrodescsWanted: p.MicrodescsWanted,
		Message: p.Message,
	}
}

// Events returns a channel of events until ctx ends or the client closes
// (then it is closed). It starts with the current progress and every state
// change so far (ready, warnings). A slow reader misses intermediate
// progress reports but never a state change nor the latest progress.
func (c *Client) Events(ctx context.Context) <-chan Event {
	k, err := c.started("events")
	out := make(chan Event)
	if err != nil {
		close(out)
		return out
	}
	k.events.subscribe(ctx, out, k.boot.Progress())
	return out
}

// broadcaster fans events out to subscribers without ever blocking the
// publisher: each subscriber has a small queue in which consecutive
// progress reports collapse into the latest.
type broadcaster struct {
	mu     sync.Mutex
	subs   map[*subscriber]struct{}
	closed bool
	// sticky holds state changes (ready, warnings) replayed to every new
	// subscriber, so none is missed by subscribing late.
	sticky []Event
	done   chan struct{} // closed by close
}

const maxSticky = 16

type subscriber struct {
	mu    sync.Mutex
	queue []Event
	wake  chan struct{}
}

const maxQueued = 32

func newBroadcaster() *broadcaster {
	return &broadcaster{subs: map[*subscriber]struct{}{}, done: make(chan struct{})}
}

func (b *broadcaster) publish(e Event) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if e.Kind != EventProgress && len(b.sticky) < maxSticky {
		b.sticky = append(b.sticky, e)
	}
	for s := range b.subs {
		s.push(e)
	}
}

func (s *subscriber) push(e Event) {
	s.mu.Lock()
	n := len(s.queue)
	switch {
	case e.Kind == EventProgress && n > 0 && s.queue[n-1].Kind == EventProgress:
		s.queue[n-1] = e
	case n >= maxQueued:
		// Drop the oldest progress report to make room; keep the rest.
		for i, q := range s.queue {
			if q.Kind == EventProgress {
				s.queue = append(s.queue[:i], s.queue[i+1:]...)
				break
			}
		}
		s.queue = append(s.queue, e)
	default:
		s.queue = append(s.queue, e)
	}
	s.mu.Unlock()
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

func (b *broadcaster) subscribe(ctx context.Context, out chan<- Event, initial bootstrap.Progress) {
	s := &subscriber{wake: make(chan struct{}, 1)}
	s.push(Event{Kind: EventProgress, Progress: progressOf(initial)})
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		close(out)
		return
	}
	for _, e := range b.sticky {
		s.push(e)
	}
	b.subs[s] = struct{}{}
	b.mu.Unlock()
	go func() {
		defer close(out)
		defer func() {
			b.mu.Lock()
			delete(b.subs, s)
			b.mu.Unlock()
		}()
		for {
			s.mu.Lock()
			q := s.queue
			s.queue = nil
			s.mu.Unlock()
			for _, e := range q {
				select {
				case out <- e:
				case <-ctx.Done():
					return
				case <-b.done:
					return
				}
			}
			select {
			case <-s.wake:
			case <-ctx.Done():
				return
			case <-b.done:
				return
			}
		}
	}()
}

func (b *broadcaster) close() {
	b.mu.Lock()
	if !b.closed {
		b.closed = true
		close(b.done)
	}
	b.mu.Unlock()
}

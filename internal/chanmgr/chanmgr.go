package chanmgr

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/onionlite/onionlite/internal/channel"
	"github.com/onionlite/onionlite/internal/clock"
)

// ErrClosed is returned after Close.
var ErrClosed = errors.New("chanmgr: closed")

// Manager hands out shared channels. Create it with New.
type Manager struct {
	cfg   *channel.Config
	clock clock.Clock

	mu     sync.Mutex
	chans  map[[20]byte]*entry
	closed bool
	// totals of channels that have been forgotten
	read, written int64
	opened        int64
	wg            sync.WaitGroup
}

type entry struct {
	ready chan struct{} // closed when the dial finished
	ch    *channel.Channel
	err   error
	ed    [32]byte
	idle  time.Time // when the channel last had no circuits (zero: in use)
}

// New returns a Manager dialing with cfg, which must not change afterwards.
func New(cfg *channel.Config) *Manager {
	if cfg == nil {
		cfg = &channel.Config{}
	}
	return &Manager{cfg: cfg, clock: clock.OrReal(cfg.Clock), chans: map[[20]byte]*entry{}}
}

// Get returns an open channel to t, dialing one if there is none. A
// channel already open to the same RSA identity is reused when it also
// proved t's Ed25519 identity (when t names one). Concurrent calls for one
// relay share a single dial; a failed dial is not cached.
func (m *Manager) Get(ctx context.Context, t channel.Target) (*channel.Channel, error) {
	for {
		m.mu.Lock()
		if m.closed {
			m.mu.Unlock()
			return nil, ErrClosed
		}
		e := m.chans[t.RSAID]
		if e == nil {
			e = &entry{ready: make(chan struct{}), ed: t.Ed25519ID}
			m.chans[t.RSAID] = e
			m.wg.Add(1)
			m.mu.Unlock()
			go m.dial(e, t)
		} else {
			m.mu.Unlock()
		}
		select {
		case <-e.ready:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		if e.err != nil {
			return nil, e.err
		}
		if e.ch.Err() != nil {
			m.forget(t.RSAID, e)
			continue
		}
		var zero [32]byte
		if t.Ed25519ID != zero && e.ch.Peer().Ed25519 != t.Ed25519ID {
			return nil, fmt.Errorf("chanmgr: %w: open channel proved another Ed25519 identity", channel.ErrIdentity)
		}
		return e.ch, nil
	}
}

// dial runs on its own goroutine so that a caller giving up does not abort
// a dial others wait for. It is bounded by a generous timeout.
func (m *Manager) dial(e *entry, t channel.Target) {
	defer m.wg.Done()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	ch, err := channel.Dial(ctx, m.cfg, t)
	m.mu.Lock()
	if err == nil && m.closed {
		ch.Close()
		err = ErrClosed
	}
	if err != nil {
		e.err = err
		if m.chans[t.RSAID] == e {
			delete(m.chans, t.RSAID)
		}
	} else {
		e.ch = ch
		m.opened++
	}
	m.mu.Unlock()
	close(e.ready)
	if err == nil {
		m.wg.Add(1)
		go func() {
			defer m.wg.Done()
			<-ch.Done()
			m.forget(t.RSAID, e)
		}()
	}
}

// forget drops e if it is still the entry for id, adding its counters to
// the totals.
func (m *Manager) forget(id [20]byte, e *entry) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.chans[id] != e {
		return
	}
	delete(m.chans, id)
	st := e.ch.Stats()
	m.read += st.BytesRead
	m.written += st.BytesWritten
}

// Stats are totals over every channel the manager opened.
type Stats struct {
	BytesRead, BytesWritten int64 // socket level, TLS included
	Open                    int   // channels open now
	Opened                  int64 // channels ever opened
}

// Stats returns the byte counters of every channel, open or closed.
func (m *Manager) Stats() Stats {
	m.mu.Lock()
	defer m.mu.Unlock()
	s := Stats{BytesRead: m.read, BytesWritten: m.written, Opened: m.opened}
	for _, e := range m.chans {
		if e.ch == nil {
			continue
		}
		st := e.ch.Stats()
		s.BytesRead += st.BytesRead
		s.BytesWritten += st.BytesWritten
		s.Open++
	}
	return s
}

// CloseIdle closes channels that have had no circuits for at least d. It
// returns how many it closed. Call it periodically.
func (m *Manager) CloseIdle(d time.Duration) int {
	now := m.clock.Now()
	var victims []*channel.Channel
	m.mu.Lock()
	for _, e := range m.chans {
		if e.ch == nil {
			continue
		}
		if e.ch.Circuits() > 0 {
			e.idle = time.Time{}
			continue
		}
		if e.idle.IsZero() {
			e.idle = now
		}
		if now.Sub(e.idle) >= d {
			victims = append(victims, e.ch)
		}
	}
	m.mu.Unlock()
	for _, ch := range victims {
		ch.Close()
	}
	return len(victims)
}

// CloseAll closes every open channel (their circuits fail); the manager
// stays usable and dials new ones on demand. For a network change, after
// which old connections are likely dead.
func (m *Manager) CloseAll() int {
	m.mu.Lock()
	type victim struct {
		id [20]byte
		e  *entry
	}
	var open []victim
	for id, e := range m.chans {
		if e.ch != nil {
			open = append(open, victim{id, e})
		}
	}
	m.mu.Unlock()
	for _, v := range open {
		v.e.ch.Close()
		m.forget(v.id, v.e) // now, not when the watcher notices
	}
	return len(open)
}

// Close closes every channel and waits for pending dials. Later Gets fail
// with ErrClosed.
func (m *Manager) Close() error {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return ErrClosed
	}
	m.closed = true
	var open []*channel.Channel
	for _, e := range m.chans {
		if e.ch != nil {
			open = append(open, e.ch)
		}
	}
	m.mu.Unlock()
	for _, ch := range open {
		ch.Close()
	}
	m.wg.Wait()
	return nil
}

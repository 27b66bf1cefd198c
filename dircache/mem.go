package dircache

import (
	"bytes"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/onionlite/onionlite/internal/consdiff"
)

// MemStore is a Store that keeps everything in memory: for tests, and for
// a client whose data directory is read-only or full. It forgets
// everything on Close.
type MemStore struct {
	mu     sync.Mutex
	closed bool
	cons   map[string]*Consensus
	mds    map[[32]byte]*memMD
	certs  map[[40]byte]Cert
	state  map[string][]byte
}

type memMD struct {
	text   []byte
	listed time.Time
}

var _ Store = (*MemStore)(nil)

// NewMemStore returns an empty in-memory Store.
func NewMemStore() *MemStore {
	return &MemStore{
		cons:  map[string]*Consensus{},
		mds:   map[[32]byte]*memMD{},
		certs: map[[40]byte]Cert{},
		state: map[string][]byte{},
	}
}

func (m *MemStore) lock() error {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return ErrClosed
	}
	return nil
}

func (m *MemStore) Consensus(flavor string) (*Consensus, error) {
	if err := checkFlavor(flavor); err != nil {
		return nil, err
	}
	if err := m.lock(); err != nil {
		return nil, err
	}
	defer m.mu.Unlock()
	c, ok := m.cons[flavor]
	if !ok {
		return nil, fmt.Errorf("%w: %s consensus", ErrNotFound, flavor)
	}
	cc := *c
	cc.Text = bytes.Clone(c.Text)
	return &cc, nil
}

func (m *MemStore) PutConsensus(flavor string, text []byte, meta ConsensusMeta) error {
	c, err := newConsensus(flavor, text, meta)
	if err != nil {
		return err
	}
	c.Text = bytes.Clone(text)
	if err := m.lock(); err != nil {
		return err
	}
	defer m.mu.Unlock()
	m.cons[flavor] = c
	return nil
}

// newConsensus checks the arguments and computes the digests. c.Text
// aliases text.
func newConsensus(flavor string, text []byte, meta ConsensusMeta) (*Consensus, error) {
	if err := checkFlavor(flavor); err != nil {
		return nil, err
	}
	if len(text) > MaxConsensusSize {
		return nil, invalid("consensus of %d bytes", len(text))
	}
	signed, full, err := consdiff.Digests(text)
	if err != nil {
		return nil, invalid("consensus: %v", err)
	}
	return &Consensus{Flavor: flavor, Text: text, ConsensusMeta: meta, SignedDigest: signed, FullDigest: full}, nil
}

func (m *MemStore) PutMicrodescs(listedAt time.Time, mds []Microdesc) error {
	if err := checkMicrodescs(mds); err != nil {
		return err
	}
	if err := m.lock(); err != nil {
		return err
	}
	defer m.mu.Unlock()
	for _, md := range mds {
		if e, ok := m.mds[md.Digest]; ok {
			if listedAt.After(e.listed) {
				e.listed = listedAt
			}
			continue
		}
		m.mds[md.Digest] = &memMD{text: bytes.Clone(md.Text), listed: listedAt}
	}
	return nil
}

func (m *MemStore) MissingMicrodescs(want [][32]byte) ([][32]byte, error) {
	if err := m.lock(); err != nil {
		return nil, err
	}
	defer m.mu.Unlock()
	var missing [][32]byte
	for _, d := range want {
		if _, ok := m.mds[d]; !ok {
			missing = append(missing, d)
		}
	}
	return missing, nil
}

func (m *MemStore) MarkListed(at time.Time, digests [][32]byte) error {
	if err := m.lock(); err != nil {
		return err
	}
	defer m.mu.Unlock()
	for _, d := range digests {
		if e, ok := m.mds[d]; ok && at.After(e.listed) {
			e.listed = at
		}
	}
	return nil
}

// ForEachMicrodesc walks a snapshot taken under the lock, so fn may call
// the store.
func (m *MemStore) ForEachMicrodesc(fn func(digest [32]byte, text []byte) error) (int, error) {
	if err := m.lock(); err != nil {
		return 0, err
	}
	type kv struct {
		d    [32]byte
		text []byte
	}
	all := make([]kv, 0, len(m.mds))
	for d, e := range m.mds {
		all = append(all, kv{d, e.text})
	}
	m.mu.Unlock()
	slices.SortFunc(all, func(a, b kv) int { return bytes.Compare(a.d[:], b.d[:]) })
	for _, e := range all {
		if err := fn(e.d, e.text); err != nil {
			return 0, err
		}
	}
	return 0, nil
}

func (m *MemStore) PruneMicrodescs(keep func([32]byte) bool, cutoff time.Time) (int, error) {
	if err := m.lock(); err != nil {
		return 0, err
	}
	defer m.mu.Unlock()
	n := 0
	for d, e := range m.mds {
		if (keep == nil || !keep(d)) && (cutoff.IsZero() || e.listed.Before(cutoff)) {
			delete(m.mds, d)
			n++
		}
	}
	return n, nil
}

func certKey(id, sk [20]byte) (k [40]byte) {
	copy(k[:20], id[:])
	copy(k[20:], sk[:])
	return k
}

func (m *MemStore) PutCert(c Cert) error {
	if err := checkCert(c); err != nil {
		return err
	}
	c.Text = bytes.Clone(c.Text)
	if err := m.lock(); err != nil {
		return err
	}
	defer m.mu.Unlock()
	m.certs[certKey(c.Identity, c.SigningKey)] = c
	return nil
}

func (m *MemStore) Certs() ([]Cert, int, error) {
	if err := m.lock(); err != nil {
		return nil, 0, err
	}
	defer m.mu.Unlock()
	out := make([]Cert, 0, len(m.certs))
	for _, c := range m.certs {
		c.Text = bytes.Clone(c.Text)
		out = append(out, c)
	}
	slices.SortFunc(out, func(a, b Cert) int {
		ka, kb := certKey(a.Identity, a.SigningKey), certKey(b.Identity, b.SigningKey)
		return bytes.Compare(ka[:], kb[:])
	})
	return out, 0, nil
}

func (m *MemStore) DeleteCert(id, sk [20]byte) error {
	if err := m.lock(); err != nil {
		return err
	}
	defer m.mu.Unlock()
	delete(m.certs, certKey(id, sk))
	return nil
}

func (m *MemStore) GetState(key string) ([]byte, error) {
	if err := checkStateKey(key); err != nil {
		return nil, err
	}
	if err := m.lock(); err != nil {
		return nil, err
	}
	defer m.mu.Unlock()
	v, ok := m.state[key]
	if !ok {
		return nil, fmt.Errorf("%w: state %q", ErrNotFound, key)
	}
	return bytes.Clone(v), nil
}

func (m *MemStore) PutState(key string, value []byte) error {
	if err := checkStateKey(key); err != nil {
		return err
	}
	if len(value) > MaxStateValue {
		return invalid("state value of %d bytes", len(value))
	}
	if err := m.lock(); err != nil {
		return err
	}
	defer m.mu.Unlock()
	v := bytes.Clone(value)
	if v == nil {
		v = []byte{}
	}
	m.state[key] = v
	return nil
}

func (m *MemStore) DeleteState(key string) error {
	if err := checkStateKey(key); err != nil {
		return err
	}
	if err := m.lock(); err != nil {
		return err
	}
	defer m.mu.Unlock()
	delete(m.state, key)
	return nil
}

func (m *MemStore) Close() error {
	if err := m.lock(); err != nil {
		return fmt.Errorf("dircache: second Close: %w", err)
	}
	defer m.mu.Unlock()
	m.closed = true
	m.cons, m.mds, m.certs, m.state = nil, nil, nil, nil
	return nil
}

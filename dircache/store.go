package dircache

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"time"
)

// Store is what the bootstrap keeps between runs. Both implementations
// (the badger-backed DB from Open and NewMemStore) satisfy it and are safe
// for concurrent use.
//
// A Store verifies what it can on every load: a microdescriptor is
// re-hashed against its digest, a consensus against the SHA3-256 recorded
// when it was stored, certificates and state values against a stored
// SHA-256. Entries that fail are deleted and counted, never returned. The
// caller still checks signatures, validity times and the m-line match.
//
// Byte slices passed in are copied; slices returned belong to the caller,
// except inside ForEachMicrodesc (see there).
type Store interface {
	// Consensus returns the stored consensus of flavor (for example
	// "microdesc"). It returns an error matching ErrNotFound if there is
	// none, and one matching ErrCorrupt (after deleting it) if the stored
	// copy fails its digest check.
	Consensus(flavor string) (*Consensus, error)
	// PutConsensus replaces the consensus of flavor by text, exactly as
	// received or as produced by a diff, so that a later diff applies to
	// it. The store computes the digests; text must contain a
	// "directory-signature" line.
	PutConsensus(flavor string, text []byte, meta ConsensusMeta) error

	// PutMicrodescs stores microdescriptors (text without any @annotation
	// line), last listed at listedAt. Every Digest must be the SHA-256 of
	// its Text, or nothing is stored. Re-putting a stored one only moves
	// its last-listed time forward.
	PutMicrodescs(listedAt time.Time, mds []Microdesc) error
	// MissingMicrodescs returns, in order, the digests in want that are not
	// stored.
	MissingMicrodescs(want [][32]byte) ([][32]byte, error)
	// MarkListed records that the stored microdescriptors among digests
	// are listed in a consensus valid after at (their last-listed time
	// only moves forward). Digests that are not stored are ignored.
	MarkListed(at time.Time, digests [][32]byte) error
	// ForEachMicrodesc calls fn for every stored microdescriptor that
	// verifies, in digest order. text is only valid during the call: copy
	// what you keep. Entries that fail verification are deleted and
	// counted in dropped. An error from fn stops the walk and is returned.
	ForEachMicrodesc(fn func(digest [32]byte, text []byte) error) (dropped int, err error)
	// PruneMicrodescs deletes every microdescriptor for which keep (nil:
	// none) returns false and whose last-listed time is before cutoff; a
	// zero cutoff deletes all those not kept. It returns how many it
	// deleted.
	PruneMicrodescs(keep func(digest [32]byte) bool, cutoff time.Time) (removed int, err error)

	// PutCert stores an authority key certificate's text under the
	// authority's identity fingerprint and its signing key's digest (both
	// SHA-1, as in the consensus and the certificate).
	PutCert(c Cert) error
	// Certs returns every stored certificate that passes its checksum,
	// ordered by key; failing ones are deleted and counted in dropped.
	Certs() (certs []Cert, dropped int, err error)
	// DeleteCert removes a certificate; a missing one is not an error.
	DeleteCert(identity, signingKey [20]byte) error

	// GetState returns the client-state value under key (ErrNotFound if
	// absent, ErrCorrupt after deleting a value that fails its checksum).
	GetState(key string) ([]byte, error)
	// PutState stores value (at most MaxStateValue bytes) under key.
	PutState(key string, value []byte) error
	// DeleteState removes key; a missing key is not an error.
	DeleteState(key string) error

	// Close releases the store. Later calls fail with an error matching
	// ErrClosed; a second Close returns such an error too.
	Close() error
}

// ConsensusMeta is what the caller learnt when it parsed the consensus.
type ConsensusMeta struct {
	ValidAfter, FreshUntil, ValidUntil time.Time
}

// Consensus is a stored consensus document.
type Consensus struct {
	Flavor string
	Text   []byte
	ConsensusMeta
	// SignedDigest is the SHA3-256 of the signed part: what a diff's
	// FROM names and what X-Or-Diff-From-Consensus sends.
	SignedDigest [32]byte
	// FullDigest is the SHA3-256 of the whole Text.
	FullDigest [32]byte
}

// Microdesc is a microdescriptor: Digest is the SHA-256 of Text, the bytes
// from its "onion-key" (or first) line through its last line's newline.
type Microdesc struct {
	Digest [32]byte
	Text   []byte
}

// Cert is an authority key certificate.
type Cert struct {
	Identity   [20]byte // fingerprint: SHA-1 of the identity key
	SigningKey [20]byte // SHA-1 of the signing key
	Text       []byte
}

// Limits on what the store accepts.
const (
	MaxStateKey      = 200
	MaxStateValue    = 1 << 20
	MaxMicrodescSize = 256 << 10 // the largest real one seen is 15.7 KB
	MaxCertSize      = 64 << 10
	MaxConsensusSize = 64 << 20
)

// Errors. Match with errors.Is; the text is not stable.
var (
	ErrNotFound = errors.New("dircache: not found")
	// ErrCorrupt: a stored entry failed verification and was deleted.
	ErrCorrupt = errors.New("dircache: stored entry failed verification and was dropped")
	ErrClosed  = errors.New("dircache: store is closed")
	// ErrReadOnly: the directory cannot be written; use NewMemStore.
	ErrReadOnly = errors.New("dircache: directory is not writable")
	// ErrLocked: another store has the directory open.
	ErrLocked = errors.New("dircache: directory is in use by another store")
	// ErrInvalid: an argument was rejected (digest mismatch, bad name,
	// too large).
	ErrInvalid = errors.New("dircache: invalid argument")
)

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, args...))
}

// checkFlavor accepts short lowercase names such as "microdesc" or "ns".
func checkFlavor(f string) error {
	if len(f) == 0 || len(f) > 32 {
		return invalid("flavor %q", f)
	}
	for i := 0; i < len(f); i++ {
		c := f[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
			return invalid("flavor %q", f)
		}
	}
	return nil
}

func checkStateKey(k string) error {
	if len(k) == 0 || len(k) > MaxStateKey {
		return invalid("state key of %d bytes", len(k))
	}
	return nil
}

func checkMicrodescs(mds []Microdesc) error {
	for i := range mds {
		if len(mds[i].Text) > MaxMicrodescSize {
			return invalid("microdescriptor %d is %d bytes", i, len(mds[i].Text))
		}
		if sha256.Sum256(mds[i].Text) != mds[i].Digest {
			return invalid("microdescriptor %d does not match its digest", i)
		}
	}
	return nil
}

func checkCert(c Cert) error {
	if len(c.Text) == 0 || len(c.Text) > MaxCertSize {
		return invalid("certificate of %d bytes", len(c.Text))
	}
	return nil
}

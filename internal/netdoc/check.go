package netdoc

import (
	"fmt"
	"strings"
	"time"
)

// Tolerance widens the window in which a consensus counts as live.
type Tolerance struct {
	Early time.Duration // accept this long before valid-after
	Late  time.Duration // accept this long after valid-until
}

// ReasonablyLive is C tor's REASONABLY_LIVE_TIME (24 hours) on both
// sides: a client without a newer consensus keeps using one up to a day
// after valid-until, and accepts one up to a day before valid-after
// (its own clock may be behind). Use it with CheckWithTolerance when the
// alternative is having no directory at all; a bootstrap that can fetch a
// fresh consensus should use Check.
var ReasonablyLive = Tolerance{Early: 24 * time.Hour, Late: 24 * time.Hour}

// SigStatus is the outcome of checking one directory signature.
type SigStatus uint8

// Signature outcomes.
const (
	SigValid            SigStatus = iota + 1 // verified with a checked certificate
	SigBad                                   // certificate found, signature does not verify
	SigNoCert                                // trusted authority, no certificate with this signing key
	SigCertNotLive                           // certificate expired or not yet valid at the check time
	SigUntrusted                             // identity is not a configured v3 authority
	SigUnknownAlgorithm                      // digest algorithm not sha1/sha256: ignored
)

func (s SigStatus) String() string {
	switch s {
	case SigValid:
		return "valid"
	case SigBad:
		return "bad signature"
	case SigNoCert:
		return "no certificate"
	case SigCertNotLive:
		return "certificate not live"
	case SigUntrusted:
		return "untrusted authority"
	case SigUnknownAlgorithm:
		return "unknown algorithm"
	}
	return "unchecked"
}

// SignatureResult is the outcome for one DirectorySignature.
type SignatureResult struct {
	Key       CertKey
	Algorithm DigestAlgorithm
	Authority string // nickname of the trusted authority; "" if untrusted
	Status    SigStatus
}

// SignatureError reports a consensus that lacks valid signatures from
// more than half of the configured authorities. It matches
// ErrTooFewSignatures always, ErrBadSignature when some signature did
// not verify, ErrMissingCerts when some certificate was missing and
// ErrCertExpired when some certificate was outside its lifetime.
type SignatureError struct {
	Valid      int // authorities with a valid signature
	Needed     int // more than half of Configured
	Configured int // trusted v3 authorities
	Results    []SignatureResult
}

func (e *SignatureError) count(s SigStatus) int {
	n := 0
	for _, r := range e.Results {
		if r.Status == s {
			n++
		}
	}
	return n
}

func (e *SignatureError) Error() string {
	var parts []string
	for _, s := range []SigStatus{SigBad, SigNoCert, SigCertNotLive, SigUntrusted, SigUnknownAlgorithm} {
		if n := e.count(s); n > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", n, s))
		}
	}
	detail := ""
	if len(parts) > 0 {
		detail = " (" + strings.Join(parts, ", ") + ")"
	}
	return fmt.Sprintf("netdoc: too few valid consensus signatures: %d of %d configured authorities, need %d%s",
		e.Valid, e.Configured, e.Needed, detail)
}

// Is implements errors.Is for the sentinels listed on the type.
func (e *SignatureError) Is(target error) bool {
	switch target {
	case ErrTooFewSignatures:
		return true
	case ErrBadSignature:
		return e.count(SigBad) > 0
	case ErrMissingCerts:
		return e.count(SigNoCert) > 0
	case ErrCertExpired:
		return e.count(SigCertNotLive) > 0
	}
	return false
}

// Check verifies the consensus at time now: now must lie within
// [valid-after, valid-until] (errors match ErrNotYetValid / ErrExpired),
// and more than half of the configured v3 authorities in trusted
// (those with a non-zero V3Ident, counted once each) must have a valid
// signature made with the signing key of one of certs, where that
// certificate is the authority's (fingerprint == V3Ident) and live at now.
// Otherwise the error is a *SignatureError. The lifetime is checked first.
//
// On success the returned Consensus has Verified filled in. u is not
// modified and may be checked again (for example after fetching missing
// certificates).
func (u *UncheckedConsensus) Check(now time.Time, trusted []Authority, certs []*AuthCert) (*Consensus, error) {
	return u.CheckWithTolerance(now, trusted, certs, Tolerance{})
}

// CheckWithTolerance is Check with a wider lifetime window: now may be up
// to tol.Early before valid-after and up to tol.Late after valid-until.
// ReasonablyLive gives C tor's behaviour for a stale but usable consensus.
// The signature rules are unchanged.
func (u *UncheckedConsensus) CheckWithTolerance(now time.Time, trusted []Authority, certs []*AuthCert, tol Tolerance) (*Consensus, error) {
	c := u.c
	if now.Before(c.ValidAfter.Add(-tol.Early)) {
		return nil, fmt.Errorf("%w: consensus valid-after is %s, now is %s", ErrNotYetValid,
			c.ValidAfter.Format(time.RFC3339), now.UTC().Format(time.RFC3339))
	}
	if now.After(c.ValidUntil.Add(tol.Late)) {
		return nil, fmt.Errorf("%w: consensus valid-until was %s, now is %s", ErrExpired,
			c.ValidUntil.Format(time.RFC3339), now.UTC().Format(time.RFC3339))
	}
	auths := v3Authorities(trusted)
	if len(auths) == 0 {
		return nil, ErrNoAuthorities
	}
	_, needed := SignatureThreshold(trusted)
	results := make([]SignatureResult, len(c.Signatures))
	signed := make([]bool, len(auths))
	valid := 0
	for i := range c.Signatures {
		s := &c.Signatures[i]
		r := &results[i]
		r.Key = CertKey{Identity: s.Identity, SigningKeyDigest: s.SigningKeyDigest}
		r.Algorithm = s.Algorithm
		ai := -1
		for j, a := range auths {
			if a.V3Ident == s.Identity {
				ai = j
				break
			}
		}
		if ai < 0 {
			r.Status = SigUntrusted
			continue
		}
		r.Authority = auths[ai].Nickname
		var digest []byte
		switch s.Algorithm {
		case DigestSHA1:
			digest = c.Digests.SignedSHA1[:]
		case DigestSHA256:
			digest = c.Digests.SignedSHA256[:]
		default:
			r.Status = SigUnknownAlgorithm
			continue
		}
		cert := findCert(certs, r.Key)
		switch {
		case cert == nil:
			r.Status = SigNoCert
		case !cert.ValidAt(now):
			r.Status = SigCertNotLive
		case !verifyRaw(cert.SigningKey, digest, s.Signature):
			r.Status = SigBad
		default:
			r.Status = SigValid
			if !signed[ai] {
				signed[ai] = true
				valid++
			}
		}
	}
	if valid < needed {
		return nil, &SignatureError{Valid: valid, Needed: needed, Configured: len(auths), Results: results}
	}
	out := *c
	out.Verified = results
	return &out, nil
}

// SignatureThreshold returns how many v3 authorities trusted configures
// (distinct non-zero V3Idents) and how many of them must sign a consensus:
// more than half.
func SignatureThreshold(trusted []Authority) (configured, needed int) {
	n := len(v3Authorities(trusted))
	return n, n/2 + 1
}

// v3Authorities returns the authorities with a v3 identity, each
// identity once.
func v3Authorities(trusted []Authority) []Authority {
	out := make([]Authority, 0, len(trusted))
	for _, a := range trusted {
		if a.V3Ident == ([20]byte{}) {
			continue
		}
		dup := false
		for _, b := range out {
			if b.V3Ident == a.V3Ident {
				dup = true
				break
			}
		}
		if !dup {
			out = append(out, a)
		}
	}
	return out
}

func findCert(certs []*AuthCert, k CertKey) *AuthCert {
	var found *AuthCert
	for _, c := range certs {
		if c != nil && c.Fingerprint == k.Identity && c.SigningKeyDigest == k.SigningKeyDigest {
			found = c
			break
		}
	}
	return found
}

// MissingCerts lists, without duplicates and in signature order, the
// certificates needed to check this consensus that are not in have:
// one CertKey per signature by a trusted v3 authority with a known digest
// algorithm. A bootstrap fetches exactly these (/tor/keys/fp-sk/...).
func (u *UncheckedConsensus) MissingCerts(trusted []Authority, have []*AuthCert) []CertKey {
	auths := v3Authorities(trusted)
	var out []CertKey
	for _, s := range u.c.Signatures {
		if s.Algorithm == DigestUnknown {
			continue
		}
		isTrusted := false
		for _, a := range auths {
			if a.V3Ident == s.Identity {
				isTrusted = true
				break
			}
		}
		k := CertKey{Identity: s.Identity, SigningKeyDigest: s.SigningKeyDigest}
		if !isTrusted || findCert(have, k) != nil {
			continue
		}
		dup := false
		for _, o := range out {
			if o == k {
				dup = true
				break
			}
		}
		if !dup {
			out = append(out, k)
		}
	}
	return out
}

// SignedBy returns the nicknames of the trusted authorities with a valid
// signature, each once, in signature order (after Check).
func (c *Consensus) SignedBy() []string {
	return signedBy(c.Verified)
}

// SignedBy returns the nicknames of the trusted authorities whose
// signatures were valid, each once.
func (e *SignatureError) SignedBy() []string {
	return signedBy(e.Results)
}

func signedBy(results []SignatureResult) []string {
	out := []string{}
	for i, r := range results {
		if r.Status != SigValid {
			continue
		}
		dup := false
		for _, q := range results[:i] {
			if q.Status == SigValid && q.Key.Identity == r.Key.Identity {
				dup = true
				break
			}
		}
		if !dup {
			out = append(out, r.Authority)
		}
	}
	return out
}

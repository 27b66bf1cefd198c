package netdoc

import (
	"bytes"
	"crypto/rsa"
	"crypto/sha1"
	"fmt"
	"net/netip"
	"time"
)

const docCert = "authority certificate"

// CertPublishedSkew is how far in the future a certificate's
// dir-key-published may be and still be accepted. It is generous on
// purpose: authorities sign with certificates dated ahead (tor26 signed
// the 2021-08-29 consensuses with a certificate published 2021-09-01), and
// C tor ignores the published time when checking consensus signatures.
// The bound only catches absurd dates and badly wrong local clocks.
// Expiry gets no tolerance.
const CertPublishedSkew = 30 * 24 * time.Hour

// AuthCert is a checked directory authority key certificate (dir-spec
// 3.1): the authority's long-term identity key vouches for a medium-term
// signing key until Expires. Obtain it from (*UncheckedAuthCert).Check.
type AuthCert struct {
	// Fingerprint is the authority's v3 identity: SHA-1 of its identity
	// key (the "v3ident" of DirAuthority lines).
	Fingerprint [20]byte
	// SigningKeyDigest is SHA-1 of the signing key; consensus signatures
	// name it.
	SigningKeyDigest [20]byte
	IdentityKey      *rsa.PublicKey
	SigningKey       *rsa.PublicKey
	Published        time.Time
	Expires          time.Time
	// Address is the optional dir-address; invalid (zero) when absent.
	Address netip.AddrPort
	// Raw is a copy of the certificate's text, for caches.
	Raw []byte
}

// Key returns the (identity, signing-key digest) pair that names this
// certificate in consensus signatures.
func (c *AuthCert) Key() CertKey {
	return CertKey{Identity: c.Fingerprint, SigningKeyDigest: c.SigningKeyDigest}
}

// ValidAt reports whether now is within [Published-CertPublishedSkew,
// Expires].
func (c *AuthCert) ValidAt(now time.Time) bool {
	return certTimeErr(c.Published, c.Expires, now) == nil
}

func certTimeErr(published, expires, now time.Time) error {
	if now.After(expires) {
		return fmt.Errorf("%w: authority certificate expired at %s", ErrExpired, expires.Format(time.RFC3339))
	}
	if now.Add(CertPublishedSkew).Before(published) {
		return fmt.Errorf("%w: authority certificate published at %s, in the future", ErrNotYetValid, published.Format(time.RFC3339))
	}
	return nil
}

// UncheckedAuthCert is a parsed certificate whose key bindings and
// lifetime have not been checked.
type UncheckedAuthCert struct {
	c            AuthCert
	identityDER  []byte
	crossSig     []byte
	certSig      []byte
	signedDigest [20]byte // SHA-1 from the start through "dir-key-certification\n"
}

// Key returns the (identity, signing-key digest) pair the certificate
// claims, before checking.
func (u *UncheckedAuthCert) Key() CertKey { return u.c.Key() }

// Published returns the claimed publication time.
func (u *UncheckedAuthCert) Published() time.Time { return u.c.Published }

// Expires returns the claimed expiry time.
func (u *UncheckedAuthCert) Expires() time.Time { return u.c.Expires }

// Raw returns the certificate text. Do not modify.
func (u *UncheckedAuthCert) Raw() []byte { return u.c.Raw }

// CheckSignatures checks the certificate's key bindings but not its
// lifetime: SHA-1 of the identity key equals the fingerprint, the signing
// key cross-certifies the identity (dir-key-crosscert) and the identity
// key signs the certificate (dir-key-certification). Errors match
// ErrBadSignature.
func (u *UncheckedAuthCert) CheckSignatures() error {
	fp := sha1.Sum(u.identityDER)
	if fp != u.c.Fingerprint {
		return fmt.Errorf("%w: authority certificate %X: identity key digest %X does not match the fingerprint", ErrBadSignature, u.c.Fingerprint, fp)
	}
	if !verifyRaw(u.c.SigningKey, fp[:], u.crossSig) {
		return fmt.Errorf("%w: authority certificate %X: dir-key-crosscert does not verify", ErrBadSignature, u.c.Fingerprint)
	}
	if !verifyRaw(u.c.IdentityKey, u.signedDigest[:], u.certSig) {
		return fmt.Errorf("%w: authority certificate %X: dir-key-certification does not verify", ErrBadSignature, u.c.Fingerprint)
	}
	return nil
}

// Check checks the key bindings (see CheckSignatures) and that now lies
// within the certificate's lifetime (published, with CertPublishedSkew of
// tolerance, to expires). Lifetime errors match ErrExpired or
// ErrNotYetValid.
func (u *UncheckedAuthCert) Check(now time.Time) (*AuthCert, error) {
	if err := u.CheckSignatures(); err != nil {
		return nil, err
	}
	if err := certTimeErr(u.c.Published, u.c.Expires, now); err != nil {
		return nil, fmt.Errorf("%X: %w", u.c.Fingerprint, err)
	}
	c := u.c
	return &c, nil
}

// certificate items that must appear exactly once.
const (
	cFingerprint = 1 << iota
	cIdentity
	cPublished
	cExpires
	cSigning
	cCrosscert
	cAddress
)

// ParseAuthCerts parses one or more concatenated authority key
// certificates, as served at /tor/keys/all or stored in Tor's cached-certs.
// Every certificate must be well formed; unknown items are ignored.
func ParseAuthCerts(doc []byte) ([]*UncheckedAuthCert, error) {
	t := newTokenizer(doc, docCert)
	var out []*UncheckedAuthCert
	for {
		u, ok, err := parseOneCert(&t)
		if err != nil {
			return nil, err
		}
		if !ok {
			break
		}
		out = append(out, u)
	}
	if len(out) == 0 {
		return nil, parseErr(docCert, 0, "no certificate in document")
	}
	return out, nil
}

func parseOneCert(t *tokenizer) (*UncheckedAuthCert, bool, error) {
	it, ok, err := t.next()
	if err != nil || !ok {
		return nil, false, err
	}
	if !kwIs(it.kw, "dir-key-certificate-version") {
		return nil, false, parseErr(docCert, it.line, "certificate does not start with dir-key-certificate-version")
	}
	if v, _ := nextArg(it.args); string(v) != "3" || it.hasObj {
		return nil, false, unsupportedErr(docCert, it.line, "dir-key-certificate-version %.10q, want 3", v)
	}
	start, startLine := it.start, it.line
	u := &UncheckedAuthCert{}
	var seen uint32
	once := func(bit uint32, it item, wantObj bool) error {
		if seen&bit != 0 {
			return parseErr(docCert, it.line, "duplicate %s", it.kw)
		}
		seen |= bit
		if it.hasObj != wantObj {
			if wantObj {
				return parseErr(docCert, it.line, "%s lacks its object", it.kw)
			}
			return parseErr(docCert, it.line, "unexpected object after %s", it.kw)
		}
		if wantObj && len(it.args) != 0 {
			return parseErr(docCert, it.line, "%s takes no arguments", it.kw)
		}
		return nil
	}
	for {
		it, ok, err := t.next()
		if err != nil {
			return nil, false, err
		}
		if !ok {
			return nil, false, parseErr(docCert, startLine, "certificate has no dir-key-certification (truncated?)")
		}
		switch string(it.kw) {
		case "dir-key-certificate-version":
			return nil, false, parseErr(docCert, it.line, "certificate has no dir-key-certification before the next certificate")
		case "fingerprint":
			if err := once(cFingerprint, it, false); err != nil {
				return nil, false, err
			}
			a, _ := nextArg(it.args)
			fp, ok := parseHex20(a)
			if !ok {
				return nil, false, parseErr(docCert, it.line, "malformed fingerprint")
			}
			u.c.Fingerprint = fp
		case "dir-address":
			if err := once(cAddress, it, false); err != nil {
				return nil, false, err
			}
			a, _ := nextArg(it.args)
			ap, ok := parseAddrPort(a)
			if !ok {
				return nil, false, parseErr(docCert, it.line, "malformed dir-address")
			}
			u.c.Address = ap
		case "dir-key-published", "dir-key-expires":
			bit, dst := uint32(cPublished), &u.c.Published
			if kwIs(it.kw, "dir-key-expires") {
				bit, dst = cExpires, &u.c.Expires
			}
			if err := once(bit, it, false); err != nil {
				return nil, false, err
			}
			tm, _, ok := timeArgs(it.args)
			if !ok {
				return nil, false, parseErr(docCert, it.line, "malformed time in %s", it.kw)
			}
			*dst = tm
		case "dir-identity-key", "dir-signing-key":
			bit := uint32(cIdentity)
			if kwIs(it.kw, "dir-signing-key") {
				bit = cSigning
			}
			if err := once(bit, it, true); err != nil {
				return nil, false, err
			}
			if string(it.obj.label) != "RSA PUBLIC KEY" {
				return nil, false, parseErr(docCert, it.obj.line, "%s object is %q, want RSA PUBLIC KEY", it.kw, it.obj.label)
			}
			der, err := decodeObject(it.obj.body)
			if err != nil {
				return nil, false, parseErr(docCert, it.obj.line, "bad base64 in %s", it.kw)
			}
			k, msg := parseRSAPublicKey(der)
			if k.pub == nil {
				return nil, false, parseErr(docCert, it.obj.line, "%s: %s", it.kw, msg)
			}
			if bit == cIdentity {
				u.c.IdentityKey, u.identityDER = k.pub, der
			} else {
				u.c.SigningKey, u.c.SigningKeyDigest = k.pub, k.digest
			}
		case "dir-key-crosscert":
			if err := once(cCrosscert, it, true); err != nil {
				return nil, false, err
			}
			if l := string(it.obj.label); l != "ID SIGNATURE" && l != "SIGNATURE" {
				return nil, false, parseErr(docCert, it.obj.line, "dir-key-crosscert object is %q, want ID SIGNATURE", l)
			}
			sig, err := decodeObject(it.obj.body)
			if err != nil || len(sig) == 0 {
				return nil, false, parseErr(docCert, it.obj.line, "bad base64 in dir-key-crosscert")
			}
			u.crossSig = sig
		case "dir-key-certification":
			if !it.hasObj || len(it.args) != 0 || string(it.obj.label) != "SIGNATURE" {
				return nil, false, parseErr(docCert, it.line, "dir-key-certification needs no arguments and a SIGNATURE object")
			}
			const need = cFingerprint | cIdentity | cPublished | cExpires | cSigning | cCrosscert
			if seen&need != need {
				return nil, false, parseErr(docCert, it.line, "certificate lacks %s", missingCertItems(seen))
			}
			sig, err := decodeObject(it.obj.body)
			if err != nil || len(sig) == 0 {
				return nil, false, parseErr(docCert, it.obj.line, "bad base64 in dir-key-certification")
			}
			u.certSig = sig
			u.signedDigest = sha1.Sum(t.doc[start:it.lineEnd])
			if !u.c.Published.Before(u.c.Expires) {
				return nil, false, parseErr(docCert, startLine, "certificate expires before it is published")
			}
			u.c.Raw = bytes.Clone(t.doc[start:it.end])
			return u, true, nil
		}
	}
}

func missingCertItems(seen uint32) string {
	s := ""
	for _, x := range []struct {
		bit  uint32
		name string
	}{{cFingerprint, "fingerprint"}, {cIdentity, "dir-identity-key"}, {cPublished, "dir-key-published"},
		{cExpires, "dir-key-expires"}, {cSigning, "dir-signing-key"}, {cCrosscert, "dir-key-crosscert"}} {
		if seen&x.bit == 0 {
			if s != "" {
				s += ", "
			}
			s += x.name
		}
	}
	return s
}

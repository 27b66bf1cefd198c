package torcrypto

import (
	"bytes"
	"crypto"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/x509"
	"encoding/binary"
	"errors"
	"fmt"
	"time"
)

// ErrCertificate is wrapped by every certificate failure.
var ErrCertificate = errors.New("torcrypto: bad certificate")

func certErr(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrCertificate, fmt.Sprintf(format, args...))
}

// ErrCertTime is wrapped, besides ErrCertificate, by failures that are
// only about time: a certificate that is otherwise good has expired, or
// is not valid yet, at the time it was checked at. With a wrong local
// clock every relay's certificates fail this way.
var ErrCertTime = errors.New("torcrypto: certificate not valid at this time")

func certTimeErr(format string, args ...any) error {
	return fmt.Errorf("%w: %w: %s", ErrCertificate, ErrCertTime, fmt.Sprintf(format, args...))
}

// Ed25519 certificate types (cert-spec A.1).
const (
	CertEdIDSigning   uint8 = 4 // Ed25519 signing key, signed by the identity key
	CertEdSigningLink uint8 = 5 // TLS link certificate digest, signed by the signing key
	CertEdSigningAuth uint8 = 6
	CertNtorCrosscert uint8 = 0x0a
)

// Certified key types (cert-spec A.4).
const (
	KeyTypeEd25519    uint8 = 1
	KeyTypeRSADigest  uint8 = 2
	KeyTypeX509Digest uint8 = 3
)

const (
	extSignedWithKey   uint8 = 4
	extAffectsValidity uint8 = 1
)

// CertExtension is one extension of an Ed25519 certificate.
type CertExtension struct {
	Type  uint8
	Flags uint8
	Data  []byte
}

// Ed25519Cert is a parsed, unchecked Ed25519 certificate (cert-spec 2.1).
type Ed25519Cert struct {
	Type       uint8
	Expires    time.Time
	KeyType    uint8
	Key        [32]byte
	Extensions []CertExtension
	// SignedWith is the signing key named by the signed-with-ed25519-key
	// extension, or nil.
	SignedWith ed25519.PublicKey
	Signature  [64]byte
	signed     []byte
}

// ParseEd25519Cert decodes an Ed25519 certificate without checking it.
func ParseEd25519Cert(b []byte) (*Ed25519Cert, error) {
	if len(b) < 1+1+4+1+32+1+64 {
		return nil, certErr("Ed25519 certificate of %d bytes is too short", len(b))
	}
	if b[0] != 1 {
		return nil, certErr("Ed25519 certificate version %d", b[0])
	}
	c := &Ed25519Cert{
		Type:    b[1],
		Expires: time.Unix(int64(binary.BigEndian.Uint32(b[2:6]))*3600, 0),
		KeyType: b[6],
	}
	copy(c.Key[:], b[7:39])
	n := int(b[39])
	p := b[40:]
	for i := 0; i < n; i++ {
		if len(p) < 4 {
			return nil, certErr("truncated extension header")
		}
		l := int(binary.BigEndian.Uint16(p))
		if len(p) < 4+l {
			return nil, certErr("truncated extension")
		}
		e := CertExtension{Type: p[2], Flags: p[3], Data: p[4 : 4+l]}
		if e.Type == extSignedWithKey {
			if l != 32 {
				return nil, certErr("signed-with-key extension of %d bytes", l)
			}
			if c.SignedWith == nil {
				c.SignedWith = ed25519.PublicKey(bytes.Clone(e.Data))
			}
		}
		c.Extensions = append(c.Extensions, e)
		p = p[4+l:]
	}
	if len(p) != 64 {
		return nil, certErr("Ed25519 certificate has %d bytes after its extensions, want a 64-byte signature", len(p))
	}
	copy(c.Signature[:], p)
	c.signed = b[:len(b)-64]
	return c, nil
}

// Check verifies c's signature by signer (or, when signer is nil, by the
// key in its signed-with-ed25519-key extension), that a signer named in
// that extension matches, that c has not expired at now, and that it has
// no extension it does not understand that affects validation.
func (c *Ed25519Cert) Check(signer ed25519.PublicKey, now time.Time) error {
	for _, e := range c.Extensions {
		if e.Type != extSignedWithKey && e.Flags&extAffectsValidity != 0 {
			return certErr("unknown extension %d affects validation", e.Type)
		}
	}
	if signer == nil {
		signer = c.SignedWith
	}
	if len(signer) != ed25519.PublicKeySize {
		return certErr("type %d certificate has no known signing key", c.Type)
	}
	if c.SignedWith != nil && !bytes.Equal(c.SignedWith, signer) {
		return certErr("type %d certificate names a different signing key", c.Type)
	}
	if !ed25519.Verify(signer, c.signed, c.Signature[:]) {
		return certErr("type %d certificate signature", c.Type)
	}
	if !now.Before(c.Expires) {
		return certTimeErr("type %d certificate expired at %s", c.Type, c.Expires.UTC().Format(time.RFC3339))
	}
	return nil
}

// RSACrosscert is a parsed, unchecked RSA->Ed25519 cross-certificate
// (cert-spec 2.3).
type RSACrosscert struct {
	Ed25519   [32]byte
	Expires   time.Time
	Signature []byte
	signed    []byte
}

const crosscertPrefix = "Tor TLS RSA/Ed25519 cross-certificate"

// ParseRSACrosscert decodes a cross-certificate without checking it.
func ParseRSACrosscert(b []byte) (*RSACrosscert, error) {
	if len(b) < 37 {
		return nil, certErr("RSA cross-certificate of %d bytes is too short", len(b))
	}
	if int(b[36]) != len(b)-37 {
		return nil, certErr("RSA cross-certificate signature length %d for %d bytes", b[36], len(b)-37)
	}
	c := &RSACrosscert{
		Expires:   time.Unix(int64(binary.BigEndian.Uint32(b[32:36]))*3600, 0),
		Signature: b[37:],
		signed:    b[:36],
	}
	copy(c.Ed25519[:], b[:32])
	return c, nil
}

// Check verifies that c is signed by the RSA key pub and unexpired at now.
// Tor signs SHA-256(prefix | ED25519_KEY | EXPIRATION) with PKCS#1 v1.5
// padding and no DigestInfo.
func (c *RSACrosscert) Check(pub *rsa.PublicKey, now time.Time) error {
	h := sha256.New()
	h.Write([]byte(crosscertPrefix))
	h.Write(c.signed)
	if err := rsa.VerifyPKCS1v15(pub, crypto.Hash(0), h.Sum(nil), c.Signature); err != nil {
		return certErr("RSA cross-certificate signature")
	}
	if !now.Before(c.Expires) {
		return certTimeErr("RSA cross-certificate expired at %s", c.Expires.UTC().Format(time.RFC3339))
	}
	return nil
}

// RSAIdentityDigest is a relay's RSA identity fingerprint: SHA-1 of the
// PKCS#1 DER encoding of its public key.
func RSAIdentityDigest(pub *rsa.PublicKey) [20]byte {
	return sha1.Sum(x509.MarshalPKCS1PublicKey(pub))
}

// CheckRSAIdentityCert parses a CERTS type-2 certificate: X.509, a
// 1024-bit RSA key, self-signed, valid at now. It returns the key.
func CheckRSAIdentityCert(der []byte, now time.Time) (*rsa.PublicKey, error) {
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, certErr("RSA identity certificate: %v", err)
	}
	pub, ok := cert.PublicKey.(*rsa.PublicKey)
	if !ok {
		return nil, certErr("RSA identity certificate holds a %T", cert.PublicKey)
	}
	if pub.N.BitLen() != 1024 {
		return nil, certErr("RSA identity key of %d bits, want 1024", pub.N.BitLen())
	}
	// CheckSignature on the certificate itself verifies the self-signature
	// without the CA constraints that CheckSignatureFrom would impose.
	if err := cert.CheckSignature(cert.SignatureAlgorithm, cert.RawTBSCertificate, cert.Signature); err != nil {
		return nil, certErr("RSA identity certificate self-signature: %v", err)
	}
	if now.Before(cert.NotBefore) || now.After(cert.NotAfter) {
		return nil, certTimeErr("RSA identity certificate valid %s to %s, not at %s",
			cert.NotBefore.UTC().Format(time.RFC3339), cert.NotAfter.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339))
	}
	return pub, nil
}

// RelayIdentity is a relay's pair of identities.
type RelayIdentity struct {
	RSA     [20]byte // SHA-1 of the RSA identity key (the fingerprint)
	Ed25519 [32]byte // Ed25519 master identity key
}

// ResponderCerts are the certificates from a relay's CERTS cell that
// authenticate it to a client (tor-spec 4.2, the Ed25519+RSA case).
type ResponderCerts struct {
	RSAIdentity   []byte // type 2: X.509, self-signed RSA-1024 identity
	IDToSigning   []byte // type 4: Ed25519 identity -> signing key
	SigningToLink []byte // type 5: signing key -> SHA-256 of the TLS certificate
	Crosscert     []byte // type 7: RSA identity -> Ed25519 identity
}

// Verify performs every check tor-spec 4.2 lists for authenticating a
// responder with both identities, binding them to tlsCert (the DER of the
// certificate that authenticated the TLS connection). It returns the
// proven identities; the caller compares them with the expected ones.
func (rc ResponderCerts) Verify(tlsCert []byte, now time.Time) (RelayIdentity, error) {
	var id RelayIdentity
	switch {
	case rc.RSAIdentity == nil:
		return id, certErr("no RSA identity certificate")
	case rc.IDToSigning == nil:
		return id, certErr("no identity->signing certificate")
	case rc.SigningToLink == nil:
		return id, certErr("no signing->link certificate")
	case rc.Crosscert == nil:
		return id, certErr("no RSA->Ed25519 cross-certificate")
	}
	// Cheap checks first: the Ed25519 chain and the TLS binding, then
	// the RSA certificates.
	idSign, err := ParseEd25519Cert(rc.IDToSigning)
	if err != nil {
		return id, err
	}
	if idSign.Type != CertEdIDSigning || idSign.KeyType != KeyTypeEd25519 {
		return id, certErr("identity->signing certificate has type %d, key type %d", idSign.Type, idSign.KeyType)
	}
	if idSign.SignedWith == nil {
		return id, certErr("identity->signing certificate does not name the identity key")
	}
	if err := idSign.Check(nil, now); err != nil {
		return id, err
	}

	link, err := ParseEd25519Cert(rc.SigningToLink)
	if err != nil {
		return id, err
	}
	// Tor before 0.4.5.1 wrote key type 1 here; cert-spec says to accept it.
	if link.Type != CertEdSigningLink || (link.KeyType != KeyTypeX509Digest && link.KeyType != KeyTypeEd25519) {
		return id, certErr("signing->link certificate has type %d, key type %d", link.Type, link.KeyType)
	}
	if err := link.Check(ed25519.PublicKey(idSign.Key[:]), now); err != nil {
		return id, err
	}
	tlsDigest := sha256.Sum256(tlsCert)
	if !Equal(link.Key[:], tlsDigest[:]) {
		return id, certErr("signing->link certificate does not certify the TLS certificate")
	}

	cross, err := ParseRSACrosscert(rc.Crosscert)
	if err != nil {
		return id, err
	}
	if !Equal(cross.Ed25519[:], idSign.SignedWith) {
		return id, certErr("cross-certificate certifies a different Ed25519 identity")
	}
	rsaPub, err := CheckRSAIdentityCert(rc.RSAIdentity, now)
	if err != nil {
		return id, err
	}
	if err := cross.Check(rsaPub, now); err != nil {
		return id, err
	}
	id.RSA = RSAIdentityDigest(rsaPub)
	copy(id.Ed25519[:], idSign.SignedWith)
	return id, nil
}

package netdoc

import (
	"crypto/rsa"
	"crypto/sha1"
	"math/big"

	"golang.org/x/crypto/cryptobyte"
	"golang.org/x/crypto/cryptobyte/asn1"
)

// RSA key sizes accepted for authority identity and signing keys. dir-spec
// 3.1 requires at least 1024 bits; the upper bound keeps a hostile
// certificate from making verification arbitrarily slow.
const (
	minRSABits = 1024
	maxRSABits = 8192
)

// rsaKey is a parsed RSA public key with the digest of its DER encoding.
type rsaKey struct {
	pub    *rsa.PublicKey
	digest [20]byte // SHA-1 of the PKCS#1 DER encoding (Tor's key digest)
}

// parseRSAPublicKey parses a PKCS#1 RSAPublicKey in strict DER. Because
// DER is canonical and the whole input must be consumed, the SHA-1 of der
// equals the digest Tor computes over its own re-encoding of the key.
func parseRSAPublicKey(der []byte) (rsaKey, string) {
	in := cryptobyte.String(der)
	var seq cryptobyte.String
	if !in.ReadASN1(&seq, asn1.SEQUENCE) || !in.Empty() {
		return rsaKey{}, "RSA key is not a single DER SEQUENCE"
	}
	n := new(big.Int)
	var e int64
	if !seq.ReadASN1Integer(n) || !seq.ReadASN1Integer(&e) || !seq.Empty() {
		return rsaKey{}, "RSA key is not a DER RSAPublicKey"
	}
	if n.Sign() <= 0 || n.BitLen() < minRSABits || n.BitLen() > maxRSABits {
		return rsaKey{}, "RSA modulus size out of range"
	}
	if e < 3 || e > 1<<31-1 || e%2 == 0 {
		return rsaKey{}, "bad RSA public exponent"
	}
	return rsaKey{pub: &rsa.PublicKey{N: n, E: int(e)}, digest: sha1.Sum(der)}, ""
}

// verifyRaw checks a Tor RSA signature: PKCS#1 v1.5 padding over the raw
// digest, without the DigestInfo prefix (dir-spec 1.3). Signatures
// shorter than the modulus (leading zero bytes dropped) are accepted.
func verifyRaw(pub *rsa.PublicKey, digest, sig []byte) bool {
	k := pub.Size()
	if len(sig) > k {
		return false
	}
	if len(sig) < k {
		padded := make([]byte, k)
		copy(padded[k-len(sig):], sig)
		sig = padded
	}
	return rsa.VerifyPKCS1v15(pub, 0, digest, sig) == nil
}

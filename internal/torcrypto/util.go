package torcrypto

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/binary"
	"io"
	"runtime"
)

// Rand returns r, or crypto/rand.Reader when r is nil.
func Rand(r io.Reader) io.Reader {
	if r == nil {
		return rand.Reader
	}
	return r
}

// Equal reports whether a and b are equal, in time that depends only on
// their lengths.
func Equal(a, b []byte) bool { return subtle.ConstantTimeCompare(a, b) == 1 }

// Zero overwrites b with zeros.
func Zero(b []byte) {
	clear(b)
	runtime.KeepAlive(b)
}

// Uint64n returns a uniform random number in [0, n) read from r.
func Uint64n(r io.Reader, n uint64) (uint64, error) {
	if n == 0 {
		panic("BUG: Uint64n(0)")
	}
	limit := ^uint64(0) - (^uint64(0) % n) // largest multiple of n
	var b [8]byte
	for {
		if _, err := io.ReadFull(Rand(r), b[:]); err != nil {
			return 0, err
		}
		v := binary.BigEndian.Uint64(b[:])
		if v < limit {
			return v % n, nil
		}
	}
}

// RandomBytes fills b from r.
func RandomBytes(r io.Reader, b []byte) error {
	_, err := io.ReadFull(Rand(r), b)
	return err
}

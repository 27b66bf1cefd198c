package pathsel

import "math/bits"

// Rand is the source of randomness. Uint64 must return independent,
// uniformly distributed values; the SDK uses a CSPRNG, tests a seeded
// generator. *math/rand/v2.Rand satisfies it.
type Rand interface {
	Uint64() uint64
}

// Uniform returns a uniformly distributed value in [0, n), without modulo
// bias (Lemire's multiply-and-reject method). n must not be 0.
func Uniform(r Rand, n uint64) uint64 {
	if n == 0 {
		panic("BUG: pathsel.Uniform(0)")
	}
	hi, lo := bits.Mul64(r.Uint64(), n)
	if lo < n {
		thresh := -n % n
		for lo < thresh {
			hi, lo = bits.Mul64(r.Uint64(), n)
		}
	}
	return hi
}

package faulttest

import (
	"bytes"
	"crypto/ecdh"
	"crypto/hmac"
	"crypto/sha256"
	"testing"

	"github.com/onionlite/onionlite/internal/torcrypto"
)

// These fuzz targets live here because internal/torcrypto is another
// engineer's to edit; they exercise its exported client side.

// fixedRand is a deterministic io.Reader: the same client secret every
// time, so that one genuine server reply can be computed for it.
type fixedRand struct{ b byte }

func (r *fixedRand) Read(p []byte) (int, error) {
	for i := range p {
		r.b = r.b*31 + 7
		p[i] = r.b
	}
	return len(p), nil
}

const ntorProto = "ntor-curve25519-sha256-1"

func ntorMAC(key string, parts ...[]byte) []byte {
	m := hmac.New(sha256.New, []byte(key))
	for _, p := range parts {
		m.Write(p)
	}
	return m.Sum(nil)
}

// ntorServerReply is the relay's side of ntor (tor-spec 5.1.4) for the
// client handshake hs (ID | B | X), with onion key b and ephemeral key y:
// Y | AUTH.
func ntorServerReply(t testing.TB, hs []byte, b, y *ecdh.PrivateKey) []byte {
	id, bPub, x := hs[:20], hs[20:52], hs[52:84]
	X, err := ecdh.X25519().NewPublicKey(x)
	if err != nil {
		t.Fatal(err)
	}
	xy, _ := y.ECDH(X)
	xb, _ := b.ECDH(X)
	Y := y.PublicKey().Bytes()
	secret := bytes.Join([][]byte{xy, xb, id, bPub, x, Y, []byte(ntorProto)}, nil)
	verify := ntorMAC(ntorProto+":verify", secret)
	auth := ntorMAC(ntorProto+":mac", verify, id, bPub, Y, x, []byte(ntorProto), []byte("Server"))
	return append(Y, auth...)
}

// FuzzNtorReply completes the client side of ntor with arbitrary relay
// replies. Nothing panics, and no reply but the genuine one (computed
// here as the relay would) completes the handshake: a relay without the
// onion key cannot forge AUTH. The genuine reply is the seed and a
// control that the harness can succeed.
func FuzzNtorReply(f *testing.F) {
	onion, _ := ecdh.X25519().NewPrivateKey(bytes.Repeat([]byte{9}, 32))
	eph, _ := ecdh.X25519().NewPrivateKey(bytes.Repeat([]byte{5}, 32))
	var id [20]byte
	copy(id[:], "relay identity 20 b.")
	var key [32]byte
	copy(key[:], onion.PublicKey().Bytes())
	client := func() *torcrypto.NtorClient {
		c, err := torcrypto.NewNtorClient(&fixedRand{}, id, key)
		if err != nil {
			f.Fatal(err)
		}
		return c
	}
	genuine := ntorServerReply(f, client().Handshake(), onion, eph)
	if _, err := client().Complete(genuine); err != nil {
		f.Fatalf("the genuine reply does not complete: %v", err)
	}
	f.Add(genuine)
	f.Add(genuine[:32])
	f.Add(make([]byte, 64))
	f.Fuzz(func(t *testing.T, reply []byte) {
		keys, err := client().Complete(reply)
		if err == nil && (len(reply) < 64 || !bytes.Equal(reply[:64], genuine)) {
			t.Fatalf("forged reply %x completed the handshake", reply)
		}
		if err == nil && keys == nil {
			t.Fatal("no keys and no error")
		}
	})
}

// FuzzNtorV3Reply does the same for ntor-v3 without a genuine reply (no
// relay side here): whatever a relay sends, nothing panics and nothing
// completes. It also parses the bytes as the extension list an ntor-v3
// reply carries: a list that parses re-encodes to the same bytes.
func FuzzNtorV3Reply(f *testing.F) {
	ext, _ := torcrypto.AppendExtensions(nil, []torcrypto.Extension{{Type: torcrypto.ExtCCResponse, Data: []byte{31}}})
	f.Add(make([]byte, 64), ext)
	f.Add(append(make([]byte, 64), 1, 2, 3), []byte{2, 1, 0, 2, 1, 31})
	f.Add([]byte{}, []byte{})
	var id, key [32]byte
	copy(id[:], "an ed25519 identity, 32 bytes..")
	onion, _ := ecdh.X25519().NewPrivateKey(bytes.Repeat([]byte{9}, 32))
	copy(key[:], onion.PublicKey().Bytes())
	f.Fuzz(func(t *testing.T, reply, exts []byte) {
		c, err := torcrypto.NewNtorV3Client(&fixedRand{}, id, key, ext, "circuit extend")
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := c.Complete(reply); err == nil {
			t.Fatalf("reply %x completed an ntor-v3 handshake without the onion key", reply)
		}
		list, err := torcrypto.ParseExtensions(exts)
		if err != nil {
			return
		}
		again, err := torcrypto.AppendExtensions(nil, list)
		if len(exts) == 0 {
			return
		}
		if err != nil || !bytes.Equal(again, exts) {
			t.Fatalf("extensions %x re-encode to %x (%v)", exts, again, err)
		}
	})
}

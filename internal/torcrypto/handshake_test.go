package torcrypto

import (
	"bytes"
	"crypto/ecdh"
	"crypto/hmac"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"strings"
	"testing"
)

func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// seqReader yields its chunks in order, then fails.
type seqReader struct{ chunks [][]byte }

func (r *seqReader) Read(p []byte) (int, error) {
	if len(r.chunks) == 0 {
		return 0, io.ErrUnexpectedEOF
	}
	n := copy(p, r.chunks[0])
	r.chunks[0] = r.chunks[0][n:]
	if len(r.chunks[0]) == 0 {
		r.chunks = r.chunks[1:]
	}
	return n, nil
}

// Tor's own KDF vectors (test_crypto.c, test_crypto_kdf_TAP).
func TestKDFTor(t *testing.T) {
	for in, want := range map[string]string{
		"": "5ba93c9db0cff93f52b521d7420e43f6eda2784fbf8b4530d8d246dd74ac53a13471bba17941dff7c4ea21bb365bbeeaf5f2" +
			"c654883e56d11e43c44e9842926af7ca0a8cca12604f945414f07b01e13da42c6cf1de3abfdea9b95f34687cbbe92b9a7383",
		"Tor": "776c6214fc647aaa5f683c737ee66ec44f03d0372e1cce69227950f236ddf1e329a7ce7c227903303f525a8c6662426e8034" +
			"870642a6dabbd41b5d97ec9bf2312ea729992f48f8ea2d0ba83f45dfda1a80bdc8b80de01b23e3e0ffae099b3e4ccf28dc28",
	} {
		got, err := KDFTor([]byte(in), 100)
		if err != nil || hex.EncodeToString(got) != want {
			t.Errorf("KDFTor(%q) = %x, %v", in, got, err)
		}
	}
	if _, err := KDFTor(nil, 256*20+1); err == nil {
		t.Error("overlong KDF-TOR accepted")
	}
}

// Tor's own HKDF vectors (test_crypto.c, test_crypto_hkdf_sha256): the
// ntor salt and info, extract then expand.
func TestKDFRFC5869(t *testing.T) {
	for in, want := range map[string]string{
		"": "d3490ed48b12a48f9547861583573fe3f19aafe3f81dc7fc75eeed96d741b3290f941576c1f9f0b2d463d1ec7ab2c6bf71cd" +
			"d7f826c6298c00dbfe6711635d7005f0269493edf6046cc7e7dcf6abe0d20c77cf363e8ffe358927817a3d3e73712cee28d8",
		"Tor": "5521492a85139a8d9107a2d5c0d9c91610d0f95989975ebee6c02a4f8d622a6cfdf9b7c7edd3832e2760ded1eac309b76f8d" +
			"66c4a3c4d6225429b3a016e3c3d45911152fc87bc2de9630c3961be9fdb9f93197ea8e5977180801926d3321fa21513e59ac",
	} {
		seed := ntorHMAC(ntorTKey, []byte(in))
		got, err := KDFRFC5869(seed, ntorMExpand, 100)
		if err != nil || hex.EncodeToString(got) != want {
			t.Errorf("KDF-RFC5869(%q) = %x, %v", in, got, err)
		}
	}
}

// TestNtorV3Vectors replays prop 332 section X.2.
func TestNtorV3Vectors(t *testing.T) {
	var id, b [32]byte
	copy(id[:], unhex(t, "9fad2af287ef942632833d21f946c6260c33fae6172b60006e86e4a6911753a2"))
	copy(b[:], unhex(t, "f8307a2bc1870b00b828bb74dbb8fd88e632a6375ab3bcd1ae706aaa8b6cdd1d"))
	x := unhex(t, "b825a3719147bcbe5fb1d0b0fcb9c09e51948048e2e3283d2ab7b45b5ef38b49")
	cm := unhex(t, "68656c6c6f20776f726c64")
	ver := string(unhex(t, "78797a7a79"))

	c, err := NewNtorV3Client(&seqReader{chunks: [][]byte{x}}, id, b, cm, ver)
	if err != nil {
		t.Fatal(err)
	}
	if got := hex.EncodeToString(c.pub[:]); got != "252fe9ae91264c91d4ecb8501f79d0387e34ad8ca0f7c995184f7d11d5da4f46" {
		t.Fatalf("X = %s", got)
	}
	wantClient := "9fad2af287ef942632833d21f946c6260c33fae6172b60006e86e4a6911753a2f8307a2bc1870b00b828bb74dbb8fd88e632a6375ab3bcd1ae706aaa8b6cdd1d252fe9ae91264c91d4ecb8501f79d0387e34ad8ca0f7c995184f7d11d5da4f463bebd9151fd3b47c180abc9e044d53565f04d82bbb3bebed3d06cea65db8be9c72b68cd461942088502f67"
	if got := hex.EncodeToString(c.Handshake()); got != wantClient {
		t.Fatalf("client handshake\n got %s\nwant %s", got, wantClient)
	}
	server := unhex(t, "4bf4814326fdab45ad5184f5518bd7fae25dc59374062698201a50a22954246d2fc5f8773ca824542bc6cf6f57c7c29bbf4e5476461ab130c5b18ab0a91276651202c3e1e87c0d32054c")
	sm, ks, err := c.complete(server)
	if err != nil {
		t.Fatal(err)
	}
	if string(sm) != "Hola Mundo" {
		t.Fatalf("server message %q", sm)
	}
	var stream [256]byte
	ks.Read(stream[:])
	want := "9c19b631fd94ed86a817e01f6c80b0743a43f5faebd39cfaa8b00fa8bcc65c3bfeaa403d91acbd68a821bf6ee8504602b094a254392a07737d5662768c7a9fb1b2814bb34780eaee6e867c773e28c212ead563e98a1cd5d5b4576f5ee61c59bde025ff2851bb19b721421694f263818e3531e43a9e4e3e2c661e2ad547d8984caa28ebecd3e4525452299be26b9185a20a90ce1eac20a91f2832d731b54502b09749b5a2a2949292f8cfcbeffb790c7790ed935a9d251e7e336148ea83b063a5618fcff674a44581585fd22077ca0e52c59a24347a38d1a1ceebddbf238541f226b8f88d0fb9c07a1bcd2ea764bbbb5dacdaf5312a14c0b9e4f06309b0333b4a"
	if got := hex.EncodeToString(stream[:]); got != want {
		t.Fatalf("keystream\n got %s\nwant %s", got, want)
	}
	// Complete splits the same keystream into Df, Db, Kf, Kb, KH.
	c2, _ := NewNtorV3Client(&seqReader{chunks: [][]byte{x}}, id, b, cm, ver)
	_, keys, err := c2.Complete(server)
	if err != nil {
		t.Fatal(err)
	}
	var flat []byte
	flat = append(flat, keys.Df[:]...)
	flat = append(flat, keys.Db[:]...)
	flat = append(flat, keys.Kf[:]...)
	flat = append(flat, keys.Kb[:]...)
	flat = append(flat, keys.KH[:]...)
	if !bytes.Equal(flat, stream[:RelayKeyMaterialLen]) {
		t.Fatal("RelayKeys do not follow the keystream")
	}
	if c2.x != [32]byte{} {
		t.Fatal("secret not wiped")
	}

	// Any change to the reply fails authentication.
	for _, i := range []int{0, 40, len(server) - 1} {
		bad := bytes.Clone(server)
		bad[i] ^= 1
		c3, _ := NewNtorV3Client(&seqReader{chunks: [][]byte{x}}, id, b, cm, ver)
		if _, _, err := c3.Complete(bad); !errors.Is(err, ErrHandshake) {
			t.Errorf("flipped byte %d: %v", i, err)
		}
	}
	c4, _ := NewNtorV3Client(&seqReader{chunks: [][]byte{x}}, id, b, cm, ver)
	if _, _, err := c4.Complete(server[:63]); !errors.Is(err, ErrHandshake) {
		t.Errorf("short reply: %v", err)
	}
}

func TestExtensions(t *testing.T) {
	exts := []Extension{{Type: ExtCCRequest}, {Type: 9, Data: []byte{1, 2}}}
	b, err := AppendExtensions(nil, exts)
	if err != nil || hex.EncodeToString(b) != "02"+"0100"+"09020102" {
		t.Fatalf("%x %v", b, err)
	}
	got, err := ParseExtensions(b)
	if err != nil || len(got) != 2 || got[1].Type != 9 || !bytes.Equal(got[1].Data, []byte{1, 2}) {
		t.Fatal(got, err)
	}
	if e, ok := FindExtension(append(got, Extension{Type: 9}), 9); !ok || len(e.Data) != 2 {
		t.Fatal("FindExtension must return the first")
	}
	for _, bad := range []string{"01", "0109", "010905aa", "0000"} {
		if _, err := ParseExtensions(unhex(t, bad)); err == nil {
			t.Errorf("%s accepted", bad)
		}
	}
	if e, err := ParseExtensions(nil); err != nil || e != nil {
		t.Fatal("empty message")
	}
}

// ntorServer is the relay side of ntor (tor-spec 5.1.4), written from the
// spec for testing the client.
func ntorServer(t *testing.T, b *ecdh.PrivateKey, id [20]byte, hs []byte, yRand []byte) ([]byte, []byte) {
	t.Helper()
	if len(hs) != NtorClientLen || !bytes.Equal(hs[:20], id[:]) || !bytes.Equal(hs[20:52], b.PublicKey().Bytes()) {
		t.Fatal("client handshake does not name the server")
	}
	X, _ := ecdh.X25519().NewPublicKey(hs[52:])
	y, _ := ecdh.X25519().NewPrivateKey(yRand)
	Y := y.PublicKey().Bytes()
	xy, err := y.ECDH(X)
	if err != nil {
		t.Fatal(err)
	}
	xb, _ := b.ECDH(X)
	var secret []byte
	for _, p := range [][]byte{xy, xb, id[:], b.PublicKey().Bytes(), hs[52:], Y, []byte(ntorProtoID)} {
		secret = append(secret, p...)
	}
	mac := func(key string, msg []byte) []byte {
		m := hmac.New(sha256.New, []byte(key))
		m.Write(msg)
		return m.Sum(nil)
	}
	seed := mac(ntorTKey, secret)
	verify := mac(ntorTVerify, secret)
	var authIn []byte
	for _, p := range [][]byte{verify, id[:], b.PublicKey().Bytes(), Y, hs[52:], []byte(ntorProtoID), []byte("Server")} {
		authIn = append(authIn, p...)
	}
	keys, _ := KDFRFC5869(seed, ntorMExpand, RelayKeyMaterialLen)
	return append(Y, mac(ntorTMac, authIn)...), keys
}

func TestNtorAgainstSpecServer(t *testing.T) {
	bPriv, _ := ecdh.X25519().NewPrivateKey(bytes.Repeat([]byte{0x42}, 32))
	var onion [32]byte
	copy(onion[:], bPriv.PublicKey().Bytes())
	id := sha1.Sum([]byte("relay identity"))

	c, err := NewNtorClient(&seqReader{chunks: [][]byte{bytes.Repeat([]byte{7}, 32)}}, id, onion)
	if err != nil {
		t.Fatal(err)
	}
	hs := c.Handshake()
	reply, serverKeys := ntorServer(t, bPriv, id, hs, bytes.Repeat([]byte{9}, 32))
	keys, err := c.Complete(reply)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(keys.Df[:], serverKeys[:20]) || !bytes.Equal(keys.Db[:], serverKeys[20:40]) ||
		!bytes.Equal(keys.Kf[:], serverKeys[40:56]) || !bytes.Equal(keys.Kb[:], serverKeys[56:72]) ||
		!bytes.Equal(keys.KH[:], serverKeys[72:92]) {
		t.Fatal("client and server keys differ")
	}

	// A tampered AUTH, a low-order Y and a short reply are all rejected.
	fresh := func() *NtorClient {
		c, _ := NewNtorClient(&seqReader{chunks: [][]byte{bytes.Repeat([]byte{7}, 32)}}, id, onion)
		return c
	}
	bad := bytes.Clone(reply)
	bad[63] ^= 0x80
	if _, err := fresh().Complete(bad); !errors.Is(err, ErrHandshake) {
		t.Errorf("tampered AUTH: %v", err)
	}
	zeroY := append(make([]byte, 32), reply[32:]...)
	if _, err := fresh().Complete(zeroY); !errors.Is(err, ErrHandshake) {
		t.Errorf("low-order Y: %v", err)
	}
	if _, err := fresh().Complete(reply[:40]); !errors.Is(err, ErrHandshake) {
		t.Errorf("short reply: %v", err)
	}
	// The client uses the injected reader for its key.
	if _, err := NewNtorClient(&seqReader{}, id, onion); err == nil {
		t.Error("failing reader not reported")
	}
}

func TestCreateFast(t *testing.T) {
	x := bytes.Repeat([]byte{1}, 20)
	c, err := NewFastClient(&seqReader{chunks: [][]byte{bytes.Clone(x)}})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(c.Handshake(), x) {
		t.Fatal("CREATE_FAST payload is not X")
	}
	// Relay side (tor-spec 5.1.5): Y random, reply Y | KH, keys from
	// KDF-TOR(X | Y) = KH | Df | Db | Kf | Kb.
	y := bytes.Repeat([]byte{2}, 20)
	k, _ := KDFTor(append(bytes.Clone(x), y...), RelayKeyMaterialLen)
	reply := append(bytes.Clone(y), k[:20]...)
	keys, err := c.Complete(reply)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(keys.KH[:], k[:20]) || !bytes.Equal(keys.Df[:], k[20:40]) || !bytes.Equal(keys.Db[:], k[40:60]) ||
		!bytes.Equal(keys.Kf[:], k[60:76]) || !bytes.Equal(keys.Kb[:], k[76:92]) {
		t.Fatal("keys differ from KDF-TOR layout")
	}
	c2, _ := NewFastClient(&seqReader{chunks: [][]byte{bytes.Clone(x)}})
	reply[39] ^= 1
	if _, err := c2.Complete(reply); !errors.Is(err, ErrHandshake) {
		t.Fatalf("bad KH: %v", err)
	}
}

func TestUint64n(t *testing.T) {
	r := &seqReader{chunks: [][]byte{bytes.Repeat([]byte{0xff}, 8), {0, 0, 0, 0, 0, 0, 0, 10}}}
	// The all-ones draw is above the largest multiple of 7 and is redrawn.
	v, err := Uint64n(r, 7)
	if err != nil || v != 3 {
		t.Fatal(v, err)
	}
}

func BenchmarkNtorHandshake(b *testing.B) {
	bPriv, _ := ecdh.X25519().NewPrivateKey(bytes.Repeat([]byte{0x42}, 32))
	var onion [32]byte
	copy(onion[:], bPriv.PublicKey().Bytes())
	id := sha1.Sum([]byte("relay"))
	t := &testing.T{}
	b.ReportAllocs()
	for b.Loop() {
		c, _ := NewNtorClient(nil, id, onion)
		reply, _ := ntorServer(t, bPriv, id, c.Handshake(), bytes.Repeat([]byte{9}, 32))
		if _, err := c.Complete(reply); err != nil {
			b.Fatal(err)
		}
	}
}

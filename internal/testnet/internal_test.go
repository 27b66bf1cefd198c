package testnet

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// streamBody is the body definition written out independently of
// bodyContent: SHA-256(seed || name || counter) blocks, concatenated.
func streamBody(name string, size int64) []byte {
	var out []byte
	for ctr := uint64(0); int64(len(out)) < size; ctr++ {
		in := append([]byte(bodySeed+name), binary.BigEndian.AppendUint64(nil, ctr)...)
		s := sha256.Sum256(in)
		out = append(out, s[:]...)
	}
	return out[:size]
}

func TestBodies(t *testing.T) {
	bs := bodies()
	want := map[string]int64{"hello.txt": int64(len(helloText)), "64KiB.bin": 65536, "1MiB.bin": 1 << 20, "10MiB.bin": 10 << 20}
	if len(bs) != len(want) {
		t.Fatalf("%d bodies, want %d", len(bs), len(want))
	}
	for _, b := range bs {
		if want[b.Name] != b.Size {
			t.Errorf("%s: size %d, want %d", b.Name, b.Size, want[b.Name])
		}
		var ref []byte
		if b.Name == "hello.txt" {
			ref = []byte(helloText)
		} else {
			ref = streamBody(b.Name, b.Size)
		}
		if s := sha256.Sum256(ref); hex.EncodeToString(s[:]) != b.SHA256 {
			t.Errorf("%s: SHA256 %s does not match the body definition", b.Name, b.SHA256)
		}
		// Random ReadAt windows agree with the definition.
		bc := &bodyContent{name: b.Name, size: b.Size}
		r := rand.New(rand.NewPCG(1, 2))
		for range 50 {
			off := r.Int64N(b.Size)
			n := r.IntN(5000) + 1
			buf := make([]byte, n)
			k, err := bc.ReadAt(buf, off)
			end := min(off+int64(n), b.Size)
			if int64(k) != end-off || (err != nil && err != io.EOF) || (end == b.Size) != (err == io.EOF) {
				t.Fatalf("%s: ReadAt(%d bytes at %d) = %d, %v", b.Name, n, off, k, err)
			}
			if !bytes.Equal(buf[:k], ref[off:end]) {
				t.Fatalf("%s: ReadAt at %d differs from the definition", b.Name, off)
			}
		}
		if _, err := bc.ReadAt(make([]byte, 1), b.Size); err != io.EOF {
			t.Errorf("%s: ReadAt at the end: %v, want EOF", b.Name, err)
		}
		if _, err := bc.ReadAt(make([]byte, 1), -1); err == nil {
			t.Errorf("%s: ReadAt at -1 accepted", b.Name)
		}
	}
}

func TestTargetHandler(t *testing.T) {
	srv := httptest.NewServer(targetHandler())
	defer srv.Close()
	get := func(path string, hdr ...string) (*http.Response, []byte) {
		req, _ := http.NewRequest(http.MethodGet, srv.URL+path, nil)
		for i := 0; i+1 < len(hdr); i += 2 {
			req.Header.Set(hdr[i], hdr[i+1])
		}
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, b
	}
	resp, b := get("/64KiB.bin")
	if resp.StatusCode != 200 || !bytes.Equal(b, streamBody("64KiB.bin", 65536)) {
		t.Errorf("/64KiB.bin: %s, %d bytes", resp.Status, len(b))
	}
	resp, b = get("/1MiB.bin", "Range", "bytes=100-199")
	if resp.StatusCode != 206 || !bytes.Equal(b, streamBody("1MiB.bin", 200)[100:]) {
		t.Errorf("range request: %s, %d bytes", resp.Status, len(b))
	}
	if resp, _ := get("/nope"); resp.StatusCode != 404 {
		t.Errorf("/nope: %s", resp.Status)
	}
	if resp, b := get("/hello.txt"); string(b) != helloText || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain") {
		t.Errorf("/hello.txt: %q %s", b, resp.Header.Get("Content-Type"))
	}
	if _, b := get("/"); strings.Count(string(b), "\n") != 4 {
		t.Errorf("index: %q", b)
	}
}

func TestVotingConfig(t *testing.T) {
	for _, bad := range []time.Duration{0, 5 * time.Second, 7 * time.Second, 1500*time.Millisecond + 10*time.Second, 11 * time.Second, 7 * time.Minute} {
		if checkInterval(bad) == nil {
			t.Errorf("interval %v accepted", bad)
		}
	}
	for _, s := range []int{10, 12, 15, 20, 30, 45, 60, 120, 300, 3600} {
		d := time.Duration(s) * time.Second
		if err := checkInterval(d); err != nil {
			t.Errorf("interval %v: %v", d, err)
		}
		vote, dist, initial, iv, id := voteTimes(d)
		if 2*(vote+dist) >= s || 2*(iv+id) >= initial || initial > s || vote < 2 || dist < 2 {
			t.Errorf("interval %ds: vote %d dist %d initial %d/%d/%d break tor's rules", s, vote, dist, initial, iv, id)
		}
	}
	cfg, err := Config{}.withDefaults()
	if err != nil || cfg.Auths != 3 || cfg.Relays != 4 || cfg.Exits != 3 || cfg.Interval != time.Minute {
		t.Errorf("defaults: %+v, %v", cfg, err)
	}
	for _, c := range []Config{{Auths: -1}, {Auths: 10}, {Exits: -1}, {Relays: -2}, {Relays: 100}, {Interval: 9 * time.Second}} {
		if _, err := c.withDefaults(); err == nil {
			t.Errorf("%+v accepted", c)
		}
	}
}

// TestTorrcsVerify has C tor check every generated configuration, for
// several voting intervals.
func TestTorrcsVerify(t *testing.T) {
	RequireTor(t)
	tor, _, _ := findTor("")
	dir := t.TempDir()
	auth := Node{Nick: "auth0", Role: Authority, ORPort: 30001, DirPort: 30002,
		V3Ident: strings.Repeat("AB", 20), Fingerprint: strings.Repeat("CD", 20)}
	auths := []string{authorityLine(&auth)}
	verify := func(name, rc string) {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(rc), 0o600); err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command(tor, "--verify-config", "-f", p, "--defaults-torrc", os.DevNull).CombinedOutput()
		if err != nil || !bytes.Contains(out, []byte("Configuration was valid")) {
			t.Errorf("%s: tor --verify-config: %v\n%s", name, err, out)
		}
	}
	for _, ivl := range []int{10, 20, 30, 60} {
		for _, role := range []Role{Authority, Middle, Exit} {
			nd := auth
			nd.Role = role
			nd.DataDir = filepath.Join(dir, "n")
			rc := nodeTorrc(&nd, dir, dir, ivl, 9, auths)
			for _, must := range []string{"OutboundBindAddress 127.0.0.1\n", "AddressDisableIPv6 1\n", "ServerDNSResolvConfFile " + dir + "/resolv.conf\n", "UseDefaultFallbackDirs 0\n", "GeoIPFile \"\"\n", "GeoIPv6File \"\"\n"} {
				if !strings.Contains(rc, must) {
					t.Errorf("%v torrc lacks %q", role, must)
				}
			}
			if role == Exit && (!strings.Contains(rc, "OutboundBindAddressExit 127.0.0.1\n") || !strings.Contains(rc, "ExitPolicy accept *:*\n") || !strings.Contains(rc, "ServerDNSDetectHijacking 0\n")) {
				t.Errorf("exit torrc:\n%s", rc)
			}
			if strings.Contains(rc, "TestingDirAuthVoteExit") {
				t.Errorf("torrc sets TestingDirAuthVoteExit (every relay would get Exit)")
			}
			verify(role.String()+".torrc", rc)
		}
	}
	crc := clientTorrc(filepath.Join(dir, "c"), auths, "127.0.0.1:1080", []string{"CircuitBuildTimeout 30"})
	for _, must := range []string{"GeoIPFile \"\"\n", "GeoIPv6File \"\"\n"} {
		if !strings.Contains(crc, must) {
			t.Errorf("client torrc lacks %q", must)
		}
	}
	verify("client.torrc", crc)
}

const sampleConsensus = `network-status-version 3 microdesc
vote-status consensus
valid-after 2026-01-02 03:04:00
fresh-until 2026-01-02 03:05:00
valid-until 2026-01-02 03:07:00
r auth0 AAAA 2038-01-01 00:00:00 127.0.0.1 5000 5100
m aGVsbG8
s Authority Running Valid V2Dir
r exit1 BBBB 2038-01-01 00:00:00 127.0.0.1 5001 0
m d29ybGQ
s Exit Fast Running Valid
directory-footer
bandwidth-weights Wbd=0
directory-signature AAAA BBBB
`

func TestParseConsensus(t *testing.T) {
	c, err := parseConsensus([]byte(sampleConsensus))
	if err != nil {
		t.Fatal(err)
	}
	if len(c.routers) != 2 || c.routers[1].nick != "exit1" || !c.routers[1].has("Exit") || c.routers[0].has("Exit") || c.routers[1].md != "d29ybGQ" {
		t.Fatalf("routers %+v", c.routers)
	}
	va := time.Date(2026, 1, 2, 3, 4, 0, 0, time.UTC)
	if !c.validAfter.Equal(va) || !c.validUntil.Equal(va.Add(3*time.Minute)) {
		t.Errorf("times %v %v", c.validAfter, c.validUntil)
	}
	if !c.live(va.Add(time.Minute)) || c.live(va.Add(3*time.Minute)) || c.live(va.Add(-2*time.Minute)) {
		t.Error("live() wrong around the validity window")
	}
	for _, bad := range []string{"", "r x\n", "valid-after 2026-01-02\nvalid-until 2026-01-02 03:07:00\n", "valid-after nonsense here\n"} {
		if _, err := parseConsensus([]byte(bad)); err == nil {
			t.Errorf("parseConsensus(%q) accepted", bad)
		}
	}
}

func TestSplitMicrodescs(t *testing.T) {
	md1 := "onion-key\n-----BEGIN RSA PUBLIC KEY-----\nAAAA\n-----END RSA PUBLIC KEY-----\nntor-onion-key xyz\nid ed25519 abc\n"
	md2 := "onion-key\nKEY2\nntor-onion-key qrs\np accept 1-65535\n"
	got := splitMicrodescs([]byte(md1 + md2))
	for _, md := range []string{md1, md2} {
		s := sha256.Sum256([]byte(md))
		if !got[base64.RawStdEncoding.EncodeToString(s[:])] {
			t.Errorf("digest of %q missing", md[:20])
		}
	}
	if len(got) != 2 {
		t.Errorf("%d pieces, want 2 (ntor-onion-key must not split)", len(got))
	}
}

func TestSmallParsers(t *testing.T) {
	if p, s, ok := parseBootstrap(`NOTICE BOOTSTRAP PROGRESS=75 TAG=enough_dirinfo SUMMARY="Loaded enough directory info to build circuits"`); !ok || p != 75 || s != "Loaded enough directory info to build circuits" {
		t.Errorf("parseBootstrap: %d %q %v", p, s, ok)
	}
	for _, bad := range []string{"NOTICE CIRCUIT_ESTABLISHED", "NOTICE BOOTSTRAP PROGRESS=x", "NOTICE BOOTSTRAP PROGRESS=101"} {
		if _, _, ok := parseBootstrap(bad); ok {
			t.Errorf("parseBootstrap(%q) accepted", bad)
		}
	}
	if n, err := parseVmHWM([]byte("Name:\ttor\nVmHWM:\t   13260 kB\nVmRSS:\t 1 kB\n")); err != nil || n != 13260*1024 {
		t.Errorf("parseVmHWM = %d, %v", n, err)
	}
	if _, err := parseVmHWM([]byte("Name: tor\n")); err == nil {
		t.Error("parseVmHWM without VmHWM accepted")
	}
	dir := t.TempDir()
	pf := filepath.Join(dir, "control_port")
	for content, want := range map[string]int{"PORT=127.0.0.1:9051\n": 9051, "PORT=127.0.0.1:0\n": -1, "PORT=junk\n": -1, "": -1} {
		os.WriteFile(pf, []byte(content), 0o600)
		got, err := readPortFile(pf)
		if (want < 0) != (err != nil) || (want > 0 && got != want) {
			t.Errorf("readPortFile(%q) = %d, %v", content, got, err)
		}
	}
	kd := filepath.Join(dir, "keys")
	os.MkdirAll(kd, 0o700)
	key := make([]byte, 64)
	copy(key, ed25519PubHeader)
	for i := 32; i < 64; i++ {
		key[i] = byte(i)
	}
	os.WriteFile(filepath.Join(kd, "ed25519_master_id_public_key"), key, 0o600)
	if id, err := readEd25519ID(dir); err != nil || id[0] != 32 || id[31] != 63 {
		t.Errorf("readEd25519ID = %x, %v", id, err)
	}
	key[0] = 'X'
	os.WriteFile(filepath.Join(kd, "ed25519_master_id_public_key"), key, 0o600)
	if _, err := readEd25519ID(dir); err == nil {
		t.Error("readEd25519ID accepted a bad header")
	}
	if checkPath("/tmp/a b") == nil || checkPath(`/tmp/a"b`) == nil || checkPath("/tmp/ok-dir_1") != nil {
		t.Error("checkPath")
	}
}

func TestParseGoroutine(t *testing.T) {
	g, ok := parseGoroutine("goroutine 42 [chan receive]:\nmain.f()\n\t/x.go:1\ncreated by main.g in goroutine 7\n\t/x.go:2 +0x1")
	if !ok || g.id != 42 || g.creator != 7 {
		t.Errorf("parseGoroutine = %+v, %v", g, ok)
	}
	if _, ok := parseGoroutine("not a stack"); ok {
		t.Error("parseGoroutine accepted junk")
	}
}

// A leaked goroutine is reported; one that ends is not.
func TestCheckGoroutinesCatchesLeak(t *testing.T) {
	defer func(w time.Duration) { leakWait = w }(leakWait)
	leakWait = 500 * time.Millisecond
	stop := make(chan struct{})
	ft := &fakeTB{TB: t}
	check := CheckGoroutines(ft)
	go func() { <-stop }()
	check()
	close(stop)
	if !ft.failed {
		t.Fatal("CheckGoroutines missed a leaked goroutine")
	}
	ft2 := &fakeTB{TB: t}
	check = CheckGoroutines(ft2)
	done := make(chan struct{})
	go func() { time.Sleep(100 * time.Millisecond); close(done) }()
	check()
	<-done
	if ft2.failed {
		t.Fatal("CheckGoroutines reported a goroutine that ended")
	}
}

type fakeTB struct {
	testing.TB
	failed bool
}

func (f *fakeTB) Helper()                           {}
func (f *fakeTB) Errorf(format string, args ...any) { f.failed = true }

func TestPickPorts(t *testing.T) {
	ps, err := pickPorts(50)
	if err != nil {
		t.Fatal(err)
	}
	defer releasePorts(ps)
	seen := map[int]bool{}
	hi := ephemeralLow()
	for _, p := range ps {
		if seen[p] || p < portFloor || p >= hi {
			t.Errorf("port %d repeated or outside [%d, %d)", p, portFloor, hi)
		}
		seen[p] = true
	}
}

func TestDownWithoutNetwork(t *testing.T) {
	if _, err := Down(t.TempDir()); err == nil {
		t.Error("Down of an empty directory succeeded")
	}
	if _, err := ReadStatus(context.Background(), t.TempDir()); err == nil {
		t.Error("ReadStatus of an empty directory succeeded")
	}
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, StateFile), []byte(`{"version":1,"nodes":[{"nick":"x","role":"wizard"}]}`), 0o600)
	if _, err := Attach(dir); err == nil {
		t.Error("Attach accepted a bad role")
	}
	os.WriteFile(filepath.Join(dir, StateFile), []byte(`{"version":1,"nodes":[{"nick":"x","role":"exit","fingerprint":"00","ed25519_id":""}]}`), 0o600)
	if _, err := Attach(dir); err == nil {
		t.Error("Attach accepted a bad fingerprint")
	}
}

// Start refuses a directory whose nodes/ it did not make, and keeps it.
func TestStartRefusesForeignNodesDir(t *testing.T) {
	RequireTor(t)
	dir := t.TempDir()
	mine := filepath.Join(dir, "nodes", "precious")
	if err := os.MkdirAll(mine, 0o700); err != nil {
		t.Fatal(err)
	}
	_, err := Start(context.Background(), Config{Dir: dir})
	if err == nil || !strings.Contains(err.Error(), "not made by a test network") {
		t.Fatalf("Start: %v", err)
	}
	if _, err := os.Stat(mine); err != nil {
		t.Fatalf("Start touched a foreign directory: %v", err)
	}
}

package onionlite

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/onionlite/onionlite/internal/testnet"
	"github.com/onionlite/onionlite/sdk"
	"github.com/onionlite/onionlite/transport"
)

func TestMain(m *testing.M) { testnet.Main(m, testnet.Config{}) }

func TestErrorKind(t *testing.T) {
	for msg, want := range map[string]string{
		"":                               "",
		"[timeout] dial: too slow":       KindTimeout,
		"[eof] read: end of stream":      KindEOF,
		"[exit_refused] x":               KindExitRefused,
		"[nonsense] x":                   KindInternal,
		"[timeout]x":                     KindInternal,
		"timeout: x":                     KindInternal,
		"java.lang.Exception: [timeout]": KindInternal,
	} {
		if got := ErrorKind(msg); got != want {
			t.Errorf("ErrorKind(%q) = %q, want %q", msg, got, want)
		}
	}
}

func TestWrapGivesKinds(t *testing.T) {
	cases := []struct {
		err  error
		want string
	}{
		{&sdk.Error{Kind: sdk.KindTimeout, Op: "dial"}, KindTimeout},
		{fmt.Errorf("get: %w", &sdk.Error{Kind: sdk.KindExitRefused, Op: "dial"}), KindExitRefused},
		{&sdk.Error{Kind: sdk.KindClockSkew}, KindClockSkew},
		{&sdk.Error{Kind: sdk.KindBadAddress}, KindBadAddress},
		{&sdk.Error{Kind: sdk.KindMemory}, KindMemory},
		{&sdk.Error{Kind: sdk.Kind(999)}, KindInternal},
		{context.DeadlineExceeded, KindTimeout},
		{os.ErrDeadlineExceeded, KindTimeout},
		{context.Canceled, KindClosed},
		{errors.New("something"), KindInternal},
		{errorf(KindHTTP, "status 404"), KindHTTP},
	}
	for _, c := range cases {
		got := wrap(c.err)
		if k := ErrorKind(got.Error()); k != c.want {
			t.Errorf("wrap(%v) = %q: kind %q, want %q", c.err, got, k, c.want)
		}
		if !errors.Is(got, c.err) {
			t.Errorf("wrap(%v) lost the error chain", c.err)
		}
	}
	if wrap(nil) != nil {
		t.Error("wrap(nil) != nil")
	}
	// Every kind the package documents is known to ErrorKind.
	for _, k := range []string{KindInternal, KindConfig, KindClosed, KindBootstrapRequired, KindBootstrapFailed,
		KindDirectoryExpired, KindClockSkew, KindNoPath, KindExitRefused, KindTimeout, KindNetwork, KindMemory,
		KindStorage, KindBadAddress, KindIO, KindHTTP, KindEOF} {
		if got := ErrorKind(errorf(k, "x").Error()); got != k {
			t.Errorf("kind %q comes back as %q", k, got)
		}
	}
}

func TestRecoverTo(t *testing.T) {
	f := func() (err error) {
		defer recoverTo(&err)
		var s *Stream
		_ = s.conn // nil pointer dereference
		return nil
	}
	if err := f(); ErrorKind(fmt.Sprint(err)) != KindInternal || !strings.Contains(err.Error(), "panic") {
		t.Fatalf("panic became %v", err)
	}
}

func TestConfigCheck(t *testing.T) {
	bad := map[string]*Config{
		"nil":            nil,
		"no data dir":    {},
		"blank data dir": {DataDir: "  "},
		"http proxy":     {DataDir: "d", Proxy: "http://127.0.0.1:8080"},
		"proxy no port":  {DataDir: "d", Proxy: "socks5://127.0.0.1"},
		"proxy path":     {DataDir: "d", Proxy: "socks5://127.0.0.1:1080/x"},
		"only comments":  {DataDir: "d", Authorities: "# nothing\n\n"},
		"log level":      {DataDir: "d", LogLevel: 9},
		"dial timeout":   {DataDir: "d", DialTimeoutMillis: -1},
		"memory":         {DataDir: "d", MemoryBudget: -1},
	}
	for name, cfg := range bad {
		if _, err := cfg.check(); ErrorKind(fmt.Sprint(err)) != KindConfig {
			t.Errorf("%s: got %v, want a config error", name, err)
		}
	}
	cfg := &Config{
		DataDir:           "d",
		Authorities:       "# test network\nDirAuthority a\n\n  DirAuthority b  \n",
		Bridges:           "1.2.3.4:443 0123",
		Proxy:             "socks5://us%3Aer:p%40ss@127.0.0.1:1080",
		MemoryBudget:      24 << 20,
		TestNetwork:       true,
		ThriftyRefresh:    true,
		Conflux:           true,
		DialTimeoutMillis: 1500,
		LogLevel:          LogDebug,
	}
	s, err := cfg.check()
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(s.client.Authorities, "|"); got != "DirAuthority a|DirAuthority b" {
		t.Errorf("authorities %q", got)
	}
	if len(s.client.Bridges) != 1 || s.client.MemoryBudget != 24<<20 || !s.client.TestNetwork ||
		s.client.Refresh != sdk.RefreshDirSpec || s.dialTimeout.Milliseconds() != 1500 || s.logLevel != LogDebug ||
		s.client.Conflux != sdk.ConfluxOn {
		t.Errorf("settings %+v", s)
	}
	if s0, err := (&Config{DataDir: "d"}).check(); err != nil || s0.client.Conflux != sdk.ConfluxOff {
		t.Errorf("default conflux: %v %v (phones: off unless asked)", s0, err)
	}
	d, ok := s.client.Dialer.(*transport.SOCKS5)
	if !ok || d.Addr != "127.0.0.1:1080" || d.Username != "us:er" || d.Password != "p@ss" {
		t.Errorf("proxy %+v", s.client.Dialer)
	}
	// Defaults.
	s, err = (&Config{DataDir: "d"}).check()
	if err != nil {
		t.Fatal(err)
	}
	if s.client.Authorities != nil || s.client.Dialer != nil || s.logLevel != LogInfo ||
		s.dialTimeout.Milliseconds() != DefaultDialTimeoutMillis {
		t.Errorf("defaults %+v", s)
	}
	// The proxy's password never appears in an error message.
	_, err = (&Config{DataDir: "d", Proxy: "socks5://u:secret@127.0.0.1"}).check()
	if err == nil || strings.Contains(err.Error(), "secret") {
		t.Errorf("proxy error %v", err)
	}
}

func TestNewClientRejectsBadConfig(t *testing.T) {
	if _, err := NewClient(&Config{}); ErrorKind(fmt.Sprint(err)) != KindConfig {
		t.Fatalf("NewClient without DataDir: %v", err)
	}
	// sdk's own checks come back with the config kind too.
	_, err := NewClient(&Config{DataDir: t.TempDir(), Authorities: "DirAuthority nonsense"})
	if ErrorKind(fmt.Sprint(err)) != KindConfig {
		t.Fatalf("NewClient with a bad authority line: %v", err)
	}
}

// pipeStream returns a Stream over one end of a pipe, and the other end.
func pipeStream(t *testing.T) (*Stream, net.Conn) {
	a, b := net.Pipe()
	t.Cleanup(func() { a.Close(); b.Close() })
	c := &Client{ctx: context.Background()}
	c.streamsOpen.Add(1)
	return &Stream{c: c, conn: a}, b
}

func TestStreamReadIsBounded(t *testing.T) {
	s, peer := pipeStream(t)
	want := make([]byte, 3*MaxRead+12345)
	for i := range want {
		want[i] = byte(i * 7)
	}
	go func() {
		peer.Write(want[:100])
		peer.Write(want[100:])
		peer.Close()
	}()
	var got []byte
	for _, max := range []int64{10, 1, 1 << 40} {
		b, err := s.Read(max)
		if err != nil {
			t.Fatal(err)
		}
		if len(b) == 0 || int64(len(b)) > max || int64(len(b)) > MaxRead {
			t.Fatalf("Read(%d) returned %d bytes", max, len(b))
		}
		got = append(got, b...)
	}
	for {
		b, err := s.Read(MaxRead * 4)
		if ErrorKind(fmt.Sprint(err)) == KindEOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if len(b) == 0 || int64(len(b)) > MaxRead {
			t.Fatalf("Read returned %d bytes", len(b))
		}
		got = append(got, b...)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("read %d bytes, not what was written (%d)", len(got), len(want))
	}
	if _, err := s.Read(0); ErrorKind(fmt.Sprint(err)) != KindConfig {
		t.Fatalf("Read(0): %v", err)
	}
	// A result is a copy: a later Read must not change it.
	s2, peer2 := pipeStream(t)
	go func() { peer2.Write([]byte("first")); peer2.Write([]byte("XXXXX")) }()
	first, _ := s2.Read(5)
	if _, err := s2.Read(5); err != nil {
		t.Fatal(err)
	}
	if string(first) != "first" {
		t.Fatalf("first read changed to %q", first)
	}
}

func TestStreamWriteDeadlineClose(t *testing.T) {
	s, peer := pipeStream(t)
	go io.Copy(io.Discard, peer)
	if n, err := s.Write([]byte("hello")); n != 5 || err != nil {
		t.Fatalf("Write: %d %v", n, err)
	}
	if err := s.SetReadDeadline(1); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Read(10); ErrorKind(fmt.Sprint(err)) != KindTimeout {
		t.Fatalf("Read past the deadline: %v", err)
	}
	if err := s.SetDeadline(-5); ErrorKind(fmt.Sprint(err)) != KindConfig {
		t.Fatalf("negative deadline: %v", err)
	}
	if err := s.SetDeadline(0); err != nil {
		t.Fatal(err)
	}
	if err := s.SetWriteDeadline(0); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if n := s.c.streamsOpen.Load(); n != 0 {
		t.Fatalf("streams open after Close: %d", n)
	}
	if _, err := s.Write([]byte("x")); err == nil || ErrorKind(err.Error()) == "" {
		t.Fatalf("Write after Close: %v", err)
	}
}

func TestJoinHostPort(t *testing.T) {
	for _, c := range []struct {
		host string
		port int64
		want string
	}{
		{"example.com", 80, "example.com:80"},
		{"::1", 443, "[::1]:443"},
		{"[::1]", 443, "[::1]:443"},
		{"127.0.0.1", 65535, "127.0.0.1:65535"},
	} {
		if got, err := joinHostPort(c.host, c.port); got != c.want || err != nil {
			t.Errorf("joinHostPort(%q, %d) = %q, %v", c.host, c.port, got, err)
		}
	}
	for _, c := range []struct {
		host string
		port int64
	}{{"", 80}, {"x", 0}, {"x", 65536}, {"x", -1}, {strings.Repeat("a", 256), 80}} {
		if _, err := joinHostPort(c.host, c.port); ErrorKind(fmt.Sprint(err)) != KindBadAddress {
			t.Errorf("joinHostPort(%q, %d): %v", c.host, c.port, err)
		}
	}
}

// recorder implements Logger and ProgressListener for the tests.
type recorder struct {
	mu       sync.Mutex
	progress []Progress
	logs     []string
	inFlight atomic.Int32 // concurrent Log calls (must stay <= 1)
	overlap  atomic.Bool
	stopped  atomic.Bool // set after Stop returned
	late     atomic.Int32
}

func (r *recorder) OnProgress(p *Progress) error {
	if r.stopped.Load() {
		r.late.Add(1)
	}
	r.mu.Lock()
	r.progress = append(r.progress, *p)
	r.mu.Unlock()
	return nil
}

func (r *recorder) Log(level int64, msg string) error {
	if r.inFlight.Add(1) > 1 {
		r.overlap.Store(true)
	}
	defer r.inFlight.Add(-1)
	if r.stopped.Load() {
		r.late.Add(1)
	}
	r.mu.Lock()
	r.logs = append(r.logs, fmt.Sprintf("%d %s", level, msg))
	r.mu.Unlock()
	return errors.New("the app's logger fails; the client must not care")
}

func sha(b []byte) string { s := sha256.Sum256(b); return hex.EncodeToString(s[:]) }

// TestClientAgainstTestnet drives the facade the way the bindings do,
// against the real-tor test network.
func TestClientAgainstTestnet(t *testing.T) {
	n := testnet.Shared(t)
	t.Cleanup(testnet.CheckGoroutines(t))
	body, ok := n.Body("1MiB.bin")
	if !ok {
		t.Fatal("no 1MiB.bin")
	}
	target := n.HTTPTarget()
	host, port, _ := net.SplitHostPort(target)
	var portNum int64
	fmt.Sscan(port, &portNum)

	rec := &recorder{}
	dir := t.TempDir()
	cfg := &Config{DataDir: dir, Authorities: strings.Join(n.AuthorityLines(), "\n"), TestNetwork: true,
		Logger: rec, LogLevel: LogDebug, DialTimeoutMillis: 120_000}
	c, err := NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	cfg.DataDir = "changed afterwards" // copied: no effect
	defer c.Stop()
	if err := c.Bootstrap(rec); err != nil {
		t.Fatal(err)
	}
	rec.mu.Lock()
	last := rec.progress[len(rec.progress)-1]
	nprog := len(rec.progress)
	rec.mu.Unlock()
	if last.Phase != "ready" || last.Percent != 100 || nprog < 2 {
		t.Fatalf("%d progress reports, last %+v", nprog, last)
	}
	if !c.IsReady() {
		t.Fatal("not ready after Bootstrap")
	}

	// SOCKS: net/http speaks SOCKS5 with remote names.
	addr, err := c.StartSOCKS("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.StartSOCKS("0.0.0.0:0"); ErrorKind(fmt.Sprint(err)) != KindConfig {
		t.Fatalf("StartSOCKS on a public address: %v", err)
	}
	hc := &http.Client{Transport: &http.Transport{Proxy: http.ProxyURL(&url.URL{Scheme: "socks5", Host: addr})}}
	resp, err := hc.Get("http://" + target + "/1MiB.bin")
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || sha(got) != body.SHA256 {
		t.Fatalf("SOCKS fetch: %d bytes, %v", len(got), err)
	}
	hc.CloseIdleConnections()

	// A direct stream with small bounded reads.
	s, err := c.Dial(host, portNum)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Write([]byte("GET /hello.txt HTTP/1.0\r\nHost: " + target + "\r\n\r\n")); err != nil {
		t.Fatal(err)
	}
	var all []byte
	for {
		b, err := s.Read(100)
		if ErrorKind(fmt.Sprint(err)) == KindEOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if len(b) == 0 || len(b) > 100 {
			t.Fatalf("Read(100) returned %d bytes", len(b))
		}
		all = append(all, b...)
	}
	hello, _ := n.Body("hello.txt")
	_, respBody, _ := bytes.Cut(all, []byte("\r\n\r\n"))
	if !bytes.HasPrefix(all, []byte("HTTP/1.0 200")) && !bytes.HasPrefix(all, []byte("HTTP/1.1 200")) || sha(respBody) != hello.SHA256 {
		t.Fatalf("stream response %q", all)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	// Download streams into a file.
	out := filepath.Join(t.TempDir(), "body.bin")
	size, err := c.Download("http://"+target+"/1MiB.bin", out)
	if err != nil || size != body.Size {
		t.Fatalf("Download: %d, %v", size, err)
	}
	if b, _ := os.ReadFile(out); sha(b) != body.SHA256 {
		t.Fatal("downloaded file has the wrong SHA-256")
	}
	if _, err := c.Download("http://"+target+"/missing", out); ErrorKind(fmt.Sprint(err)) != KindHTTP {
		t.Fatalf("Download of a missing page: %v", err)
	}
	if _, err := c.Download("ftp://"+target+"/x", out); ErrorKind(fmt.Sprint(err)) != KindBadAddress {
		t.Fatalf("Download of ftp: %v", err)
	}
	if b, _ := os.ReadFile(out); sha(b) != body.SHA256 {
		t.Fatal("a failed Download changed the file")
	}

	// A port nobody listens on: the exit says so.
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	closed := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	if _, err := c.Dial("127.0.0.1", int64(closed)); ErrorKind(fmt.Sprint(err)) != KindExitRefused {
		t.Fatalf("Dial to a closed port: %v", err)
	}

	// Lifecycle calls, then a stream still works.
	c.SetDormant(true)
	c.TrimMemory(TrimCritical)
	c.SetDormant(false)
	c.NetworkChanged()
	s, err = c.Dial(host, portNum)
	if err != nil {
		t.Fatalf("Dial after NetworkChanged: %v", err)
	}
	s.Close()

	var st map[string]any
	if err := json.Unmarshal([]byte(c.StatsJSON()), &st); err != nil {
		t.Fatal(err)
	}
	// A cold start fetched a full consensus; a refresh since (the test
	// network votes every minute) may have replaced it with a diff.
	if st["ready"] != true || st["relays"].(float64) < 1 || st["bytes_read"].(float64) < float64(2*body.Size) ||
		(st["consensus_source"] != "full" && st["consensus_source"] != "diff") || st["streams_open"].(float64) != 0 {
		t.Fatalf("stats %v", st)
	}
	// The memory object: the plan of the default budget, a directory
	// view, and the Go runtime's figures.
	mem, ok := st["memory"].(map[string]any)
	if !ok {
		t.Fatalf("stats without a memory object: %v", st)
	}
	for _, k := range []string{"budget", "go_limit", "directory_allowance", "queue_limit_planned", "pool_cells",
		"directory", "queue_limit", "go_heap", "go_total", "go_memory_limit"} {
		if v, ok := mem[k].(float64); !ok || v <= 0 {
			t.Errorf("memory.%s = %v, want a positive number", k, mem[k])
		}
	}
	for _, k := range []string{"queues", "queues_peak", "reclaims", "reclaimed", "pool", "pool_waits", "cache", "gc_percent"} {
		if _, ok := mem[k].(float64); !ok {
			t.Errorf("memory.%s = %v, want a number", k, mem[k])
		}
	}
	for _, k := range []string{"go_memory_limit_set", "gc_percent_set"} {
		if _, ok := mem[k].(bool); !ok {
			t.Errorf("memory.%s = %v, want a boolean", k, mem[k])
		}
	}
	if mem["budget"].(float64) < mem["go_limit"].(float64) || mem["queues_peak"].(float64) < mem["queues"].(float64) {
		t.Errorf("memory %v: the budget must cover the Go limit, the peak the current queues", mem)
	}

	// A stream open across Stop fails with kind closed.
	s, err = c.Dial(host, portNum)
	if err != nil {
		t.Fatal(err)
	}
	readErr := make(chan error, 1)
	go func() { _, err := s.Read(10); readErr <- err }()
	if err := c.Stop(); err != nil {
		t.Fatal(err)
	}
	rec.stopped.Store(true)
	if err := <-readErr; ErrorKind(fmt.Sprint(err)) != KindClosed {
		t.Fatalf("Read across Stop: %v", err)
	}
	s.Close()
	if err := c.Stop(); ErrorKind(fmt.Sprint(err)) != KindClosed {
		t.Fatalf("second Stop: %v", err)
	}
	if _, err := c.Dial(host, portNum); ErrorKind(fmt.Sprint(err)) != KindClosed {
		t.Fatalf("Dial after Stop: %v", err)
	}
	if err := c.Bootstrap(nil); ErrorKind(fmt.Sprint(err)) != KindClosed {
		t.Fatalf("Bootstrap after Stop: %v", err)
	}
	if _, err := c.StartSOCKS(""); ErrorKind(fmt.Sprint(err)) != KindClosed {
		t.Fatalf("StartSOCKS after Stop: %v", err)
	}
	if c.IsReady() {
		t.Fatal("ready after Stop")
	}
	if rec.overlap.Load() {
		t.Error("Logger was called from two threads at once")
	}
	rec.mu.Lock()
	logs := strings.Join(rec.logs, "\n")
	rec.mu.Unlock()
	for _, want := range []string{"2 ready", "2 SOCKS5 on " + addr, "2 stopping", "3 "} {
		if !strings.Contains(logs, want) {
			t.Errorf("no log line %q in:\n%s", want, logs)
		}
	}
	if strings.Contains(logs, target) || strings.Contains(logs, "/1MiB.bin") {
		t.Errorf("a destination leaked into the log:\n%s", logs)
	}

	// Warm start from the same directory: no progress beyond ready, the
	// cache is used.
	rec2 := &recorder{}
	w, err := NewClient(&Config{DataDir: dir, Authorities: strings.Join(n.AuthorityLines(), "\n"), TestNetwork: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Bootstrap(rec2); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal([]byte(w.StatsJSON()), &st); err != nil {
		t.Fatal(err)
	}
	if st["ready"] != true || st["relays"].(float64) < 1 {
		t.Fatalf("warm stats %v", st)
	}
	if err := w.Stop(); err != nil {
		t.Fatal(err)
	}
	// Calls to the Logger are serialised and gated on Stop; one that had
	// passed the gate when Stop flipped it may still arrive, no more.
	if n := rec.late.Load(); n > 1 {
		t.Errorf("%d callbacks after Stop returned", n)
	}
}

// TestStopDuringBootstrap stops a client from inside its progress
// callback: Bootstrap returns with kind closed and nothing deadlocks.
func TestStopDuringBootstrap(t *testing.T) {
	n := testnet.Shared(t)
	t.Cleanup(testnet.CheckGoroutines(t))
	c, err := NewClient(&Config{DataDir: t.TempDir(), Authorities: strings.Join(n.AuthorityLines(), "\n"), TestNetwork: true})
	if err != nil {
		t.Fatal(err)
	}
	stopErr := make(chan error, 1)
	err = c.Bootstrap(listenerFunc(func(p *Progress) error {
		select {
		case stopErr <- c.Stop():
		default:
		}
		return nil
	}))
	if ErrorKind(fmt.Sprint(err)) != KindClosed {
		t.Fatalf("Bootstrap stopped from its listener: %v", err)
	}
	if err := <-stopErr; err != nil {
		t.Fatal(err)
	}
}

type listenerFunc func(*Progress) error

func (f listenerFunc) OnProgress(p *Progress) error { return f(p) }

// TestZeroValuesDoNotPanic: gobind gives Java and Objective-C a
// constructor for Stream, so an app can hold a Stream that Dial never
// made; and a panic inside a method without an error result must not
// cross the bridge.
func TestZeroValuesDoNotPanic(t *testing.T) {
	var s Stream
	if _, err := s.Read(10); ErrorKind(fmt.Sprint(err)) != KindConfig {
		t.Errorf("Read on a zero Stream: %v", err)
	}
	if _, err := s.Write([]byte("x")); ErrorKind(fmt.Sprint(err)) != KindConfig {
		t.Errorf("Write on a zero Stream: %v", err)
	}
	for name, f := range map[string]func(int64) error{"SetDeadline": s.SetDeadline, "SetReadDeadline": s.SetReadDeadline,
		"SetWriteDeadline": s.SetWriteDeadline} {
		if err := f(10); ErrorKind(fmt.Sprint(err)) != KindConfig {
			t.Errorf("%s on a zero Stream: %v", name, err)
		}
	}
	if err := s.Close(); ErrorKind(fmt.Sprint(err)) != KindConfig {
		t.Errorf("Close on a zero Stream: %v", err)
	}
	rec := &recorder{}
	c := &Client{log: &logSink{logger: rec, level: LogWarn}} // no sdk client: every call panics inside
	if c.IsReady() || c.TrimMemory(TrimCritical) != 0 || c.StatsJSON() != "{}" {
		t.Error("a broken client reported something")
	}
	c.SetDormant(true)
	c.NetworkChanged()
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if len(rec.logs) != 5 || !strings.Contains(rec.logs[0], "panic") {
		t.Errorf("logged %q, want 5 panics", rec.logs)
	}
}

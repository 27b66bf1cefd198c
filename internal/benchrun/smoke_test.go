package benchrun

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/onionlite/onionlite/internal/testnet"
)

func TestMain(m *testing.M) { testnet.Main(m, testnet.Config{Interval: 20 * time.Second}) }

// buildCLI builds the onionlite command into dir as scripts/bench builds
// the measured client: the lean build, CGO_ENABLED=0 -tags nodev.
func buildCLI(t *testing.T, dir string) string {
	t.Helper()
	bin := filepath.Join(dir, "onionlite")
	cmd := exec.Command("go", "build", "-tags", "nodev", "-o", bin, "github.com/onionlite/onionlite/cmd/onionlite")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// TestSmoke runs one unthrottled cold start of each client against the
// real test network and checks that every metric was filled in and that
// the report shows them.
func TestSmoke(t *testing.T) {
	n := testnet.Shared(t)
	dir := t.TempDir()
	bin := buildCLI(t, t.TempDir())
	caps, err := ProbeCLI(bin)
	if err != nil {
		t.Fatal(err)
	}
	o := Options{Bin: bin, WorkDir: dir, Timeout: 3 * time.Minute, Starts: []string{Cold}, Reps: 1, Profiles: Profiles[:1], Logf: t.Logf}
	b := &bench{o: o, caps: caps, set: newSet(o, NetworkSpec{Name: Testnet10, Title: "smoke"}, caps)}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	sc := scenarios([]string{Cold}, Profiles[0], caps)[0] // with get: cold+10MiB
	// A harness holding much memory must not lend it to the clients'
	// peak RSS (wait4's ru_maxrss does: exitUsage).
	ballast := make([]byte, 160<<20)
	for i := range ballast {
		ballast[i] = 1
	}
	defer runtime.KeepAlive(ballast)
	for _, cl := range []string{Onionlite, CTor} {
		s := &slot{client: cl, dir: filepath.Join(dir, cl)}
		if err := os.MkdirAll(s.dir, 0o700); err != nil {
			t.Fatal(err)
		}
		r := b.one(ctx, n, Profiles[0], sc, s, 1)
		if !r.OK {
			t.Fatalf("%s: %s", cl, r.Error)
		}
		if r.ReadyS <= 0 || r.DirReadyS <= 0 || r.DirReadyS > r.ReadyS || r.Up <= 0 || r.Down <= 0 ||
			r.UpDirReady <= 0 || r.DownDirReady > r.Down || r.PeakRSS <= 0 || r.PeakRSSReady <= 0 ||
			r.DirBytes <= 0 || r.ClientRead <= 0 || len(r.Progress) < 2 || len(r.Traffic) == 0 || r.ConsensusValid == "" {
			t.Errorf("%s: incomplete run %+v", cl, r)
		}
		if sc.Fetch != "" && (r.FirstByteS <= r.DirReadyS || r.TotalS <= r.FirstByteS || r.BodyBytes != 10<<20) {
			t.Errorf("%s: fetch times or size wrong: %+v", cl, r)
		}
		if r.PeakRSS >= int64(len(ballast)) {
			t.Errorf("%s: peak RSS %d B is the harness's (it holds %d B)", cl, r.PeakRSS, len(ballast))
		}
		// The sampled parts of the resident set: both there, neither the
		// harness's, and neither above the exact peak of the whole.
		if r.PeakRSSAnon <= 0 || r.PeakRSSFile <= 0 || r.PeakRSSAnon > r.PeakRSS || r.PeakRSSFile > r.PeakRSS {
			t.Errorf("%s: sampled RssAnon %d B, RssFile %d B, peak RSS %d B", cl, r.PeakRSSAnon, r.PeakRSSFile, r.PeakRSS)
		}
		// The proxy and the client count the same connections: the
		// client's own counters differ by at most what the proxy is
		// still to deliver or never saw (a closing handshake).
		if d := r.Down - r.ClientRead; d < -2048 || d > 2048 {
			t.Errorf("%s: proxy saw %d B down, the client read %d B", cl, r.Down, r.ClientRead)
		}
	}
	set := *b.set
	set.Incomplete = false
	res := &Results{}
	res.Put(set)
	out := filepath.Join(dir, "docs", "bench")
	if err := WriteReport(res, out, filepath.Join(dir, "docs", "BENCHMARKS.md")); err != nil {
		t.Fatal(err)
	}
	md, err := os.ReadFile(filepath.Join(dir, "docs", "BENCHMARKS.md"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(md), "| "+sc.Name()+" | start → directory ready") || strings.Contains(string(md), "### Failed runs") ||
		!strings.Contains(string(md), "| "+sc.Name()+" | peak anonymous memory (RssAnon), sampled |") ||
		!strings.Contains(string(md), "| "+sc.Name()+" | peak file-backed memory (RssFile), sampled |") ||
		!strings.Contains(string(md), "The onionlite binary is the lean client build (`CGO_ENABLED=0 -tags=nodev") {
		t.Fatalf("report:\n%s", md)
	}
}

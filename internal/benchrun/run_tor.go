package benchrun

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/http/httptrace"
	"os"
	"path/filepath"
	"time"

	"github.com/onionlite/onionlite/internal/testnet"
	"github.com/onionlite/onionlite/internal/testnet/slowlink"
	"github.com/onionlite/onionlite/transport"
)

// torSpec is one run of a C tor client on a test network.
type torSpec struct {
	Dir     string       // DataDirectory; reused for warm and stale starts
	Body    testnet.Body // fetched after bootstrap when Body.Name != ""
	URL     string
	Timeout time.Duration
	Tag     string // prefix for the logs kept after the run
}

// runTor starts a C tor client through proxy, waits for BOOTSTRAP
// PROGRESS=100, optionally fetches a body through its SOCKS port, and
// fills r. The run's clock starts just before tor is spawned.
func runTor(ctx context.Context, n *testnet.Network, sp torSpec, proxy *slowlink.Proxy, r *Run) error {
	ctx, cancel := context.WithTimeout(ctx, sp.Timeout)
	defer cancel()
	// Each run gets fresh logs, so every line in them is this run's; they
	// are kept under the run's tag afterwards.
	logs := []string{"notice.log", "info.log", "dirdebug.log"}
	for _, f := range logs {
		os.Remove(filepath.Join(sp.Dir, f))
	}
	defer func() {
		for _, f := range logs {
			os.Rename(filepath.Join(sp.Dir, f), filepath.Join(sp.Dir, sp.Tag+"."+f))
		}
	}()
	t0 := time.Now()
	smp := startSampler(t0, proxy)
	c, err := n.StartClient(ctx, testnet.ClientConfig{
		Dir:           sp.Dir,
		UpstreamSOCKS: proxy.Addr(),
		ExtraTorrc:    []string{"Log [dir]debug file " + filepath.Join(sp.Dir, "dirdebug.log")},
	})
	if err != nil {
		smp.finish()
		return err
	}
	defer c.Stop()
	pid := c.PID()
	smp.setPID(pid)
	if err := c.WaitBootstrapped(ctx); err != nil {
		smp.finish()
		return err
	}
	ready := smp.snapshot()
	r.ReadyS = ready.T
	r.UpReady, r.DownReady = ready.Up, ready.Down
	r.CPUReadyS, _ = procCPU(pid)
	r.PeakRSSReady, _ = procHWM(pid)
	r.TotalS = r.ReadyS

	if sp.Body.Name != "" {
		fb, last, size, sum, err := fetchVia(ctx, c.SOCKSAddr(), sp.URL)
		if err != nil {
			smp.finish()
			return fmt.Errorf("the C tor client: fetch %s: %v", sp.Body.Name, err)
		}
		if size != sp.Body.Size || sum != sp.Body.SHA256 {
			smp.finish()
			return fmt.Errorf("the C tor client: fetch %s: got %d bytes with SHA-256 %s, want %d bytes, %s", sp.Body.Name, size, sum, sp.Body.Size, sp.Body.SHA256)
		}
		r.FirstByteS, r.TotalS, r.BodyBytes = fb.Sub(t0).Seconds(), last.Sub(t0).Seconds(), size
	}
	end := smp.snapshot()
	r.Up, r.Down = end.Up, end.Down
	r.Resets = proxy.Stats().Resets
	r.CPUS, _ = procCPU(pid)
	r.PeakRSS, _ = procHWM(pid)
	r.ClientRead, r.ClientWritten, _ = c.Traffic()
	traffic, procs := smp.finish()
	r.PeakRSSAnon, r.PeakRSSFile = peakParts(procs)
	if err := c.Stop(); err != nil {
		return err
	}
	r.Traffic = thin(traffic, maxTrafficSamples)

	notice, err := os.ReadFile(filepath.Join(sp.Dir, "notice.log"))
	if err != nil {
		return err
	}
	r.Progress = parseTorBootstrap(notice, t0, time.Local)
	r.DirReadyS = firstAt(r.Progress, 75)
	if r.DirReadyS < 0 {
		return fmt.Errorf("the C tor client: reached 100%% without logging 75%% (log %s)", sp.Dir)
	}
	dr := trafficAt(traffic, r.DirReadyS)
	r.UpDirReady, r.DownDirReady = dr.Up, dr.Down
	ps := procAt(procs, r.DirReadyS)
	r.CPUDirReadyS, r.PeakRSSDirReady = ps.CPU, ps.HWM
	if dbg, err := os.ReadFile(filepath.Join(sp.Dir, "dirdebug.log")); err == nil {
		r.DirBytes, r.DirBytesByKind = parseTorDirBytes(dbg)
	}
	if cons, err := os.ReadFile(filepath.Join(sp.Dir, "cached-microdesc-consensus")); err == nil {
		if va, _, _, ok := consensusTimes(cons); ok {
			r.ConsensusValid = va.Format(time.RFC3339)
		}
	}
	return nil
}

// fetchVia GETs url through a SOCKS5 proxy and returns when the first byte
// of the response (as onionlite get times it: httptrace's
// GotFirstResponseByte) and the last body byte arrived, the body's size
// and its SHA-256.
func fetchVia(ctx context.Context, socks, url string) (first, last time.Time, n int64, sum string, err error) {
	tr := &http.Transport{Proxy: nil, DisableCompression: true, DialContext: (&transport.SOCKS5{Addr: socks}).DialContext}
	defer tr.CloseIdleConnections()
	trace := &httptrace.ClientTrace{GotFirstResponseByte: func() { first = time.Now() }}
	req, err := http.NewRequestWithContext(httptrace.WithClientTrace(ctx, trace), http.MethodGet, url, nil)
	if err != nil {
		return first, last, 0, "", err
	}
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		return first, last, 0, "", err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return first, last, 0, "", fmt.Errorf("HTTP %s", resp.Status)
	}
	h := sha256.New()
	buf := make([]byte, 32<<10)
	for {
		k, rerr := resp.Body.Read(buf)
		if k > 0 {
			n += int64(k)
			h.Write(buf[:k])
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			return first, last, n, "", rerr
		}
	}
	return first, time.Now(), n, hex.EncodeToString(h.Sum(nil)), nil
}

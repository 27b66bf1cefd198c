package testnet

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

// ClientConfig describes a C tor client started by StartClient.
type ClientConfig struct {
	// Dir is the client's DataDirectory (its torrc and logs go there too).
	// "" means a new DIR/clients/clientN. Reusing a Dir gives warm and
	// stale restarts.
	Dir string
	// UpstreamSOCKS, when set ("host:port"), becomes Socks5Proxy: every OR
	// connection goes through that proxy (for example slowlink).
	UpstreamSOCKS string
	// ExtraTorrc lines are appended to the generated torrc.
	ExtraTorrc []string
}

// Client is a C tor client running against the network.
type Client struct {
	n     *Network
	dir   string
	p     *proc
	ctl   *controlConn
	socks string

	mu       sync.Mutex
	progress int
	summary  string
	changed  chan struct{} // closed and replaced on every progress change

	stopOnce sync.Once
	stopErr  error
}

// StartClient starts a C tor client with its own data directory, an
// automatic SOCKS port and control port, and the network's authorities.
// It returns once the control port is authenticated and subscribed to
// bootstrap events; see WaitBootstrapped. Network.Stop stops clients still
// running.
func (n *Network) StartClient(ctx context.Context, cfg ClientConfig) (*Client, error) {
	n.mu.Lock()
	if n.stopped {
		n.mu.Unlock()
		return nil, errors.New("testnet: StartClient on a stopped network")
	}
	dir := cfg.Dir
	if dir == "" {
		n.clientSeq++
		dir = filepath.Join(n.dir, "clients", "client"+strconv.Itoa(n.clientSeq))
	}
	n.mu.Unlock()
	dir, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	if err := checkPath(dir); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return nil, err
	}
	for _, l := range cfg.ExtraTorrc {
		if strings.ContainsAny(l, "\r\n") {
			return nil, fmt.Errorf("testnet: ExtraTorrc line %q holds a line break", l)
		}
	}
	torrc := filepath.Join(dir, "torrc")
	if err := os.WriteFile(torrc, []byte(clientTorrc(dir, n.AuthorityLines(), cfg.UpstreamSOCKS, cfg.ExtraTorrc)), 0o600); err != nil {
		return nil, err
	}
	os.Remove(filepath.Join(dir, "control_port"))
	p, err := startProc(n.torPath, []string{"-f", torrc, "--defaults-torrc", os.DevNull}, filepath.Join(dir, "stdout.log"), false)
	if err != nil {
		return nil, err
	}
	c := &Client{n: n, dir: dir, p: p, changed: make(chan struct{})}
	n.mu.Lock()
	n.started = append(n.started, procRecord{p.pid, torrc})
	if n.stopped {
		n.mu.Unlock()
		p.stop(5 * time.Second)
		return nil, errors.New("testnet: network stopped while starting a client")
	}
	n.clients = append(n.clients, c)
	n.mu.Unlock()
	n.logf("client %s started, pid %d", dir, p.pid)
	if err := c.connect(ctx); err != nil {
		c.Stop()
		return nil, fmt.Errorf("testnet: client in %s: %w", dir, err)
	}
	return c, nil
}

func (c *Client) connect(ctx context.Context) error {
	var port int
	for {
		var err error
		if port, err = readPortFile(filepath.Join(c.dir, "control_port")); err == nil {
			break
		}
		select {
		case <-c.p.done:
			return fmt.Errorf("tor exited: %v; log ends:\n%s", c.p.waitErr(), c.logTail())
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
	ctl, err := dialControl(ctx, port, c.onEvent)
	if err != nil {
		return err
	}
	c.ctl = ctl
	if _, err := ctl.do("SETEVENTS STATUS_CLIENT"); err != nil {
		return err
	}
	v, err := ctl.getinfo("net/listeners/socks")
	if err != nil {
		return err
	}
	f := strings.Fields(v[0])
	if len(f) == 0 {
		return errors.New("tor has no SOCKS listener")
	}
	c.socks = strings.Trim(f[0], `"`)
	_, err = c.Progress()
	return err
}

func (c *Client) logTail() string {
	t := logTail(filepath.Join(c.dir, "notice.log"), 6)
	if t == "" {
		t = logTail(filepath.Join(c.dir, "stdout.log"), 6)
	}
	return t
}

func (c *Client) onEvent(lines []string) {
	for _, l := range lines {
		if rest, ok := strings.CutPrefix(l, "STATUS_CLIENT "); ok {
			if p, s, ok := parseBootstrap(rest); ok {
				c.setProgress(p, s)
			}
		}
	}
}

func (c *Client) setProgress(p int, summary string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if p < c.progress {
		return
	}
	if p != c.progress || summary != c.summary {
		c.progress, c.summary = p, summary
		close(c.changed)
		c.changed = make(chan struct{})
	}
}

// SOCKSAddr returns "127.0.0.1:PORT" of the client's SOCKS port.
func (c *Client) SOCKSAddr() string { return c.socks }

// Dir returns the client's data directory (torrc and logs are there).
func (c *Client) Dir() string { return c.dir }

// PID returns the client's process id.
func (c *Client) PID() int { return c.p.pid }

// Progress asks tor for its bootstrap progress (0..100).
func (c *Client) Progress() (int, error) {
	v, err := c.ctl.getinfo("status/bootstrap-phase")
	if err != nil {
		return 0, err
	}
	p, s, ok := parseBootstrap(v[0])
	if !ok {
		return 0, fmt.Errorf("testnet: unexpected bootstrap phase %q", v[0])
	}
	c.setProgress(p, s)
	return p, nil
}

// WaitBootstrapped waits for BOOTSTRAP PROGRESS=100 (from STATUS_CLIENT
// events, checked against GETINFO status/bootstrap-phase every second).
// It fails at once if tor exits.
func (c *Client) WaitBootstrapped(ctx context.Context) error {
	for {
		c.mu.Lock()
		p, s, ch := c.progress, c.summary, c.changed
		c.mu.Unlock()
		if p >= 100 {
			return nil
		}
		select {
		case <-ch:
		case <-c.p.done:
			return fmt.Errorf("testnet: client tor exited at %d%% (%s): %v; logs in %s; log ends:\n%s", p, s, c.p.waitErr(), c.dir, c.logTail())
		case <-ctx.Done():
			return fmt.Errorf("testnet: client bootstrap stuck at %d%% (%s): %w; logs in %s", p, s, ctx.Err(), c.dir)
		case <-time.After(time.Second):
			if _, err := c.Progress(); err != nil && !c.p.exited() {
				return err
			}
		}
	}
}

// Traffic returns tor's traffic/read and traffic/written counters (bytes
// read from and written to sockets, TLS included) minus the bytes of this
// helper's own control connection, which tor counts too on a test network
// (CountPrivateBandwidth). Control bytes in flight while the counters are
// read may add a few bytes of error.
func (c *Client) Traffic() (read, written int64, err error) {
	ownW, ownR := c.ctl.written.Load(), c.ctl.read.Load()
	cmdLen := int64(len("GETINFO traffic/read traffic/written\r\n"))
	v, err := c.ctl.getinfo("traffic/read", "traffic/written")
	if err != nil {
		return 0, 0, err
	}
	r, err1 := strconv.ParseInt(v[0], 10, 64)
	w, err2 := strconv.ParseInt(v[1], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, 0, fmt.Errorf("testnet: bad traffic counters %q", v)
	}
	return r - ownW - cmdLen, w - ownR, nil
}

// PeakRSS returns the client's peak resident set size (VmHWM) in bytes.
func (c *Client) PeakRSS() (int64, error) {
	if c.p.exited() {
		return 0, errors.New("testnet: client has exited")
	}
	return peakRSS(c.p.pid)
}

// Stop stops the client (SIGTERM, then SIGKILL after 10 s) and waits until
// it has been reaped. Later calls return the first result.
func (c *Client) Stop() error {
	c.stopOnce.Do(func() {
		if c.ctl != nil {
			c.ctl.close()
		}
		c.stopErr = c.p.stop(10 * time.Second)
		c.n.logf("client %s stopped", c.dir)
	})
	return c.stopErr
}

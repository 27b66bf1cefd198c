package sdk

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strconv"
	"time"

	"github.com/onionlite/onionlite/internal/channel"
	"github.com/onionlite/onionlite/internal/circmgr"
	"github.com/onionlite/onionlite/internal/circuit"
	"github.com/onionlite/onionlite/internal/stream"
	"github.com/onionlite/onionlite/memquota"
)

// DialContext opens a TCP stream to addr ("host:port") through a Tor
// circuit. The host is sent to the exit relay exactly as given and is
// never resolved locally; IP literals are passed as they are. network must
// be "tcp", "tcp4" or "tcp6". If the directory is not ready yet, DialContext
// waits for it (the client bootstraps in the background) until ctx ends.
//
// The returned net.Conn honours deadlines. Its errors are *Error values
// (io.EOF at the end of the stream), so callers can tell a refused exit
// from a broken circuit or a timeout.
func (c *Client) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	switch network {
	case "tcp", "tcp4", "tcp6":
	default:
		return nil, &Error{Kind: KindBadAddress, Op: "dial", Err: fmt.Errorf("network %q is not supported (only tcp)", network)}
	}
	host, port, err := splitHostPort(addr)
	if err != nil {
		return nil, &Error{Kind: KindBadAddress, Op: "dial", Err: err}
	}
	k, err := c.ready(ctx, "dial")
	if err != nil {
		return nil, err
	}
	st, err := k.circs.Dial(ctx, c.iso, host, port)
	if err != nil {
		return nil, dialError("dial", err)
	}
	return &conn{Stream: st, k: k}, nil
}

// Dial is DialContext with a background context.
func (c *Client) Dial(network, addr string) (net.Conn, error) {
	return c.DialContext(context.Background(), network, addr)
}

func splitHostPort(addr string) (string, uint16, error) {
	host, ps, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, fmt.Errorf("address %q: %v", addr, err)
	}
	p, err := strconv.ParseUint(ps, 10, 16)
	if err != nil || p == 0 {
		return "", 0, fmt.Errorf("address %q: bad port", addr)
	}
	if host == "" || len(host) > 255 {
		return "", 0, fmt.Errorf("address %q: bad host", addr)
	}
	return host, uint16(p), nil
}

// ready starts the client and waits until the directory is usable.
func (c *Client) ready(ctx context.Context, op string) (*core, error) {
	k, err := c.started(op)
	if err != nil {
		return nil, err
	}
	for {
		select {
		case <-k.boot.Ready():
			return k, nil
		default:
		}
		// A bootstrap that failed because of the local clock will keep
		// failing until the clock is fixed: say so instead of waiting.
		k.mu.Lock()
		skewErr, failed := k.skewErr, k.failed
		k.mu.Unlock()
		if skewErr != nil {
			return nil, &Error{Kind: KindClockSkew, Op: op, Err: skewErr}
		}
		select {
		case <-k.boot.Ready():
			return k, nil
		case <-failed:
		case <-k.ctx.Done():
			return nil, &Error{Kind: KindClosed, Op: op}
		case <-ctx.Done():
			kind := KindBootstrapRequired
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				kind = KindTimeout
			}
			return nil, &Error{Kind: kind, Op: op, Err: fmt.Errorf("directory not ready: %w", ctx.Err())}
		}
	}
}

// dialError maps circuit-manager failures to kinds.
func dialError(op string, err error) error {
	var e *Error
	if errors.As(err, &e) {
		return err
	}
	switch {
	case errors.Is(err, context.Canceled):
		return err
	case errors.Is(err, circmgr.ErrBadTarget):
		return &Error{Kind: KindBadAddress, Op: op, Err: err}
	case errors.Is(err, circmgr.ErrDirectoryNotReady):
		return &Error{Kind: KindBootstrapRequired, Op: op, Err: err}
	case errors.Is(err, circmgr.ErrNoExitForPort), errors.Is(err, circmgr.ErrNoPath):
		return &Error{Kind: KindNoPath, Op: op, Err: err}
	case errors.Is(err, circmgr.ErrExitRefused), errors.Is(err, circmgr.ErrResolveFailed):
		return &Error{Kind: KindExitRefused, Op: op, Err: err}
	case errors.Is(err, circmgr.ErrTimeout), errors.Is(err, context.DeadlineExceeded), errors.Is(err, os.ErrDeadlineExceeded):
		return &Error{Kind: KindTimeout, Op: op, Err: err}
	case errors.Is(err, memquota.ErrReclaimed):
		return &Error{Kind: KindMemory, Op: op, Err: err}
	case errors.Is(err, circmgr.ErrClosed):
		return &Error{Kind: KindClosed, Op: op, Err: err}
	}
	return &Error{Kind: KindNetwork, Op: op, Err: err}
}

// conn is a stream whose errors are *Error values.
type conn struct {
	*stream.Stream
	k *core // the client it came from
}

func (c *conn) Read(p []byte) (int, error) {
	n, err := c.Stream.Read(p)
	return n, c.error("read", err)
}

func (c *conn) Write(p []byte) (int, error) {
	n, err := c.Stream.Write(p)
	return n, c.error("write", err)
}

// error is streamError, except that a circuit whose channel failed (a
// relay died, a connection was reset) is a network failure even though
// the channel's error says it closed, unless the client itself was
// closed.
func (c *conn) error(op string, err error) error {
	var cc *circuit.ChannelClosedError
	if err != nil && errors.As(err, &cc) && cc.Err != channel.ErrClosed && (c.k == nil || c.k.ctx.Err() == nil) &&
		!errors.Is(err, memquota.ErrReclaimed) {
		return &Error{Kind: KindNetwork, Op: op, Err: err}
	}
	return streamError(op, err)
}

func streamError(op string, err error) error {
	if err == nil || err == io.EOF {
		return err
	}
	if errors.Is(err, memquota.ErrReclaimed) {
		// Before the closed check: a reclaimed channel's error also
		// says the channel is closed.
		return &Error{Kind: KindMemory, Op: op, Err: err}
	}
	var end *stream.EndError
	if errors.As(err, &end) {
		return &Error{Kind: KindExitRefused, Op: op, Err: err}
	}
	if errors.Is(err, net.ErrClosed) {
		return &Error{Kind: KindClosed, Op: op, Err: err}
	}
	return dialError(op, err)
}

// Resolve asks an exit relay to resolve host (Tor's RESOLVE); nothing is
// looked up locally.
func (c *Client) Resolve(ctx context.Context, host string) ([]netip.Addr, error) {
	k, err := c.ready(ctx, "resolve")
	if err != nil {
		return nil, err
	}
	addrs, err := k.circs.Resolve(ctx, c.iso, host)
	if err != nil {
		return nil, dialError("resolve", err)
	}
	return addrs, nil
}

// HTTPClient returns an http.Client whose connections go through Tor.
// Names in URLs are resolved by the exit. It keeps idle connections like
// any http.Transport; use a separate Isolated client for unlinkable
// requests.
func (c *Client) HTTPClient() *http.Client {
	return &http.Client{Transport: &http.Transport{
		Proxy:                 nil,
		DialContext:           c.DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          16,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   30 * time.Second,
		ExpectContinueTimeout: time.Second,
	}}
}

// Isolated returns a view of the client that never shares a circuit with
// the client or any other view. It shares everything else (directory,
// guards, connections); closing it closes the client.
func (c *Client) Isolated() *Client {
	if err := c.Start(); err != nil {
		// Return a view that reports the start error on every call.
		v := &Client{initErr: err}
		v.once.Do(func() {})
		return v
	}
	v := &Client{core: c.core, iso: circmgr.NewKey()}
	v.once.Do(func() {})
	return v
}

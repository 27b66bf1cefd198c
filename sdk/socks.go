package sdk

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"

	"github.com/onionlite/onionlite/internal/circmgr"
	"github.com/onionlite/onionlite/internal/socks5"
)

// ServeSOCKS serves SOCKS4a/SOCKS5 on ln until ln fails or the client is
// closed: CONNECT through Tor, plus Tor's RESOLVE and RESOLVE_PTR
// extensions. Host names are passed to the exit, never resolved locally.
// A SOCKS username/password (or SOCKS4 user ID) is an isolation key:
// streams with different credentials never share a circuit, as with C
// tor's IsolateSOCKSAuth.
//
// ln must listen on a loopback address: a SOCKS port reachable from the
// network would let anyone use the client. Use ServeSOCKSRemote to serve
// another address on purpose.
func (c *Client) ServeSOCKS(ln net.Listener) error {
	if !isLoopbackListener(ln) {
		ln.Close()
		return &Error{Kind: KindConfig, Op: "socks", Err: fmt.Errorf("refusing to serve SOCKS on non-loopback address %v (use ServeSOCKSRemote)", ln.Addr())}
	}
	return c.ServeSOCKSRemote(ln)
}

// ServeSOCKSRemote is ServeSOCKS without the loopback check.
func (c *Client) ServeSOCKSRemote(ln net.Listener) error {
	k, err := c.started("socks")
	if err != nil {
		ln.Close()
		return err
	}
	srv := &socks5.Server{Handler: &socksHandler{c: c}, Logf: k.logf}
	stop := context.AfterFunc(k.ctx, func() { srv.Close() })
	defer stop()
	err = srv.Serve(ln)
	if errors.Is(err, socks5.ErrServerClosed) {
		return &Error{Kind: KindClosed, Op: "socks"}
	}
	return err
}

func isLoopbackListener(ln net.Listener) bool {
	switch a := ln.Addr().(type) {
	case *net.TCPAddr:
		return a.IP.IsLoopback()
	case *net.UnixAddr:
		return true // a Unix socket is local by nature
	}
	ap, err := netip.ParseAddrPort(ln.Addr().String())
	return err == nil && ap.Addr().IsLoopback()
}

type socksHandler struct{ c *Client }

// key gives a request's isolation group: the client's own, refined by the
// SOCKS credentials when there are any.
func (h *socksHandler) key(r *socks5.Request) circmgr.IsolationKey {
	if r.Username == "" && r.Password == "" {
		return h.c.iso
	}
	return circmgr.Key("socks\x00" + h.c.iso.String() + "\x00" + r.Username + "\x00" + r.Password)
}

func (h *socksHandler) Connect(ctx context.Context, r *socks5.Request) (net.Conn, error) {
	k, err := h.c.ready(ctx, "socks")
	if err != nil {
		return nil, socksError{err}
	}
	st, err := k.circs.Dial(ctx, h.key(r), r.Host, r.Port)
	if err != nil {
		return nil, socksError{dialError("socks", err)}
	}
	return &conn{Stream: st, k: k}, nil
}

func (h *socksHandler) Resolve(ctx context.Context, r *socks5.Request) ([]netip.Addr, error) {
	k, err := h.c.ready(ctx, "socks")
	if err != nil {
		return nil, socksError{err}
	}
	addrs, err := k.circs.Resolve(ctx, h.key(r), r.Host)
	if err != nil {
		return nil, socksError{dialError("socks", err)}
	}
	return addrs, nil
}

func (h *socksHandler) ResolvePTR(ctx context.Context, r *socks5.Request) (string, error) {
	k, err := h.c.ready(ctx, "socks")
	if err != nil {
		return "", socksError{err}
	}
	ip, err := netip.ParseAddr(r.Host)
	if err != nil {
		return "", socksError{&Error{Kind: KindBadAddress, Op: "socks", Err: err}}
	}
	names, err := k.circs.ResolvePTR(ctx, h.key(r), ip)
	if err != nil {
		return "", socksError{dialError("socks", err)}
	}
	if len(names) == 0 {
		return "", socksError{&Error{Kind: KindExitRefused, Op: "socks", Err: errors.New("no name")}}
	}
	return names[0], nil
}

// socksError maps an sdk error to a SOCKS5 reply code.
type socksError struct{ err error }

func (e socksError) Error() string { return e.err.Error() }
func (e socksError) Unwrap() error { return e.err }

func (e socksError) SOCKSReply() byte {
	var se *Error
	if !errors.As(e.err, &se) {
		return socks5.ReplyGeneralFailure
	}
	switch se.Kind {
	case KindExitRefused:
		return socks5.ReplyConnRefused
	case KindNoPath:
		return socks5.ReplyNotAllowed
	case KindTimeout:
		return socks5.ReplyTTLExpired
	case KindBadAddress:
		return socks5.ReplyAddrNotSupported
	case KindNetwork:
		return socks5.ReplyHostUnreachable
	}
	return socks5.ReplyGeneralFailure
}

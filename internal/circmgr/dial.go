package circmgr

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/onionlite/onionlite/internal/cell"
	"github.com/onionlite/onionlite/internal/safelog"
	"github.com/onionlite/onionlite/internal/stream"
	"github.com/onionlite/onionlite/pathsel"
)

// errBeginTimeout ends a BEGIN or RESOLVE that went unanswered;
// errDialTimeout ends a request at Config.DialTimeout.
var (
	errBeginTimeout = errors.New("no answer from the exit")
	errDialTimeout  = errors.New("request took longer than the dial timeout")
)

// request is one Dial, Resolve or ResolvePTR going through its retries.
type request struct {
	op           string
	avoid        map[[20]byte]bool // relays that failed this request
	attempts     int               // circuits the request was sent on
	builds       int               // failed builds waited for
	resolveFails int               // RESOLVEFAILED, MISC, NOROUTE (C tor's MAX_RESOLVE_FAILURES)
	// undecidedSince: when the request first waited for circuits whose
	// guard was undecided.
	undecidedSince time.Time
	kind, last     error
}

func newRequest(op string) *request {
	return &request{op: op, avoid: make(map[[20]byte]bool)}
}

func (r *request) note(kind, err error) { r.kind, r.last = kind, err }

// fail turns err (from the pool, or the context) into the *Error the
// caller sees.
func (r *request) fail(ctx context.Context, err error) *Error {
	e := &Error{Op: r.op, Kind: ErrCircuitFailed, Err: err, Attempts: r.attempts, Builds: r.builds}
	var ke *kindError
	switch {
	case ctx.Err() != nil:
		cause := context.Cause(ctx)
		switch {
		case errors.Is(cause, ErrClosed):
			e.Kind, e.Err = ErrClosed, nil
		case errors.Is(cause, context.Canceled):
			e.Kind, e.Err = context.Canceled, r.last
		default:
			e.Kind, e.Err = ErrTimeout, cause
			if r.last != nil {
				e.Err = fmt.Errorf("%w; last failure: %w", cause, r.last)
			}
		}
	case errors.Is(err, ErrClosed):
		e.Kind, e.Err = ErrClosed, nil
	case errors.As(err, &ke):
		e.Kind, e.Err = ke.kind, ke.err
	case err == nil:
		e.Kind, e.Err = r.kind, r.last
	}
	if e.Kind == nil {
		e.Kind = ErrCircuitFailed
	}
	return e
}

// checkHost validates a destination host and returns it as BEGIN carries
// it (IPv6 literals without brackets).
func checkHost(host string) (string, error) {
	if strings.HasPrefix(host, "[") && strings.HasSuffix(host, "]") {
		host = host[1 : len(host)-1]
	}
	switch {
	case host == "":
		return "", errors.New("empty host")
	case len(host) > 255:
		return "", errors.New("host longer than 255 bytes")
	case strings.ContainsFunc(host, func(r rune) bool { return r < 0x21 || r == 0x7f }):
		return "", errors.New("host contains control characters or spaces")
	case strings.HasSuffix(strings.ToLower(strings.TrimSuffix(host, ".")), ".onion"):
		return "", errors.New("onion services are not supported")
	}
	if strings.Contains(host, ":") {
		if a, err := netip.ParseAddr(host); err != nil || !a.Is6() {
			return "", errors.New("host with a colon is not an IPv6 address")
		}
	}
	return host, nil
}

// requestContext bounds a request by Config.DialTimeout when ctx has no
// deadline, and ends it when the manager closes.
func (m *Manager) requestContext(ctx context.Context) (context.Context, context.CancelFunc) {
	d := m.cfg.DialTimeout
	if _, ok := ctx.Deadline(); ok || d < 0 {
		d = -1
	}
	return m.withTimeout(ctx, d, errDialTimeout)
}

// withTimeout returns a context that ends with ctx, at Close, or (d >= 0)
// after d on the manager's clock with cause.
func (m *Manager) withTimeout(ctx context.Context, d time.Duration, cause error) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancelCause(ctx)
	var timer <-chan time.Time
	if d >= 0 {
		timer = m.clk.After(d)
	}
	go func() {
		select {
		case <-timer:
			cancel(cause)
		case <-m.ctx.Done():
			cancel(ErrClosed)
		case <-ctx.Done():
		}
	}()
	return ctx, func() { cancel(context.Canceled) }
}

// noteActivity keeps preemptive circuits coming (path-spec 2.1.1: a
// client predicts use only for an hour after the last request).
func (m *Manager) noteActivity() {
	m.mu.Lock()
	wasIdle := m.clk.Now().Sub(m.lastActivity) >= PredictionWindow
	m.lastActivity = m.clk.Now()
	m.mu.Unlock()
	if wasIdle {
		m.wake()
	}
}

// Dial opens a stream from an exit to host:port over a circuit of key:
// an open one that fits, one being built, or a new one. host is sent to
// the exit as given (a name is never resolved locally; IPv6 literals may
// come in brackets). Refusals are retried on other circuits as C tor
// does (see the package doc). Errors are *Error.
func (m *Manager) Dial(ctx context.Context, key IsolationKey, host string, port uint16) (*stream.Stream, error) {
	r := newRequest("dial")
	h, err := checkHost(host)
	if err == nil && port == 0 {
		err = errors.New("port 0")
	}
	if err != nil {
		m.countFailure()
		return nil, &Error{Op: r.op, Kind: ErrBadTarget, Err: err}
	}
	// A name or an IPv4 literal: IPv4 only at the exit (BEGIN flags 0, as
	// C tor without IPv6Traffic); an IPv6 literal needs IPv6.
	var flags uint32
	if a, err := netip.ParseAddr(h); err == nil && a.Is6() && !a.Is4In6() {
		flags = cell.BeginIPv6OK
	}
	ctx, cancel := m.requestContext(ctx)
	defer cancel()
	m.noteActivity()
	for {
		c, err := m.getCircuit(ctx, key, port, r)
		if err != nil {
			m.countFailure()
			return nil, r.fail(ctx, err)
		}
		d := m.beginTimeout(r)
		bctx, bcancel := m.withTimeout(ctx, d, errBeginTimeout)
		r.attempts++
		s, err := c.h.Begin(bctx, h, port, flags)
		timedOut := err != nil && ctx.Err() == nil && context.Cause(bctx) == errBeginTimeout
		bcancel()
		if err == nil {
			m.mu.Lock()
			c.inflight--
			m.st.StreamsOpened++
			if m.attached != nil {
				m.attached(c, key)
			}
			m.mu.Unlock()
			return s, nil
		}
		if timedOut {
			err = fmt.Errorf("%w in %v", errBeginTimeout, d)
		}
		if !m.retry(ctx, c, port, err, r) {
			m.countFailure()
			m.logf("circmgr: %s to %v:%d failed on circuit %d: %v", r.op, safelog.S(host), port, c.id, err)
			return nil, r.fail(ctx, nil)
		}
		m.logf("circmgr: %s to %v:%d retried after circuit %d: %v", r.op, safelog.S(host), port, c.id, err)
	}
}

func (m *Manager) beginTimeout(r *request) time.Duration {
	switch {
	case m.cfg.BeginTimeout > 0:
		return m.cfg.BeginTimeout
	case r.attempts > 0:
		return beginRetryTimeout
	}
	return DefaultBeginTimeout
}

func (m *Manager) countFailure() {
	m.mu.Lock()
	m.st.Failures++
	m.mu.Unlock()
}

// getCircuit returns a circuit for a request of key to port (0: a
// RESOLVE), counted in flight: an open one, or the result of a build it
// waits for or starts.
func (m *Manager) getCircuit(ctx context.Context, key IsolationKey, port uint16, r *request) (*circ, error) {
	for {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		m.refreshNetDir()
		m.mu.Lock()
		if m.closed {
			m.mu.Unlock()
			return nil, ErrClosed
		}
		now := m.clk.Now()
		if c := m.pickLocked(key, port, now); c != nil {
			clean := !c.claimed
			m.claimLocked(c, key, now)
			m.mu.Unlock()
			if clean {
				m.wake() // a preemptive circuit may need replacing
			}
			return c, nil
		}
		avail := m.avail
		b := m.pendingForLocked(key, port)
		if b == nil && m.undecidedForLocked(key, port, now) {
			if r.undecidedSince.IsZero() {
				r.undecidedSince = now
			}
			if wait := undecidedWait - now.Sub(r.undecidedSince); wait > 0 {
				m.mu.Unlock()
				select {
				case <-avail:
				case <-m.clk.After(wait):
				case <-ctx.Done():
				}
				continue
			}
		}
		if b == nil {
			if r.builds >= m.cfg.MaxBuilds {
				m.mu.Unlock()
				return nil, &kindError{ErrBuildFailed, r.last}
			}
			t := pathsel.Target{Port: port}
			if port == 0 {
				t.Ports = m.cfg.PreemptivePorts
			}
			var err error
			if b, err = m.launchLocked(t, key, true, r.avoid, now); err != nil {
				m.mu.Unlock()
				return nil, err
			}
		}
		b.waiters++
		m.mu.Unlock()
		select {
		case <-b.done:
		case <-avail:
		case <-ctx.Done():
		}
		m.mu.Lock()
		b.waiters--
		m.mu.Unlock()
		select {
		case <-b.done:
			if b.err != nil {
				r.builds++
				r.note(ErrBuildFailed, b.err)
				if id, ok := b.blamed(); ok {
					r.avoid[id] = true
				}
			}
		default:
		}
	}
}

// retry files a failed request on circuit c and decides, as C tor's
// connection_ap_process_end_not_open does, whether to send it again on
// another circuit.
func (m *Manager) retry(ctx context.Context, c *circ, port uint16, err error, r *request) bool {
	var closeIt bool
	defer func() {
		if closeIt {
			c.h.Close()
		}
	}()
	m.mu.Lock()
	defer m.mu.Unlock()
	c.inflight--
	if ctx.Err() != nil {
		r.note(ErrCircuitFailed, err)
		return false
	}
	retry := false
	var ee *stream.EndError
	switch {
	case errors.As(err, &ee):
		r.note(ErrExitRefused, err)
		switch ee.Reason {
		case cell.EndExitPolicy:
			// The exit's summary was wrong for this destination: not
			// this exit for this port until the next directory.
			if port != 0 {
				c.rejected = append(c.rejected, port)
				m.banLocked(c.exit(), port)
			}
			r.avoid[c.exit()] = true
			retry = true
		case cell.EndResolveFailed, cell.EndMisc, cell.EndNoRoute:
			if ee.Reason == cell.EndResolveFailed {
				r.note(ErrResolveFailed, err)
			}
			c.unusable = true
			r.resolveFails++
			retry = r.resolveFails < maxResolveFailures
		case cell.EndHibernating, cell.EndResourceLimit:
			m.banLocked(c.exit(), 0)
			c.unusable = true
			retry = true
		case cell.EndTorProtocol, cell.EndDestroy:
			// Could be a tagging attack on the circuit: drop it.
			c.unusable, closeIt = true, true
		}
	case errors.Is(err, errBeginTimeout):
		// C tor makes the circuit too dirty for new streams and tries
		// another.
		r.note(ErrTimeout, err)
		c.unusable = true
		retry = true
	default:
		// The circuit died under the request, or could not send it.
		r.note(ErrCircuitFailed, err)
		c.unusable = true
		retry = true
	}
	if r.attempts >= m.cfg.MaxAttempts {
		retry = false
	}
	if retry {
		m.st.Retries++
	}
	return retry
}

// Resolve asks an exit on a circuit of key for host's addresses (the SOCKS
// RESOLVE extension). An IP literal is returned as it is. Errors are
// *Error; a name the exit cannot resolve is ErrResolveFailed.
func (m *Manager) Resolve(ctx context.Context, key IsolationKey, host string) ([]netip.Addr, error) {
	h, err := checkHost(host)
	if err != nil {
		m.countFailure()
		return nil, &Error{Op: "resolve", Kind: ErrBadTarget, Err: err}
	}
	if a, err := netip.ParseAddr(h); err == nil {
		return []netip.Addr{a.Unmap()}, nil
	}
	answers, err := m.resolve(ctx, "resolve", key, h)
	if err != nil {
		return nil, err
	}
	var out []netip.Addr
	for _, a := range answers {
		if (a.Type == cell.AnswerIPv4 || a.Type == cell.AnswerIPv6) && a.Addr.IsValid() {
			out = append(out, a.Addr.Unmap())
		}
	}
	if len(out) == 0 {
		m.countFailure()
		return nil, &Error{Op: "resolve", Kind: ErrResolveFailed, Err: errors.New("no address in the answer")}
	}
	return out, nil
}

// ResolvePTR asks an exit on a circuit of key for addr's names (the SOCKS
// RESOLVE_PTR extension). Errors are *Error.
func (m *Manager) ResolvePTR(ctx context.Context, key IsolationKey, addr netip.Addr) ([]string, error) {
	if !addr.IsValid() {
		m.countFailure()
		return nil, &Error{Op: "resolve-ptr", Kind: ErrBadTarget, Err: errors.New("invalid address")}
	}
	answers, err := m.resolve(ctx, "resolve-ptr", key, reverseName(addr))
	if err != nil {
		return nil, err
	}
	var out []string
	for _, a := range answers {
		if a.Type == cell.AnswerHostname && len(a.Value) > 0 {
			out = append(out, string(a.Value))
		}
	}
	if len(out) == 0 {
		m.countFailure()
		return nil, &Error{Op: "resolve-ptr", Kind: ErrResolveFailed, Err: errors.New("no name in the answer")}
	}
	return out, nil
}

// reverseName is the in-addr.arpa or ip6.arpa name of a.
func reverseName(a netip.Addr) string {
	a = a.Unmap()
	var b strings.Builder
	if a.Is4() {
		v := a.As4()
		fmt.Fprintf(&b, "%d.%d.%d.%d.in-addr.arpa", v[3], v[2], v[1], v[0])
		return b.String()
	}
	v := a.As16()
	const hexd = "0123456789abcdef"
	for k := 15; k >= 0; k-- {
		b.WriteByte(hexd[v[k]&0xf])
		b.WriteByte('.')
		b.WriteByte(hexd[v[k]>>4])
		b.WriteByte('.')
	}
	b.WriteString("ip6.arpa")
	return b.String()
}

// resolve sends RESOLVE for q with Dial's retry rules. A transient error
// answer counts as RESOLVEFAILED; a permanent one is final.
func (m *Manager) resolve(ctx context.Context, op string, key IsolationKey, q string) ([]cell.Answer, error) {
	r := newRequest(op)
	ctx, cancel := m.requestContext(ctx)
	defer cancel()
	m.noteActivity()
	for {
		c, err := m.getCircuit(ctx, key, 0, r)
		if err != nil {
			m.countFailure()
			return nil, r.fail(ctx, err)
		}
		d := m.beginTimeout(r)
		rctx, rcancel := m.withTimeout(ctx, d, errBeginTimeout)
		r.attempts++
		answers, err := c.h.Resolve(rctx, q)
		if err != nil && ctx.Err() == nil && context.Cause(rctx) == errBeginTimeout {
			err = fmt.Errorf("%w in %v", errBeginTimeout, d)
		}
		rcancel()
		if err == nil {
			var transient, permanent bool
			ok := false
			for _, a := range answers {
				switch a.Type {
				case cell.AnswerErrorTransient:
					transient = true
				case cell.AnswerErrorPermanent:
					permanent = true
				default:
					ok = true
				}
			}
			switch {
			case ok:
				m.mu.Lock()
				c.inflight--
				m.st.Resolves++
				if m.attached != nil {
					m.attached(c, key)
				}
				m.mu.Unlock()
				return answers, nil
			case permanent || !transient:
				m.mu.Lock()
				c.inflight--
				m.st.Failures++
				m.mu.Unlock()
				r.note(ErrResolveFailed, errors.New("the exit answered that the name does not resolve"))
				return nil, r.fail(ctx, nil)
			}
			err = &stream.EndError{Reason: cell.EndResolveFailed}
		}
		if !m.retry(ctx, c, 0, err, r) {
			m.countFailure()
			return nil, r.fail(ctx, nil)
		}
	}
}

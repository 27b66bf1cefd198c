package testnet

import (
	"bufio"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// controlConn is a minimal tor control-port client: one command at a
// time, with asynchronous events (650) handed to onEvent from the reader
// goroutine. It counts the bytes it reads and writes, so callers can take
// their own control traffic out of tor's traffic counters.
type controlConn struct {
	c       net.Conn
	onEvent func(lines []string)

	read, written atomic.Int64

	cmdMu   sync.Mutex
	replies chan controlReply
	done    chan struct{}
	errMu   sync.Mutex
	err     error
}

type controlReply struct {
	code  int
	lines []string // each line's text after "NNN-", "NNN+", "NNN "; data lines joined with \n
}

type countingConn struct {
	net.Conn
	cc *controlConn
}

func (c countingConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.cc.read.Add(int64(n))
	return n, err
}

func (c countingConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	c.cc.written.Add(int64(n))
	return n, err
}

// dialControl connects to 127.0.0.1:port and authenticates with the
// cookie tor names in PROTOCOLINFO.
func dialControl(ctx context.Context, port int, onEvent func([]string)) (*controlConn, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp4", "127.0.0.1:"+strconv.Itoa(port))
	if err != nil {
		return nil, err
	}
	cc := &controlConn{onEvent: onEvent, replies: make(chan controlReply, 1), done: make(chan struct{})}
	cc.c = countingConn{c, cc}
	go cc.readLoop()
	stop := context.AfterFunc(ctx, func() { c.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	if err := cc.authenticate(); err != nil {
		cc.close()
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, err
	}
	return cc, nil
}

func (cc *controlConn) authenticate() error {
	r, err := cc.do("PROTOCOLINFO 1")
	if err != nil {
		return err
	}
	cookieFile := ""
	for _, l := range r.lines {
		if rest, ok := strings.CutPrefix(l, "AUTH "); ok {
			_, after, ok := strings.Cut(rest, `COOKIEFILE="`)
			if ok {
				end := strings.IndexByte(after, '"')
				if end < 0 {
					return fmt.Errorf("control: bad PROTOCOLINFO line %q", l)
				}
				cookieFile = after[:end]
			}
		}
	}
	if cookieFile == "" {
		return errors.New("control: tor offers no cookie authentication")
	}
	cookie, err := os.ReadFile(cookieFile)
	if err != nil {
		return fmt.Errorf("control: %w", err)
	}
	if len(cookie) != 32 {
		return fmt.Errorf("control: cookie file %s holds %d bytes, want 32", cookieFile, len(cookie))
	}
	_, err = cc.do("AUTHENTICATE " + hex.EncodeToString(cookie))
	return err
}

func (cc *controlConn) readLoop() {
	defer close(cc.done)
	br := bufio.NewReader(cc.c)
	var cur controlReply
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			cc.fail(err)
			return
		}
		line = strings.TrimRight(line, "\r\n")
		if len(line) < 4 {
			cc.fail(fmt.Errorf("control: short line %q", line))
			return
		}
		code, err := strconv.Atoi(line[:3])
		if err != nil {
			cc.fail(fmt.Errorf("control: bad line %q", line))
			return
		}
		text := line[4:]
		if line[3] == '+' {
			var data []string
			for {
				dl, err := br.ReadString('\n')
				if err != nil {
					cc.fail(err)
					return
				}
				dl = strings.TrimRight(dl, "\r\n")
				if dl == "." {
					break
				}
				data = append(data, strings.TrimPrefix(dl, "."))
			}
			text += "\n" + strings.Join(data, "\n")
		}
		cur.code = code
		cur.lines = append(cur.lines, text)
		if line[3] != ' ' {
			continue
		}
		r := cur
		cur = controlReply{}
		if code == 650 {
			if cc.onEvent != nil {
				cc.onEvent(r.lines)
			}
			continue
		}
		select {
		case cc.replies <- r:
		default:
			cc.fail(errors.New("control: unexpected reply"))
			return
		}
	}
}

func (cc *controlConn) fail(err error) {
	cc.errMu.Lock()
	if cc.err == nil {
		cc.err = err
	}
	cc.errMu.Unlock()
	cc.c.Close()
}

func (cc *controlConn) closedErr() error {
	cc.errMu.Lock()
	defer cc.errMu.Unlock()
	if cc.err == nil {
		return errors.New("control: connection closed")
	}
	return fmt.Errorf("control: connection closed: %w", cc.err)
}

// do sends one command and returns its 2xx reply.
func (cc *controlConn) do(cmd string) (controlReply, error) {
	cc.cmdMu.Lock()
	defer cc.cmdMu.Unlock()
	if _, err := cc.c.Write([]byte(cmd + "\r\n")); err != nil {
		return controlReply{}, fmt.Errorf("control: %w", err)
	}
	select {
	case r := <-cc.replies:
		if r.code/100 != 2 {
			return r, fmt.Errorf("control: %s: %d %s", strings.Fields(cmd)[0], r.code, strings.Join(r.lines, " "))
		}
		return r, nil
	case <-cc.done:
		return controlReply{}, cc.closedErr()
	}
}

// getinfo returns the values of keys, in order.
func (cc *controlConn) getinfo(keys ...string) ([]string, error) {
	r, err := cc.do("GETINFO " + strings.Join(keys, " "))
	if err != nil {
		return nil, err
	}
	vals := map[string]string{}
	for _, l := range r.lines {
		k, v, ok := strings.Cut(l, "=")
		if !ok {
			continue
		}
		vals[k] = strings.TrimPrefix(v, "\n")
	}
	out := make([]string, len(keys))
	for i, k := range keys {
		v, ok := vals[k]
		if !ok {
			return nil, fmt.Errorf("control: GETINFO %s: no value", k)
		}
		out[i] = v
	}
	return out, nil
}

func (cc *controlConn) close() {
	cc.c.Close()
	<-cc.done
}

// parseBootstrap reads PROGRESS=N (and SUMMARY) from a bootstrap status
// line: "NOTICE BOOTSTRAP PROGRESS=100 TAG=done SUMMARY="Done"".
func parseBootstrap(s string) (progress int, summary string, ok bool) {
	if !strings.Contains(s, "BOOTSTRAP") {
		return 0, "", false
	}
	for _, f := range strings.Fields(s) {
		if v, found := strings.CutPrefix(f, "PROGRESS="); found {
			p, err := strconv.Atoi(v)
			if err != nil || p < 0 || p > 100 {
				return 0, "", false
			}
			progress, ok = p, true
		}
	}
	if _, after, found := strings.Cut(s, `SUMMARY="`); found {
		summary, _, _ = strings.Cut(after, `"`)
	}
	return progress, summary, ok
}

package transport

import (
	"bytes"
	"context"
	"net"
	"sync"
	"testing"
	"time"
)

// scriptConn is a net.Conn whose reads come from a fixed script (a proxy's
// replies) and whose writes are recorded.
type scriptConn struct {
	r       *bytes.Reader
	mu      sync.Mutex
	written bytes.Buffer
}

func (c *scriptConn) Read(p []byte) (int, error) { return c.r.Read(p) }
func (c *scriptConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.written.Write(p)
}
func (c *scriptConn) Close() error                     { return nil }
func (c *scriptConn) LocalAddr() net.Addr              { return &net.TCPAddr{} }
func (c *scriptConn) RemoteAddr() net.Addr             { return &net.TCPAddr{} }
func (c *scriptConn) SetDeadline(time.Time) error      { return nil }
func (c *scriptConn) SetReadDeadline(time.Time) error  { return nil }
func (c *scriptConn) SetWriteDeadline(time.Time) error { return nil }

type dialerFunc func(ctx context.Context, network, addr string) (net.Conn, error)

func (f dialerFunc) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	return f(ctx, network, addr)
}

// FuzzSOCKS5Replies answers the SOCKS5 client with arbitrary bytes, as a
// broken or hostile upstream proxy would. Nothing panics; a dial succeeds
// only after a version-5 method choice we offered and a version-5 success
// reply; the password is sent only to a proxy that chose
// username/password; a name is sent as a name, never resolved. Seeds:
// the replies of a conforming proxy for each address type and method.
func FuzzSOCKS5Replies(f *testing.F) {
	ok4 := []byte{5, 0, 0, 1, 127, 0, 0, 1, 0x23, 0x28}
	f.Add(append([]byte{5, 0}, ok4...), false)
	f.Add(append([]byte{5, 2, 1, 0}, ok4...), true)
	f.Add([]byte{5, 0, 5, 0, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 80}, false)
	f.Add([]byte{5, 0, 5, 0, 0, 3, 9, 'l', 'o', 'c', 'a', 'l', 'h', 'o', 's', 't', 0, 80}, false)
	f.Add([]byte{5, 0, 5, 5, 0, 1, 0, 0, 0, 0, 0, 0}, false)
	f.Add([]byte{5, 0xff}, true)
	f.Fuzz(func(t *testing.T, script []byte, auth bool) {
		conn := &scriptConn{r: bytes.NewReader(script)}
		s := &SOCKS5{Addr: "127.0.0.1:1080", Forward: dialerFunc(func(context.Context, string, string) (net.Conn, error) { return conn, nil })}
		if auth {
			s.Username, s.Password = "user-x", "secret-password"
		}
		c, err := s.DialContext(context.Background(), "tcp", "relay.invalid:9001")
		conn.mu.Lock()
		written := bytes.Clone(conn.written.Bytes())
		conn.mu.Unlock()
		if bytes.Contains(written, []byte("secret-password")) && !(len(script) >= 2 && script[0] == 5 && script[1] == 2) {
			t.Fatalf("password sent to a proxy that did not ask for it (reply %x)", script[:min(2, len(script))])
		}
		if len(written) > 0 && !bytes.Contains(written, []byte("\x03\x0drelay.invalid")) && err == nil {
			t.Fatal("the name was not sent as a name")
		}
		if err != nil {
			return
		}
		if c == nil || len(script) < 2+4 || script[0] != 5 || (script[1] != 0 && script[1] != 2) {
			t.Fatalf("dial succeeded on reply %x", script)
		}
	})
}

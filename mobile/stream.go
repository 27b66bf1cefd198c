package onionlite

import (
	"bytes"
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// Stream is a TCP stream through Tor, from Client.Dial. Read and Write may
// be called from two threads at once (one reading, one writing); Close
// from any thread unblocks both.
type Stream struct {
	c    *Client
	conn net.Conn

	rmu    sync.Mutex // serialises Read and guards buf
	buf    []byte
	closed atomic.Bool
}

// Read blocks until data arrives and returns at most max bytes of it (and
// never more than MaxRead); it never returns an empty result. At the end
// of the stream it fails with kind eof (an exception or NSError whose
// message starts with "[eof] "): an empty result cannot be told from nil
// across the bridge, and Swift turns a nil result into an error anyway.
// max must be positive.
func (s *Stream) Read(max int64) (data []byte, err error) {
	defer recoverTo(&err)
	if err := s.check(); err != nil {
		return nil, err
	}
	if max <= 0 {
		return nil, errorf(KindConfig, "read: max must be positive")
	}
	max = min(max, MaxRead)
	s.rmu.Lock()
	defer s.rmu.Unlock()
	if int64(len(s.buf)) < max {
		s.buf = make([]byte, max)
	}
	for {
		n, err := s.conn.Read(s.buf[:max])
		if n > 0 {
			// A copy: the bridge converts the result after this returns
			// and the lock is released, when another Read may reuse buf.
			// Data comes before any error; the error recurs next time.
			return bytes.Clone(s.buf[:n]), nil
		}
		switch {
		case err == io.EOF:
			return nil, errorf(KindEOF, "read: end of stream")
		case err != nil:
			return nil, s.c.stoppedOr(err)
		}
	}
}

// Write sends all of data and returns its length, or fails. Large
// payloads are better written in pieces of MaxRead bytes or so: each call
// copies its argument across the bridge.
func (s *Stream) Write(data []byte) (written int64, err error) {
	defer recoverTo(&err)
	if err := s.check(); err != nil {
		return 0, err
	}
	w, err := s.conn.Write(data)
	if err != nil {
		return int64(w), s.c.stoppedOr(err)
	}
	return int64(w), nil
}

// SetDeadline makes reads and writes that have not finished millis
// milliseconds from now fail with kind timeout; 0 clears the deadline.
func (s *Stream) SetDeadline(millis int64) (err error) {
	defer recoverTo(&err)
	t, err := s.deadline(millis)
	if err != nil {
		return err
	}
	return wrap(s.conn.SetDeadline(t))
}

// SetReadDeadline is SetDeadline for reads only.
func (s *Stream) SetReadDeadline(millis int64) (err error) {
	defer recoverTo(&err)
	t, err := s.deadline(millis)
	if err != nil {
		return err
	}
	return wrap(s.conn.SetReadDeadline(t))
}

// SetWriteDeadline is SetDeadline for writes only.
func (s *Stream) SetWriteDeadline(millis int64) (err error) {
	defer recoverTo(&err)
	t, err := s.deadline(millis)
	if err != nil {
		return err
	}
	return wrap(s.conn.SetWriteDeadline(t))
}

// deadline turns milliseconds from now into a net.Conn deadline, which is
// wall-clock time by that interface's contract.
func (s *Stream) deadline(millis int64) (time.Time, error) {
	if err := s.check(); err != nil {
		return time.Time{}, err
	}
	switch {
	case millis == 0:
		return time.Time{}, nil
	case millis < 0:
		return time.Time{}, errorf(KindConfig, "deadline: %d ms is negative", millis)
	}
	return time.Now().Add(time.Duration(millis) * time.Millisecond), nil
}

// Close closes the stream; blocked reads and writes return. A second
// Close does nothing.
func (s *Stream) Close() (err error) {
	defer recoverTo(&err)
	if err := s.check(); err != nil {
		return err
	}
	if s.closed.Swap(true) {
		return nil
	}
	s.c.streamsOpen.Add(-1)
	err = s.conn.Close()
	s.rmu.Lock()
	s.buf = nil
	s.rmu.Unlock()
	if errors.Is(err, net.ErrClosed) || s.c.ctx.Err() != nil {
		return nil // closed already, by Stop
	}
	return wrap(err)
}

// check refuses a Stream that Client.Dial did not make (gobind gives Java
// and Objective-C a constructor for every struct).
func (s *Stream) check() error {
	if s == nil || s.conn == nil || s.c == nil {
		return errorf(KindConfig, "this Stream was not opened by Client.Dial")
	}
	return nil
}

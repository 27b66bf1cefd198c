package sdk

import (
	"context"
	"errors"
	"fmt"
	"io"
	"testing"

	"github.com/onionlite/onionlite/internal/channel"
	"github.com/onionlite/onionlite/internal/circuit"
)

// TestConnErrorKinds: a stream whose channel failed under it (a relay
// died, the connection was reset) reads as KindNetwork, although the
// channel's error also says "closed"; a channel we closed, or any failure
// after the client was closed, reads as KindClosed.
func TestConnErrorKinds(t *testing.T) {
	live := &core{ctx: context.Background()}
	ended, cancel := context.WithCancel(context.Background())
	cancel()
	closed := &core{ctx: ended}
	failed := &circuit.ChannelClosedError{Err: fmt.Errorf("%w (%w)", channel.ErrClosed, io.ErrUnexpectedEOF)}
	local := &circuit.ChannelClosedError{Err: channel.ErrClosed}
	for _, tc := range []struct {
		name string
		k    *core
		err  error
		want Kind
	}{
		{"channel failed", live, failed, KindNetwork},
		{"channel failed, wrapped", live, fmt.Errorf("stream: %w", failed), KindNetwork},
		{"channel closed by us", live, local, KindClosed},
		{"channel failed after the client closed", closed, failed, KindClosed},
	} {
		err := (&conn{k: tc.k}).error("read", tc.err)
		var e *Error
		if !errors.As(err, &e) || e.Kind != tc.want {
			t.Errorf("%s: %v, want kind %v", tc.name, err, tc.want)
		}
	}
}

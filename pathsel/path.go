package pathsel

import (
	"errors"
	"fmt"
	"slices"

	"github.com/onionlite/onionlite/dircache/netdir"
)

// DefaultPreemptivePorts are the ports a preemptive exit circuit serves
// when the caller names none: C tor predicts port 80 at startup; 443 is
// today's common case.
var DefaultPreemptivePorts = []uint16{80, 443}

// LongLivedPorts are the ports whose streams need Stable relays (C tor's
// LongLivedPorts default, path-spec 2.2).
var LongLivedPorts = []uint16{21, 22, 706, 1863, 5050, 5190, 5222, 5223, 6523, 6667, 6697, 8300}

// Target describes what an exit circuit is for.
type Target struct {
	// Port is the destination port, or 0 when it is not known yet (a
	// preemptive circuit).
	Port uint16
	// Ports, used when Port is 0, are the ports the circuit should
	// serve: the exit allows at least one of them if any exit does, else
	// any exit is taken (as C tor does). Nil means
	// DefaultPreemptivePorts.
	Ports []uint16
	// NeedStable asks for Stable relays at every hop; it is implied when
	// Port is a long-lived port.
	NeedStable bool
}

// Path indices.
const (
	HopGuard = iota
	HopMiddle
	HopExit
)

// BuildPath chooses a three-hop exit path [guard, middle, exit] as
// path-spec 2.2 describes: the exit first, by exit weights, allowing
// t.Port (or one of t.Ports); then the middle, by middle weights. All
// hops are Fast (client circuits need capacity), Stable for long-lived
// ports, and no two share a family or subnet.
//
// guard is the first hop a guard manager picked; the exit and middle
// avoid its family and subnet. If guard is netdir.NoRelay, the guard is
// chosen here after the exit, by guard weights, as C tor's order has it.
//
// If no relay fits with Fast/Stable, the choice is retried without them,
// as C tor does. Errors match ErrNoExitForPort, ErrNoCandidate or
// ErrGuardUnusable.
func (s *Selector) BuildPath(guard netdir.RelayIndex, t Target, r Rand) ([3]netdir.RelayIndex, error) {
	path := [3]netdir.RelayIndex{netdir.NoRelay, netdir.NoRelay, netdir.NoRelay}
	if guard != netdir.NoRelay {
		if int(guard) >= s.nd.Len() || !s.nd.Flags(guard).Has(usable) {
			return path, fmt.Errorf("%w: relay %d", ErrGuardUnusable, guard)
		}
		path[HopGuard] = guard
	}
	base := Options{NeedFast: true, NeedStable: t.NeedStable || (t.Port != 0 && slices.Contains(LongLivedPorts, t.Port))}
	choose := func(p Position, o Options) (netdir.RelayIndex, error) {
		i, err := s.Select(p, o, r)
		if errors.Is(err, ErrNoCandidate) && (o.NeedFast || o.NeedStable) {
			o.NeedFast, o.NeedStable = false, false
			i, err = s.Select(p, o, r)
		}
		return i, err
	}
	var placedBuf [3]netdir.RelayIndex
	placed := func() []netdir.RelayIndex {
		out := placedBuf[:0]
		for _, x := range path {
			if x != netdir.NoRelay {
				out = append(out, x)
			}
		}
		return out
	}

	eo := base
	eo.Exclude = placed()
	var err error
	if t.Port != 0 {
		eo.Port = t.Port
		path[HopExit], err = choose(PosExit, eo)
	} else {
		eo.AnyPort = t.Ports
		if eo.AnyPort == nil {
			eo.AnyPort = DefaultPreemptivePorts
		}
		path[HopExit], err = choose(PosExit, eo)
		if errors.Is(err, ErrNoCandidate) {
			eo.AnyPort = nil
			path[HopExit], err = choose(PosExit, eo)
		}
	}
	if err != nil {
		return path, err
	}
	if guard == netdir.NoRelay {
		gopt := base
		gopt.Exclude = placed()
		if path[HopGuard], err = choose(PosGuard, gopt); err != nil {
			return path, err
		}
	}
	mo := base
	mo.Exclude = placed()
	if path[HopMiddle], err = choose(PosMiddle, mo); err != nil {
		return path, err
	}
	return path, nil
}

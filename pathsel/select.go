package pathsel

import (
	"errors"
	"fmt"
	"sort"

	"github.com/onionlite/onionlite/dircache/netdir"
)

// Position is what a relay is chosen for. It decides which relays are
// candidates and which bandwidth-weights apply.
type Position uint8

const (
	// PosGuard: first hop. Candidates have the Guard flag; weights Wgg,
	// Wgm, Wgd (non-guard exits weigh 0) times the directory-cache
	// weights. Guard managers draw their sample with it.
	PosGuard Position = iota
	// PosMiddle: a middle hop. Every usable relay, MiddleOnly ones
	// included; weights Wmg, Wmm, Wme, Wmd.
	PosMiddle
	// PosExit: last hop of an exit circuit. Candidates are neither
	// BadExit (so never MiddleOnly) nor reject every port; the Exit flag
	// itself is not required, as in C tor. Weights Weg, Wem, Wee, Wed.
	PosExit
	// PosDir: a directory cache for a one-hop BEGIN_DIR request.
	// Candidates have V2Dir; weights Wbg, Wbm, Wbe, Wbd.
	PosDir

	numPositions = iota
)

var posNames = [numPositions]string{"guard", "middle", "exit", "dir"}

func (p Position) String() string {
	if int(p) < numPositions {
		return posNames[p]
	}
	return fmt.Sprintf("position(%d)", uint8(p))
}

var posRole = [numPositions]netdir.Role{netdir.RoleGuard, netdir.RoleMiddle, netdir.RoleExit, netdir.RoleBeginDir}

// usable are the flags every candidate needs: listed as running and valid,
// microdescriptor (ntor key) known, EXTEND2 understood.
const usable = netdir.FlagRunning | netdir.FlagValid | netdir.FlagHasMicrodesc | netdir.FlagExtend2

// Errors. Match them with errors.Is; a *SelectError says which position
// and port failed.
var (
	// ErrNoCandidate: no relay fits the position and restrictions.
	ErrNoCandidate = errors.New("pathsel: no relay fits")
	// ErrNoExitForPort: no usable exit allows the target port (also
	// matches ErrNoCandidate).
	ErrNoExitForPort = errors.New("pathsel: no exit allows the port")
	// ErrGuardUnusable: the guard given to BuildPath is not a usable
	// relay of this NetDir.
	ErrGuardUnusable = errors.New("pathsel: guard is not usable")
	// ErrBadArgument: a position or relay index out of range.
	ErrBadArgument = errors.New("pathsel: bad argument")
)

// SelectError reports a position for which no relay could be chosen.
type SelectError struct {
	Position Position
	Port     uint16 // the exit port required, 0 if none
}

func (e *SelectError) Error() string {
	if e.Position == PosExit && e.Port != 0 {
		return fmt.Sprintf("pathsel: no usable exit allows port %d", e.Port)
	}
	return fmt.Sprintf("pathsel: no usable relay for the %v position", e.Position)
}

// Is matches ErrNoCandidate, and ErrNoExitForPort for an exit with a port.
func (e *SelectError) Is(target error) bool {
	return target == ErrNoCandidate || (target == ErrNoExitForPort && e.Position == PosExit && e.Port != 0)
}

// Config is fixed for a Selector. The zero value is Tor's default.
type Config struct {
	// AllowSameSubnet lets a path hold relays of one IPv4 /16 or IPv6
	// /32 (C tor's EnforceDistinctSubnets 0). Only for test networks,
	// whose relays all sit on 127.0.0.1.
	AllowSameSubnet bool
}

// Options restrict one choice. The zero value restricts nothing beyond
// the position.
type Options struct {
	NeedFast   bool // Fast flag
	NeedStable bool // Stable flag
	// Port, if not 0, must be allowed by the relay's IPv4 exit-policy
	// summary (the rule for a hostname target, path-spec 2.2.1).
	Port uint16
	// AnyPort, if not empty, requires the summary to allow at least one
	// of these ports (preemptive exit circuits).
	AnyPort []uint16
	// Exclude lists the relays already in the path: they, their families
	// and (unless Config.AllowSameSubnet) their subnets are excluded.
	Exclude []netdir.RelayIndex
	// Filter, if not nil, must return true for a relay to be chosen
	// (for example, a guard manager skipping relays already sampled).
	Filter func(netdir.RelayIndex) bool
}

// blockSize is the number of relays per cumulative-weight entry.
const blockSize = 64

// maxDraws is how often Select redraws a relay that a restriction
// excludes before it scans the restricted set instead. Both give exactly
// the restricted distribution. A draw costs about 0.3 µs and a scan of
// today's network about 120 µs, so redrawing wins while restrictions
// keep more than ~0.5% of the weight.
const maxDraws = 256

// Selector chooses relays from one NetDir. It is immutable after New and
// safe for concurrent use (each call needs its own Rand).
type Selector struct {
	nd  *netdir.NetDir
	cfg Config
	// cum[p][b] is the total weight for position p of relays 0 to
	// (b+1)*blockSize-1: about 0.5 bytes per relay for all positions.
	cum   [numPositions][]uint64
	total [numPositions]uint64
	// polRejectsAll[k]: policy pair k rejects every port.
	polRejectsAll []bool
}

// New makes a Selector for nd. It costs one pass over the relays.
func New(nd *netdir.NetDir, cfg Config) *Selector {
	s := &Selector{nd: nd, cfg: cfg, polRejectsAll: make([]bool, nd.NumPolicies())}
	for k := range s.polRejectsAll {
		s.polRejectsAll[k] = true
	}
	seen := make([]bool, nd.NumPolicies())
	n := nd.Len()
	for i := 0; i < n; i++ {
		if k := nd.PolicyIndex(netdir.RelayIndex(i)); !seen[k] {
			seen[k] = true
			s.polRejectsAll[k] = nd.RejectsAll(netdir.RelayIndex(i))
		}
	}
	nb := (n + blockSize - 1) / blockSize
	for p := Position(0); p < numPositions; p++ {
		cum := make([]uint64, nb)
		var sum uint64
		for i := 0; i < n; i++ {
			sum += s.weight(p, i)
			if i%blockSize == blockSize-1 || i == n-1 {
				cum[i/blockSize] = sum
			}
		}
		s.cum[p], s.total[p] = cum, sum
	}
	return s
}

// NetDir returns the NetDir the Selector chooses from.
func (s *Selector) NetDir() *netdir.NetDir { return s.nd }

// Eligible reports whether relay i is a candidate for position p before
// any Options: usable, and with the flags and policy the position needs.
func (s *Selector) Eligible(p Position, i netdir.RelayIndex) bool {
	if int(p) >= numPositions || int(i) >= s.nd.Len() {
		return false
	}
	return s.eligible(p, int(i))
}

func (s *Selector) eligible(p Position, i int) bool {
	f := s.nd.Flags(netdir.RelayIndex(i))
	if !f.Has(usable) {
		return false
	}
	switch p {
	case PosGuard:
		return f&netdir.FlagGuard != 0
	case PosExit:
		return f&netdir.FlagBadExit == 0 && !s.polRejectsAll[s.nd.PolicyIndex(netdir.RelayIndex(i))]
	case PosDir:
		return f&netdir.FlagV2Dir != 0
	}
	return true
}

// Weight returns relay i's selection weight for position p: its
// bandwidth-weighted consensus weight if it is a candidate, else 0.
// Before Options, relay i is chosen with probability Weight/TotalWeight.
func (s *Selector) Weight(p Position, i netdir.RelayIndex) uint64 {
	if int(p) >= numPositions || int(i) >= s.nd.Len() {
		return 0
	}
	return s.weight(p, int(i))
}

func (s *Selector) weight(p Position, i int) uint64 {
	if !s.eligible(p, i) {
		return 0
	}
	return s.nd.Weight(posRole[p], netdir.RelayIndex(i))
}

// TotalWeight returns the sum of Weight over all relays for position p.
func (s *Selector) TotalWeight(p Position) uint64 {
	if int(p) >= numPositions {
		return 0
	}
	return s.total[p]
}

// Select chooses a relay for position p: among the candidates that
// satisfy o, with probability proportional to Weight. If every such
// relay weighs 0, one of them is chosen uniformly (as C tor does). The
// error matches ErrNoCandidate when none fits.
func (s *Selector) Select(p Position, o Options, r Rand) (netdir.RelayIndex, error) {
	if int(p) >= numPositions {
		return netdir.NoRelay, fmt.Errorf("%w: position %d", ErrBadArgument, p)
	}
	for _, x := range o.Exclude {
		if int(x) >= s.nd.Len() {
			return netdir.NoRelay, fmt.Errorf("%w: excluded relay %d of %d", ErrBadArgument, x, s.nd.Len())
		}
	}
	if t := s.total[p]; t > 0 {
		for range maxDraws {
			i := s.draw(p, Uniform(r, t))
			if s.accept(i, &o) {
				return netdir.RelayIndex(i), nil
			}
		}
	}
	return s.scan(p, &o, r)
}

// draw returns the relay whose weight interval for position p holds x
// (0 <= x < total).
func (s *Selector) draw(p Position, x uint64) int {
	cum := s.cum[p]
	b := sort.Search(len(cum), func(b int) bool { return cum[b] > x })
	var at uint64
	if b > 0 {
		at = cum[b-1]
	}
	end := min((b+1)*blockSize, s.nd.Len())
	for i := b * blockSize; i < end; i++ {
		at += s.weight(p, i)
		if x < at {
			return i
		}
	}
	panic("BUG: pathsel: weight tables inconsistent")
}

// accept applies o to candidate i.
func (s *Selector) accept(i int, o *Options) bool {
	ri := netdir.RelayIndex(i)
	f := s.nd.Flags(ri)
	if (o.NeedFast && f&netdir.FlagFast == 0) || (o.NeedStable && f&netdir.FlagStable == 0) {
		return false
	}
	if o.Port != 0 && !s.nd.ExitPolicy(ri).Allows(o.Port) {
		return false
	}
	if len(o.AnyPort) > 0 {
		pol, ok := s.nd.ExitPolicy(ri), false
		for _, port := range o.AnyPort {
			if pol.Allows(port) {
				ok = true
				break
			}
		}
		if !ok {
			return false
		}
	}
	for _, x := range o.Exclude {
		if x == ri || s.nd.InSameFamily(ri, x) || (!s.cfg.AllowSameSubnet && s.nd.SameSubnet(ri, x)) {
			return false
		}
	}
	return o.Filter == nil || o.Filter(ri)
}

// scan chooses among the candidates satisfying o by walking all relays.
func (s *Selector) scan(p Position, o *Options, r Rand) (netdir.RelayIndex, error) {
	n := s.nd.Len()
	var total uint64
	zero := 0 // candidates of weight 0
	for i := 0; i < n; i++ {
		if !s.eligible(p, i) || !s.accept(i, o) {
			continue
		}
		if w := s.nd.Weight(posRole[p], netdir.RelayIndex(i)); w > 0 {
			total += w
		} else {
			zero++
		}
	}
	switch {
	case total > 0:
		x := Uniform(r, total)
		for i := 0; i < n; i++ {
			if !s.eligible(p, i) || !s.accept(i, o) {
				continue
			}
			w := s.nd.Weight(posRole[p], netdir.RelayIndex(i))
			if x < w {
				return netdir.RelayIndex(i), nil
			}
			x -= w
		}
		panic("BUG: pathsel: scan total inconsistent")
	case zero > 0:
		k := int(Uniform(r, uint64(zero)))
		for i := 0; i < n; i++ {
			if s.eligible(p, i) && s.accept(i, o) {
				if k == 0 {
					return netdir.RelayIndex(i), nil
				}
				k--
			}
		}
		panic("BUG: pathsel: scan count inconsistent")
	}
	return netdir.NoRelay, &SelectError{Position: p, Port: o.Port}
}

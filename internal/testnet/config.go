package testnet

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// Config describes a network. The zero value is a 3-authority, 4-middle,
// 3-exit network voting every 60 s in a new temporary directory.
type Config struct {
	// Dir is the network's root directory. "" means a new temporary
	// directory, removed by Stop unless the run failed. A Dir that already
	// holds a network (DIR/testnet.json) is restarted warm with its keys,
	// ports and counts; the counts below are then ignored.
	Dir string
	// Auths is the number of directory authorities. 0 means 3.
	Auths int
	// Relays is the number of middle relays. 0 means 4.
	Relays int
	// Exits is the number of exit relays. 0 means 3.
	Exits int
	// Interval is the voting interval. 0 means 60 s. It must be whole
	// seconds, at least 10 s, and divide 24 hours evenly.
	Interval time.Duration
	// TorPath is the tor binary. "" means "tor" from $PATH, then
	// /usr/sbin/tor and /usr/bin/tor. tor-gencert is looked up beside it,
	// then in $PATH.
	TorPath string
	// Logf receives progress messages. Nil means discard. Messages also go
	// to LOGDIR/testnet.log.
	Logf func(format string, args ...any)

	// Detached makes the nodes outlive this process ("onionlite testnet
	// up"): they run in their own session with no parent-death signal.
	// Stop still stops them; otherwise Down(dir) does.
	Detached bool
	// HTTPCommand, when Detached, is a command that serves the HTTP target
	// out of process by calling ServeHTTPTarget(ctx, Dir). It is started
	// detached too. Empty means the target is served in this process.
	HTTPCommand []string
}

// ErrTorNotFound means the tor or tor-gencert binary is missing.
var ErrTorNotFound = errors.New("testnet: tor not found (Debian/Ubuntu: apt-get install tor; or set Config.TorPath)")

// withDefaults returns a copy of c with zero fields filled in, or an error
// for values out of range. It does not modify c.
func (c Config) withDefaults() (Config, error) {
	if c.Auths == 0 {
		c.Auths = 3
	}
	if c.Relays == 0 {
		c.Relays = 4
	}
	if c.Exits == 0 {
		c.Exits = 3
	}
	if c.Interval == 0 {
		c.Interval = 60 * time.Second
	}
	switch {
	case c.Auths < 1 || c.Auths > 9:
		return c, fmt.Errorf("testnet: Auths = %d, want 1..9", c.Auths)
	case c.Relays < 0 || c.Exits < 1:
		return c, fmt.Errorf("testnet: Relays = %d, Exits = %d: want Relays >= 0 and Exits >= 1", c.Relays, c.Exits)
	case c.Auths+c.Relays+c.Exits > 90:
		return c, fmt.Errorf("testnet: %d nodes is too many (at most 90)", c.Auths+c.Relays+c.Exits)
	}
	if err := checkInterval(c.Interval); err != nil {
		return c, err
	}
	return c, nil
}

func checkInterval(d time.Duration) error {
	if d%time.Second != 0 || d < 10*time.Second {
		return fmt.Errorf("testnet: voting interval %v: want whole seconds, at least 10s", d)
	}
	if (24*time.Hour)%d != 0 {
		return fmt.Errorf("testnet: voting interval %v does not divide 24 hours evenly", d)
	}
	return nil
}

// voteTimes returns the authority voting options for interval d: the
// regular vote and distribution delays, and the initial interval and
// delays used before the first consensus. Vote+dist stays below half the
// interval, as tor requires.
func voteTimes(d time.Duration) (vote, dist, initial, initVote, initDist int) {
	s := int(d / time.Second)
	switch {
	case s < 20:
		vote, dist = 2, 2
	case s < 30:
		vote, dist = 4, 4
	default:
		vote, dist = 5, 5
	}
	initial = min(s, 10)
	if initial < 20 {
		initVote, initDist = 2, 2
	} else {
		initVote, initDist = 4, 4
	}
	return
}

// findTor resolves the tor and tor-gencert binaries.
func findTor(torPath string) (tor, gencert string, err error) {
	if torPath != "" {
		tor, err = exec.LookPath(torPath)
	} else {
		tor, err = exec.LookPath("tor")
		if err != nil {
			for _, p := range []string{"/usr/sbin/tor", "/usr/bin/tor", "/usr/local/bin/tor"} {
				if st, e := os.Stat(p); e == nil && !st.IsDir() {
					tor, err = p, nil
					break
				}
			}
		}
	}
	if err != nil {
		return "", "", fmt.Errorf("%w: %v", ErrTorNotFound, err)
	}
	gencert = filepath.Join(filepath.Dir(tor), "tor-gencert")
	if st, e := os.Stat(gencert); e != nil || st.IsDir() {
		gencert, err = exec.LookPath("tor-gencert")
		if err != nil {
			return "", "", fmt.Errorf("%w: tor-gencert: %v", ErrTorNotFound, err)
		}
	}
	return tor, gencert, nil
}

// TorAvailable reports whether tor and tor-gencert can be found for
// torPath ("" = default search), with the error explaining why not.
func TorAvailable(torPath string) error {
	_, _, err := findTor(torPath)
	return err
}

// checkPath refuses paths that a torrc line cannot hold.
func checkPath(p string) error {
	if strings.ContainsAny(p, " \t\r\n\"'#\\") {
		return fmt.Errorf("testnet: path %q: tor configuration cannot hold whitespace, quotes, '#' or '\\'", p)
	}
	return nil
}

// Role is what a node does in the network.
type Role int

const (
	// Authority is a v3 directory authority (also a relay, never an exit).
	Authority Role = iota
	// Middle is a relay with a reject-all exit policy.
	Middle
	// Exit is a relay with "ExitPolicy accept *:*", bound to 127.0.0.1.
	Exit
)

var roleNames = [...]string{"authority", "middle", "exit"}

func (r Role) String() string {
	if r >= 0 && int(r) < len(roleNames) {
		return roleNames[r]
	}
	return fmt.Sprintf("Role(%d)", int(r))
}

// MarshalText encodes r as "authority", "middle" or "exit".
func (r Role) MarshalText() ([]byte, error) {
	if r < 0 || int(r) >= len(roleNames) {
		return nil, fmt.Errorf("testnet: bad role %d", int(r))
	}
	return []byte(roleNames[r]), nil
}

// UnmarshalText decodes the names MarshalText writes.
func (r *Role) UnmarshalText(b []byte) error {
	for i, n := range roleNames {
		if string(b) == n {
			*r = Role(i)
			return nil
		}
	}
	return fmt.Errorf("testnet: unknown role %q", b)
}

// Node is one tor process of the network. Every port is on 127.0.0.1.
type Node struct {
	Nick        string
	Role        Role
	ORPort      int
	DirPort     int
	ControlPort int    // cookie authentication (DataDir/control_auth_cookie)
	Fingerprint string // RSA identity, 40 uppercase hex digits
	Ed25519ID   [32]byte
	V3Ident     string // authorities only: v3 identity, 40 uppercase hex digits
	DataDir     string
	PID         int // 0 when not running
}

// Body is one file served by the HTTP target at "/" + Name.
type Body struct {
	Name   string
	Size   int64
	SHA256 string // lowercase hex
}

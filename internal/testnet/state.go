package testnet

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/onionlite/onionlite/internal/clock"
)

// StateFile is the name of the JSON file describing a network, in its
// directory. Scripts read it: http_target, bodies and nodes are stable.
const StateFile = "testnet.json"

type stateFile struct {
	Version         int         `json:"version"`
	Dir             string      `json:"dir"`
	Auths           int         `json:"auths"`
	Relays          int         `json:"relays"`
	Exits           int         `json:"exits"`
	Interval        string      `json:"interval"`
	TorPath         string      `json:"tor_path"`
	Detached        bool        `json:"detached"`
	HTTPTarget      string      `json:"http_target"`
	HTTPPID         int         `json:"http_pid,omitempty"`
	HTTPCommand     []string    `json:"http_command,omitempty"`
	AuthoritiesFile string      `json:"authorities_file"`
	Authorities     []string    `json:"authorities"`
	Bodies          []stateBody `json:"bodies"`
	Nodes           []stateNode `json:"nodes"`
}

type stateBody struct {
	Name   string `json:"name"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
}

type stateNode struct {
	Nick        string `json:"nick"`
	Role        Role   `json:"role"`
	ORPort      int    `json:"or_port"`
	DirPort     int    `json:"dir_port"`
	ControlPort int    `json:"control_port,omitempty"`
	Fingerprint string `json:"fingerprint"`
	Ed25519ID   string `json:"ed25519_id"` // base64, no padding (as tor prints it)
	V3Ident     string `json:"v3ident,omitempty"`
	DataDir     string `json:"data_dir"`
	Torrc       string `json:"torrc"`
	PID         int    `json:"pid,omitempty"`
}

func (s *stateFile) nodes() ([]Node, error) {
	var out []Node
	for _, sn := range s.Nodes {
		nd := Node{Nick: sn.Nick, Role: sn.Role, ORPort: sn.ORPort, DirPort: sn.DirPort, ControlPort: sn.ControlPort,
			Fingerprint: sn.Fingerprint, V3Ident: sn.V3Ident, DataDir: sn.DataDir, PID: sn.PID}
		id, err := base64.RawStdEncoding.DecodeString(sn.Ed25519ID)
		if err != nil || len(id) != 32 {
			return nil, fmt.Errorf("%s: node %s: bad ed25519_id", StateFile, sn.Nick)
		}
		copy(nd.Ed25519ID[:], id)
		if !hex40.MatchString(nd.Fingerprint) || (nd.Role == Authority && !hex40.MatchString(nd.V3Ident)) {
			return nil, fmt.Errorf("%s: node %s: bad fingerprint or v3ident", StateFile, sn.Nick)
		}
		if nd.ORPort <= 0 || nd.ORPort > 65535 || nd.DirPort <= 0 || nd.DirPort > 65535 {
			return nil, fmt.Errorf("%s: node %s: bad ports", StateFile, sn.Nick)
		}
		out = append(out, nd)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s: no nodes", StateFile)
	}
	return out, nil
}

// readState reads DIR/testnet.json; a missing file is fs.ErrNotExist.
func readState(dir string) (*stateFile, error) {
	b, err := os.ReadFile(filepath.Join(dir, StateFile))
	if err != nil {
		return nil, err
	}
	var st stateFile
	if err := json.Unmarshal(b, &st); err != nil {
		return nil, fmt.Errorf("%s: %w", filepath.Join(dir, StateFile), err)
	}
	if st.Version != 1 {
		return nil, fmt.Errorf("%s: unknown version %d", filepath.Join(dir, StateFile), st.Version)
	}
	return &st, nil
}

func (n *Network) writeState() error {
	n.mu.Lock()
	st := stateFile{
		Version: 1, Dir: n.dir, Auths: n.cfg.Auths, Relays: n.cfg.Relays, Exits: n.cfg.Exits,
		Interval: n.cfg.Interval.String(), TorPath: n.torPath, Detached: n.cfg.Detached,
		HTTPTarget: n.httpAddr, AuthoritiesFile: n.AuthoritiesFile(),
	}
	if n.httpProc != nil && !n.httpProc.exited() {
		st.HTTPPID = n.httpProc.pid
		st.HTTPCommand = n.cfg.HTTPCommand
	}
	for _, nd := range n.nodes {
		if nd.Role == Authority {
			st.Authorities = append(st.Authorities, authorityLine(&nd))
		}
		st.Nodes = append(st.Nodes, stateNode{
			Nick: nd.Nick, Role: nd.Role, ORPort: nd.ORPort, DirPort: nd.DirPort, ControlPort: nd.ControlPort,
			Fingerprint: nd.Fingerprint, Ed25519ID: base64.RawStdEncoding.EncodeToString(nd.Ed25519ID[:]),
			V3Ident: nd.V3Ident, DataDir: nd.DataDir, Torrc: filepath.Join(nd.DataDir, "torrc"), PID: nd.PID,
		})
	}
	n.mu.Unlock()
	for _, b := range bodies() {
		st.Bodies = append(st.Bodies, stateBody(b))
	}
	b, err := json.MarshalIndent(&st, "", "  ")
	if err != nil {
		return err
	}
	return writeFileAtomic(filepath.Join(n.dir, StateFile), append(b, '\n'))
}

// Attach returns a Network for a network that another process runs in dir
// (for example "onionlite testnet up"). Its Stop stops only the clients
// started through it; KillNode and RestartNode refuse.
func Attach(dir string) (*Network, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	st, err := readState(abs)
	if err != nil {
		return nil, fmt.Errorf("testnet: no network in %s: %w", abs, err)
	}
	nodes, err := st.nodes()
	if err != nil {
		return nil, err
	}
	interval, _ := time.ParseDuration(st.Interval)
	n := &Network{
		cfg:     Config{Dir: abs, Auths: st.Auths, Relays: st.Relays, Exits: st.Exits, Interval: interval, TorPath: st.TorPath},
		dir:     abs,
		torPath: st.TorPath,
		clk:     clock.Real{},
		procs:   map[string]*proc{},
		nodes:   nodes,
	}
	n.httpAddr = st.HTTPTarget
	if n.torPath == "" {
		if n.torPath, _, err = findTor(""); err != nil {
			return nil, err
		}
	}
	return n, nil
}

// NodeStatus is one node in a Status report.
type NodeStatus struct {
	Node
	Alive bool
}

// ConsensusStatus summarises the consensus one authority serves.
type ConsensusStatus struct {
	From                               string // nick of the authority asked
	ValidAfter, FreshUntil, ValidUntil time.Time
	Live                               bool
	Listed, RunningValid, Exits        int
}

// Status is a snapshot of a network directory (onionlite testnet status).
type Status struct {
	Dir          string
	Nodes        []NodeStatus
	HTTPTarget   string
	HTTPAlive    bool
	Consensus    *ConsensusStatus // nil when no authority served one
	ConsensusErr string
}

// Up reports whether every node runs, the HTTP target answers and a live
// consensus lists every node Running and Valid.
func (s *Status) Up() bool {
	for _, n := range s.Nodes {
		if !n.Alive {
			return false
		}
	}
	c := s.Consensus
	return s.HTTPAlive && c != nil && c.Live && c.Listed == len(s.Nodes) && c.RunningValid == len(s.Nodes)
}

// ReadStatus reports, for the network in dir, which recorded processes
// still run (checking each PID's command line) and what consensus the
// first live authority serves.
func ReadStatus(ctx context.Context, dir string) (*Status, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	st, err := readState(abs)
	if err != nil {
		return nil, fmt.Errorf("testnet: no network in %s: %w", abs, err)
	}
	nodes, err := st.nodes()
	if err != nil {
		return nil, err
	}
	s := &Status{Dir: abs, HTTPTarget: st.HTTPTarget}
	for _, nd := range nodes {
		alive := false
		if nd.PID > 0 {
			alive, err = pidMatches(nd.PID, filepath.Join(nd.DataDir, "torrc"))
			if err != nil {
				return nil, err
			}
		}
		s.Nodes = append(s.Nodes, NodeStatus{Node: nd, Alive: alive})
	}
	if st.HTTPTarget != "" {
		if c, err := (&net.Dialer{Timeout: 2 * time.Second}).DialContext(ctx, "tcp", st.HTTPTarget); err == nil {
			c.Close()
			s.HTTPAlive = true
		}
	}
	now := clock.Real{}.Now().UTC()
	var errs []string
	for _, nd := range s.Nodes {
		if nd.Role != Authority || !nd.Alive {
			continue
		}
		b, err := dirGet(ctx, nd.DirPort, "/tor/status-vote/current/consensus")
		if err != nil {
			errs = append(errs, nd.Nick+": "+err.Error())
			continue
		}
		c, err := parseConsensus(b)
		if err != nil {
			errs = append(errs, nd.Nick+": "+err.Error())
			continue
		}
		cs := &ConsensusStatus{From: nd.Nick, ValidAfter: c.validAfter, FreshUntil: c.freshUntil, ValidUntil: c.validUntil, Live: c.live(now)}
		for _, m := range nodes {
			if r := c.router(m.Nick); r != nil {
				cs.Listed++
				if r.has("Running") && r.has("Valid") {
					cs.RunningValid++
				}
				if m.Role == Exit && r.has("Exit") {
					cs.Exits++
				}
			}
		}
		s.Consensus = cs
		break
	}
	if s.Consensus == nil {
		if len(errs) == 0 {
			errs = append(errs, "no authority is running")
		}
		s.ConsensusErr = strings.Join(errs, "; ")
	}
	return s, nil
}

// Down stops the processes recorded in dir/testnet.json: every node and
// the detached HTTP target. It signals a PID only while its command line
// still names this network's files, sends SIGTERM, waits up to 10 s, then
// SIGKILL. It returns the PIDs it stopped; a network already down is no
// error.
func Down(dir string) ([]int, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	st, err := readState(abs)
	if err != nil {
		return nil, fmt.Errorf("testnet: no network in %s: %w", abs, err)
	}
	type target struct {
		pid   int
		match []string
	}
	var targets []target
	for _, nd := range st.Nodes {
		if nd.PID > 0 {
			targets = append(targets, target{nd.PID, []string{nd.Torrc}})
		}
	}
	if st.HTTPPID > 0 && len(st.HTTPCommand) > 0 {
		targets = append(targets, target{st.HTTPPID, st.HTTPCommand[1:]})
	}
	var live []target
	for _, t := range targets {
		ok, err := pidMatches(t.pid, t.match...)
		if err != nil {
			return nil, err
		}
		if ok {
			live = append(live, t)
		}
	}
	var errs []error
	for _, t := range live {
		if err := signalPID(t.pid, false); err != nil {
			errs = append(errs, fmt.Errorf("pid %d: %w", t.pid, err))
		}
	}
	remaining := func() []target {
		var r []target
		for _, t := range live {
			if ok, _ := pidMatches(t.pid, t.match...); ok {
				r = append(r, t)
			}
		}
		return r
	}
	for i := 0; i < 100 && len(remaining()) > 0; i++ {
		time.Sleep(100 * time.Millisecond)
	}
	if r := remaining(); len(r) > 0 {
		for _, t := range r {
			signalPID(t.pid, true)
		}
		for i := 0; i < 50 && len(remaining()) > 0; i++ {
			time.Sleep(100 * time.Millisecond)
		}
	}
	var stopped []int
	for _, t := range live {
		stopped = append(stopped, t.pid)
	}
	if r := remaining(); len(r) > 0 {
		var ps []string
		for _, t := range r {
			ps = append(ps, strconv.Itoa(t.pid))
		}
		errs = append(errs, fmt.Errorf("testnet: still running after SIGKILL: %s", strings.Join(ps, ", ")))
	} else {
		for i := range st.Nodes {
			st.Nodes[i].PID, st.Nodes[i].ControlPort = 0, 0
		}
		st.HTTPPID = 0
		if b, err := json.MarshalIndent(st, "", "  "); err == nil {
			if err := writeFileAtomic(filepath.Join(abs, StateFile), append(b, '\n')); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return stopped, errors.Join(errs...)
}

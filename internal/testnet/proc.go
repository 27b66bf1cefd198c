package testnet

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"time"
)

// proc is one child process: a tor node or client, or the detached HTTP
// target. done is closed once the process has been reaped.
type proc struct {
	cmd  *exec.Cmd
	pid  int
	done chan struct{}

	mu  sync.Mutex
	err error // from Wait, valid after done
}

// startProc starts path with args, stdout and stderr appended to logPath.
// Attached processes get a parent-death signal (Linux) and their own
// process group; detached ones get their own session and outlive us.
func startProc(path string, args []string, logPath string, detached bool) (*proc, error) {
	out, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, err
	}
	defer out.Close()
	cmd := exec.Command(path, args...)
	cmd.Stdin = nil
	cmd.Stdout = out
	cmd.Stderr = out
	cmd.Env = append(os.Environ(), "LC_ALL=C")
	cmd.SysProcAttr = sysProcAttr(detached)
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s: %w", path, err)
	}
	p := &proc{cmd: cmd, pid: cmd.Process.Pid, done: make(chan struct{})}
	go func() {
		err := cmd.Wait()
		p.mu.Lock()
		p.err = err
		p.mu.Unlock()
		close(p.done)
	}()
	return p, nil
}

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

func (p *proc) waitErr() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.err
}

// stop asks the process to exit (SIGTERM; tor exits at once with
// ShutdownWaitLength 0), then kills it after grace, and waits until it has
// been reaped.
func (p *proc) stop(grace time.Duration) error {
	if p.exited() {
		return nil
	}
	terminate(p.cmd.Process)
	select {
	case <-p.done:
		return nil
	case <-time.After(grace):
	}
	p.cmd.Process.Kill()
	select {
	case <-p.done:
		return nil
	case <-time.After(10 * time.Second):
		return fmt.Errorf("process %d did not exit after SIGKILL", p.pid)
	}
}

// kill sends SIGKILL and waits until the process has been reaped.
func (p *proc) kill() error {
	if p.exited() {
		return nil
	}
	p.cmd.Process.Kill()
	select {
	case <-p.done:
		return nil
	case <-time.After(10 * time.Second):
		return fmt.Errorf("process %d did not exit after SIGKILL", p.pid)
	}
}

// errNoProcInfo means this platform cannot tell which program a PID runs.
//
//lint:ignore U1000 used by the files of other platforms
var errNoProcInfo = errors.New("testnet: cannot read process command lines on this platform")

// pidMatches reports whether pid is a live (not zombie) process whose
// command line contains every one of want. It is how Down makes sure a
// recorded PID still belongs to the network before signalling it.
func pidMatches(pid int, want ...string) (bool, error) {
	if pid <= 0 {
		return false, nil
	}
	args, err := cmdline(pid)
	if err != nil {
		return false, err
	}
	if len(args) == 0 {
		return false, nil // gone or a zombie
	}
	joined := strings.Join(args, "\x00")
	for _, w := range want {
		if !strings.Contains(joined, w) {
			return false, nil
		}
	}
	return true, nil
}

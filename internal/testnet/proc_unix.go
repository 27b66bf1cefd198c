//go:build unix && !linux

package testnet

import (
	"errors"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
)

func sysProcAttr(detached bool) *syscall.SysProcAttr {
	if detached {
		return &syscall.SysProcAttr{Setsid: true}
	}
	return &syscall.SysProcAttr{Setpgid: true}
}

func terminate(p *os.Process) { p.Signal(syscall.SIGTERM) }

func signalPID(pid int, kill bool) error {
	sig := syscall.SIGTERM
	if kill {
		sig = syscall.SIGKILL
	}
	return syscall.Kill(pid, sig)
}

// cmdline asks ps for the arguments of pid. Arguments are split at spaces,
// which is enough for matching the paths this package writes (they never
// hold whitespace).
func cmdline(pid int) ([]string, error) {
	out, err := exec.Command("ps", "-o", "stat=,args=", "-p", strconv.Itoa(pid)).Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return nil, nil // no such process
		}
		return nil, err
	}
	f := strings.Fields(string(out))
	if len(f) < 2 || strings.HasPrefix(f[0], "Z") {
		return nil, nil
	}
	return f[1:], nil
}

func peakRSS(pid int) (int64, error) { return 0, errNoProcInfo }

func hangup(p *os.Process) error { return p.Signal(syscall.SIGHUP) }

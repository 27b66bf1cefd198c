//go:build linux

package benchrun

import (
	"errors"
	"os"
	"strconv"
	"syscall"
	"time"
)

// procCPU returns utime+stime of pid (all its threads) in seconds. It
// works for a zombie too, until the process is reaped.
func procCPU(pid int) (float64, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, err
	}
	return parseStatCPU(b)
}

// procHWM returns VmHWM (peak RSS) of pid in bytes. A zombie has none.
func procHWM(pid int) (int64, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0, err
	}
	return parseStatusKB(b, "VmHWM:")
}

// exitUsage returns the CPU seconds (user+system) and ru_maxrss in bytes
// of a reaped child, from wait4's rusage. ru_maxrss is NOT the child's
// own peak: Go starts children with vfork (CLONE_VM), and Linux folds the
// address space the child leaves at exec, the parent's, into it. A
// harness holding 50 MB reports at least 50 MB for every child. Peak RSS
// comes from the child's VmHWM instead.
func exitUsage(ps *os.ProcessState) (float64, int64, error) {
	ru, ok := ps.SysUsage().(*syscall.Rusage)
	if !ok {
		return 0, 0, errors.New("benchrun: no rusage for the child")
	}
	cpu := time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
	return cpu, ru.Maxrss << 10, nil // Maxrss is in KiB on Linux
}

// childAttr makes a child die with the harness (its parent-death signal)
// and puts it in its own process group.
func childAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}

// terminate asks a child to exit (SIGTERM).
func terminate(p *os.Process) error { return p.Signal(syscall.SIGTERM) }

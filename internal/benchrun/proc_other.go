//go:build !linux

package benchrun

import (
	"errors"
	"os"
	"syscall"
)

var errNoProc = errors.New("benchrun: per-process CPU and RSS need Linux /proc")

func procCPU(pid int) (float64, error) { return 0, errNoProc }

func procHWM(pid int) (int64, error) { return 0, errNoProc }

func exitUsage(ps *os.ProcessState) (float64, int64, error) { return 0, 0, errNoProc }

func childAttr() *syscall.SysProcAttr { return nil }

func terminate(p *os.Process) error { return p.Kill() }

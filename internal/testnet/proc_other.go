//go:build !unix

package testnet

import (
	"os"
	"syscall"
)

func sysProcAttr(detached bool) *syscall.SysProcAttr { return nil }

func terminate(p *os.Process) { p.Kill() }

func signalPID(pid int, kill bool) error {
	p, err := os.FindProcess(pid)
	if err != nil {
		return err
	}
	return p.Kill()
}

func cmdline(pid int) ([]string, error) { return nil, errNoProcInfo }

func peakRSS(pid int) (int64, error) { return 0, errNoProcInfo }

func hangup(p *os.Process) error { return errNoProcInfo }

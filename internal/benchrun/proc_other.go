//go:build !linux

package benchrun

import (
	"errors"
	"os"
)

var errNoProc = errors.New("benchrun: per-process CPU and RSS need Linux /proc")

func procCPU(pid int) (float64, error) { return 0, errNoProc }

func procHWM(pid int) (int64, error) { return 0, errNoProc }

func exitUsage(ps *os.ProcessState) (float64, int64, error) { return 0, 0, errNoProc }

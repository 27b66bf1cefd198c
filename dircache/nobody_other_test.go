//go:build !unix

package dircache

import "os/exec"

// asNobody does nothing here: the test only runs as root on unix.
func asNobody(*exec.Cmd) {}

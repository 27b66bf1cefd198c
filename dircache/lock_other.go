//go:build !(darwin || linux || freebsd || netbsd || openbsd || dragonfly)

package dircache

import "os"

// lockFile only creates path here: on these systems the store relies on
// badger's own directory lock, which does not cover the consensus files.
func lockFile(path string) (*os.File, error) {
	return os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
}

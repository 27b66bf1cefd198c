//go:build unix

package main

import (
	"io/fs"
	"path/filepath"
	"syscall"
)

// diskUse returns the allocated and apparent bytes under dir.
func diskUse(dir string) (real, apparent int64) {
	filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return nil
		}
		apparent += info.Size()
		if st, ok := info.Sys().(*syscall.Stat_t); ok {
			real += st.Blocks * 512
		}
		return nil
	})
	return real, apparent
}

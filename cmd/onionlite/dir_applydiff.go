package main

import (
	"bytes"
	"compress/gzip"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/onionlite/onionlite/internal/consdiff"
)

const applyDiffUsage = "usage: onionlite dir apply-diff --base FILE --diff FILE --out FILE"

// applyDiffMaxDoc caps each input file (a consensus is about 3.4 MB today).
const applyDiffMaxDoc = 64 << 20

func init() {
	dirSubs["apply-diff"] = dirApplyDiff
}

// dirApplyDiff applies a consensus diff to a base consensus. It exits 0
// only when the diff's FROM digest names the base and the result has the
// TO digest; --out is then replaced atomically, and on any failure it is
// left untouched. A gzip-compressed diff (as caches serve it) is accepted.
func dirApplyDiff(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("dir apply-diff", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	basePath := fs.String("base", "", "the consensus the diff applies to")
	diffPath := fs.String("diff", "", "the consensus diff (plain or gzip)")
	outPath := fs.String("out", "", "where to write the resulting consensus")
	fail := func(code int, format string, a ...any) int {
		fmt.Fprintf(stderr, "onionlite dir apply-diff: "+format+"\n", a...)
		return code
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(stdout, applyDiffUsage)
			fs.SetOutput(stdout)
			fs.PrintDefaults()
			return 0
		}
		return fail(2, "%v (%s)", err, applyDiffUsage)
	}
	if fs.NArg() > 0 {
		return fail(2, "unexpected argument %q (%s)", fs.Arg(0), applyDiffUsage)
	}
	if *basePath == "" || *diffPath == "" || *outPath == "" {
		return fail(2, "--base, --diff and --out are required (%s)", applyDiffUsage)
	}
	base, err := applyDiffRead(*basePath)
	if err != nil {
		return fail(1, "base: %v", err)
	}
	diff, err := applyDiffRead(*diffPath)
	if err != nil {
		return fail(1, "diff: %v", err)
	}
	if bytes.HasPrefix(diff, []byte{0x1f, 0x8b}) {
		if diff, err = applyDiffGunzip(diff, applyDiffMaxDoc); err != nil {
			return fail(1, "diff: %v", err)
		}
	}
	out, err := consdiff.Apply(base, diff)
	if err != nil {
		return fail(1, "%v", err)
	}
	if err := applyDiffWriteAtomic(*outPath, out); err != nil {
		return fail(1, "%v", err)
	}
	fmt.Fprintf(stdout, "wrote %s: %d bytes, sha3-256 %X\n", *outPath, len(out), consdiff.FullDigest(out))
	return 0
}

func applyDiffRead(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, applyDiffMaxDoc+1))
	if err != nil {
		return nil, err
	}
	if len(b) > applyDiffMaxDoc {
		return nil, fmt.Errorf("%s: larger than %d bytes", path, applyDiffMaxDoc)
	}
	return b, nil
}

func applyDiffGunzip(b []byte, limit int64) ([]byte, error) {
	zr, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		return nil, fmt.Errorf("gzip: %w", err)
	}
	out, err := io.ReadAll(io.LimitReader(zr, limit+1))
	if err != nil {
		return nil, fmt.Errorf("gzip: %w", err)
	}
	if int64(len(out)) > limit {
		return nil, fmt.Errorf("gzip: more than %d bytes uncompressed", limit)
	}
	return out, nil
}

// applyDiffWriteAtomic writes b to a temporary file beside path and renames it
// over path, so that path holds either its old content or all of b.
func applyDiffWriteAtomic(path string, b []byte) (err error) {
	dir, name := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	tmp, err := os.CreateTemp(dir, "."+strings.TrimPrefix(name, ".")+".tmp-*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if _, err = tmp.Write(b); err != nil {
		return err
	}
	if err = tmp.Chmod(0o644); err != nil {
		return err
	}
	if err = tmp.Sync(); err != nil {
		return err
	}
	if err = tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

package dircache

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// The full-disk tests run the store in a child (this test binary, selected
// by DIRCACHE_FULL_DIR): on a full file system badger's mapped files used
// to fault the process with SIGBUS, which no test could survive in-process.

func TestFullFileSystemChild(t *testing.T) {
	dir := os.Getenv("DIRCACHE_FULL_DIR")
	if dir == "" {
		t.Skip("runs only as the child of TestFullFileSystem")
	}
	say := func(step string, err error) {
		fmt.Printf("%s: %v (readonly=%v)\n", step, err, errors.Is(err, ErrReadOnly))
	}
	db, err := Open(filepath.Join(dir, "cache"), Options{})
	say("open", err)
	if err != nil {
		os.Exit(0)
	}
	if leave := os.Getenv("DIRCACHE_FULL_LEAVE"); leave != "" {
		// Fill the file system, leaving about that many bytes.
		var left int64
		fmt.Sscan(leave, &left)
		var st syscall.Statfs_t
		syscall.Statfs(dir, &st)
		fill := int64(st.Bavail)*st.Bsize - left
		f, err := os.Create(filepath.Join(dir, "filler"))
		if err == nil {
			_, err = f.Write(make([]byte, fill))
			f.Close()
		}
		say("fill", err)
	}
	mds := make([]Microdesc, 64)
	for i := range mds {
		mds[i] = synthMD(fmt.Sprintf("full-%d", i), 16<<10)
	}
	say("microdescs", db.PutMicrodescs(t0, mds))
	say("state", db.PutState("guards", make([]byte, 64<<10)))
	say("cert", db.PutCert(Cert{Identity: [20]byte{1}, Text: []byte("cert\n")}))
	say("consensus", db.PutConsensus("microdesc", synthConsensus("full", 256<<10), meta(t0)))
	say("close", db.Close())
	os.Exit(0)
}

// TestFullFileSystem: a cache on a nearly full file system must fail
// cleanly (ErrReadOnly, so the client runs from memory), never crash the
// process: at Open on a tiny file system, and at every write once the file
// system fills up after Open.
func TestFullFileSystem(t *testing.T) {
	for _, tc := range []struct {
		name, size, leave string
		want              []string
	}{
		{"tiny file system", "64k", "", []string{"open: ", "readonly=true"}},
		{"filled after open", "48m", "262144", []string{"open: <nil>", "fill: <nil>", "microdescs: ", "state: ", "cert: ", "close: <nil>"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mp := filepath.Join(t.TempDir(), "mnt")
			if err := os.Mkdir(mp, 0o700); err != nil {
				t.Fatal(err)
			}
			if err := syscall.Mount("tmpfs", mp, "tmpfs", 0, "size="+tc.size+",mode=0700"); err != nil {
				t.Skipf("cannot mount a tmpfs (%v); run as root", err)
			}
			defer syscall.Unmount(mp, syscall.MNT_DETACH)
			cmd := exec.Command(os.Args[0], "-test.run=^TestFullFileSystemChild$")
			cmd.Env = append(os.Environ(), "DIRCACHE_FULL_DIR="+mp, "DIRCACHE_FULL_LEAVE="+tc.leave)
			out, err := cmd.CombinedOutput()
			if err != nil {
				first, _, _ := strings.Cut(string(out), "\ngoroutine ")
				t.Fatalf("the store's process died: %v\n%s", err, first)
			}
			for _, w := range tc.want {
				if !strings.Contains(string(out), w) {
					t.Errorf("output lacks %q:\n%s", w, out)
				}
			}
			if tc.leave != "" {
				for _, l := range strings.Split(string(out), "\n") {
					step, _, _ := strings.Cut(l, ":")
					switch step {
					case "microdescs", "state", "cert":
						if !strings.HasSuffix(l, "(readonly=true)") {
							t.Errorf("a badger write with 256 KiB free: %s; want ErrReadOnly", l)
						}
					}
				}
			}
			t.Logf("%s", out)
		})
	}
}

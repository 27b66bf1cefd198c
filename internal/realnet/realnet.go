package realnet

import (
	"errors"
	"os"
	"path/filepath"
)

// Env names the environment variable that overrides the search.
const Env = "ONIONLITE_REALNET"

// RequireEnv, when set to 1 (CI sets it), turns a missing data directory
// into a test failure instead of a skip.
const RequireEnv = "ONIONLITE_REQUIRE_REALNET"

// Dir returns the realnet directory: $ONIONLITE_REALNET if set, else the
// first shared/testdata/realnet found beside the working directory or one of
// its parents.
func Dir() (string, error) {
	if d := os.Getenv(Env); d != "" {
		if st, err := os.Stat(d); err != nil || !st.IsDir() {
			return "", errors.New("realnet: $" + Env + " is not a directory: " + d)
		}
		return d, nil
	}
	wd, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for d := wd; ; d = filepath.Dir(d) {
		cand := filepath.Join(d, "shared", "testdata", "realnet")
		if st, err := os.Stat(cand); err == nil && st.IsDir() {
			return cand, nil
		}
		if filepath.Dir(d) == d {
			break
		}
	}
	return "", errors.New("realnet: ../shared/testdata/realnet not found beside the checkout; set $" + Env)
}

// TB is the part of testing.TB that Path needs.
type TB interface {
	Helper()
	Skipf(format string, args ...any)
	Fatalf(format string, args ...any)
}

// Path returns the file rel inside the realnet directory. When the
// directory is missing it skips the test, or fails it when
// $ONIONLITE_REQUIRE_REALNET=1.
func Path(t TB, rel string) string {
	t.Helper()
	d, err := Dir()
	if err != nil {
		if os.Getenv(RequireEnv) == "1" {
			t.Fatalf("%v", err)
		}
		t.Skipf("%v", err)
	}
	p := filepath.Join(d, rel)
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("realnet: %v", err)
	}
	return p
}

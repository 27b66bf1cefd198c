//go:build nodev

package main

import (
	"bytes"
	"strings"
	"testing"
)

// TestDevCommandsLeftOut checks that the lean build lists the developer
// commands as missing, refuses them with a clear error, and keeps the
// client commands.
func TestDevCommandsLeftOut(t *testing.T) {
	for _, name := range devCommands {
		var o, e bytes.Buffer
		if code := run([]string{name, "--quick"}, &o, &e); code != 2 || !strings.Contains(e.String(), "not in this build") {
			t.Errorf("%s: code %d, stderr %q", name, code, e.String())
		}
	}
	var o, e bytes.Buffer
	if code := run([]string{"help"}, &o, &e); code != 0 {
		t.Fatalf("help: code %d", code)
	}
	for _, name := range []string{"bootstrap", "get", "socks", "dir", "version"} {
		if !strings.Contains(o.String(), "\n  "+name+" ") {
			t.Errorf("help lacks %s:\n%s", name, o.String())
		}
	}
}

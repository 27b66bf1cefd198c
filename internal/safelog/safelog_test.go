package safelog

import (
	"fmt"
	"strings"
	"testing"
)

func TestScrubbing(t *testing.T) {
	dest := S("example.com:443")
	for _, verb := range []string{"%v", "%s", "%q", "%+v", "%#v", "%10v"} {
		if got := fmt.Sprintf(verb, dest); strings.Contains(got, "example") {
			t.Errorf("%s printed %q while safe", verb, got)
		}
	}
	if got := fmt.Sprint(dest); got != Scrubbed {
		t.Errorf("Sprint = %q", got)
	}
	SetSafe(false)
	defer SetSafe(true)
	if got := fmt.Sprintf("%v %q", dest, dest); got != `example.com:443 "example.com:443"` {
		t.Errorf("unsafe printing = %q", got)
	}
}

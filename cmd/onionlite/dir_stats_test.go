package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/onionlite/onionlite/internal/netdoc"
	"github.com/onionlite/onionlite/internal/realnet"
)

func runStats(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var o, e bytes.Buffer
	code = run(append([]string{"dir", "stats"}, args...), &o, &e)
	return code, o.String(), e.String()
}

// authorities2019 writes the authority list that signed the 2019 and 2021
// consensuses: today's, with the old identities of moria1, tor26 and
// Faravahar.
func authorities2019(t *testing.T) string {
	old := map[string]string{
		"moria1":    "moria1 orport=9101 v3ident=D586D18309DED4CD6D57C18FDB97EFA96D330566 128.31.0.34:9131 9695DFC35FFEB861329B9F1AB04C46397020CE31",
		"tor26":     "tor26 orport=443 v3ident=14C131DFC5C6F93646BE72FA1401C02A8DF2E8B4 86.59.21.38:80 847B1F850344D7876491A54892F904934E4EB85D",
		"faravahar": "Faravahar orport=443 v3ident=EFCBE720AB3A82B99F9E953CD5BF50F7EEFC7B97 154.35.175.225:80 CF6D0AAFB385BE71B8E111FC5CFF4B47923733BC",
	}
	var sb strings.Builder
	for _, a := range netdoc.DefaultAuthorities() {
		l, ok := old[a.Nickname]
		if !ok {
			l = a.String()
		}
		sb.WriteString("DirAuthority " + l + "\n")
	}
	p := filepath.Join(t.TempDir(), "authorities-2019")
	if err := os.WriteFile(p, []byte(sb.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

const set2019 = "2019-12-15-full-md-set/"

func TestDirStats2019Full(t *testing.T) {
	cons := realnet.Path(t, set2019+"consensus-microdesc-2019-12-15-13-00-00")
	code, stdout, stderr := runStats(t, "--consensus", cons, "--certs", realnet.Path(t, set2019+"cached-certs"),
		"--microdescs", realnet.Path(t, set2019+"cached-microdescs"), "--microdescs", realnet.Path(t, set2019+"cached-microdescs.new"),
		"--now", "2019-12-15T13:30:00Z", "--authorities", authorities2019(t))
	if code != 0 || stderr != "" {
		t.Fatalf("exit %d, stderr %q", code, stderr)
	}
	var rep statsReport
	dec := json.NewDecoder(strings.NewReader(stdout))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&rep); err != nil {
		t.Fatalf("stdout is not the report: %v\n%s", err, stdout)
	}
	var raw map[string]any
	json.Unmarshal([]byte(stdout), &raw)
	for _, k := range []string{"relays", "microdescs_matched", "bytes_per_relay", "heap_inuse_bytes", "interned_families", "family_bytes"} {
		if _, ok := raw[k]; !ok {
			t.Errorf("report lacks %q", k)
		}
	}
	if rep.Relays != 6345 || rep.MicrodescsMatched != 6345 || rep.MicrodescsMissing != 0 {
		t.Errorf("relays %d, matched %d, missing %d; want 6345, 6345, 0", rep.Relays, rep.MicrodescsMatched, rep.MicrodescsMissing)
	}
	if rep.MicrodescsParsed != 6374+509 || rep.MicrodescsUnlisted != 6374+509-6345 || rep.MicrodescsMalformed != 0 {
		t.Errorf("parsed %d, unlisted %d, malformed %d", rep.MicrodescsParsed, rep.MicrodescsUnlisted, rep.MicrodescsMalformed)
	}
	if rep.InternedFamilies != 655 || rep.FamilyBytes <= 0 || rep.InternedPolicies != 319 {
		t.Errorf("families %d (%d bytes), policies %d", rep.InternedFamilies, rep.FamilyBytes, rep.InternedPolicies)
	}
	if rep.RelayBytesPerRelay > 150 || rep.BytesPerRelay < rep.RelayBytesPerRelay || rep.NetdirBytes != int(rep.BytesPerRelay*6345+0.5) {
		t.Errorf("bytes per relay %.1f (relay part %.1f), netdir %d", rep.BytesPerRelay, rep.RelayBytesPerRelay, rep.NetdirBytes)
	}
	if rep.HeapInuseBytes < uint64(rep.NetdirBytes) || rep.HeapAllocBytes < uint64(rep.NetdirBytes) {
		t.Errorf("heap in use %d, alloc %d: less than the netdir's %d", rep.HeapInuseBytes, rep.HeapAllocBytes, rep.NetdirBytes)
	}
	if !rep.EnoughDirInfo || rep.GuardFraction != 1 || rep.MiddleFraction != 1 || rep.PathsFraction < 0.999 {
		t.Errorf("dir info: paths %v guard %v middle %v exit %v enough %v", rep.PathsFraction, rep.GuardFraction, rep.MiddleFraction, rep.ExitFraction, rep.EnoughDirInfo)
	}
	if rep.ValidAfter != "2019-12-15T13:00:00Z" || rep.Now != "2019-12-15T13:30:00Z" {
		t.Errorf("times: %s %s", rep.ValidAfter, rep.Now)
	}
}

func TestDirStatsNoMicrodescs(t *testing.T) {
	code, stdout, stderr := runStats(t, "--consensus", realnet.Path(t, cons2026), "--certs", realnet.Path(t, certs2026), "--now", "2026-06-27T04:30:00Z")
	if code != 0 || stderr != "" {
		t.Fatalf("exit %d, stderr %q", code, stderr)
	}
	var rep statsReport
	if err := json.Unmarshal([]byte(stdout), &rep); err != nil {
		t.Fatal(err)
	}
	if rep.Relays != 9609 || rep.MicrodescsMatched != 0 || rep.EnoughDirInfo || rep.PathsFraction != 0 || rep.MicrodescsMissing < 9000 {
		t.Errorf("%+v", rep)
	}
}

func TestDirStatsErrors(t *testing.T) {
	cons := realnet.Path(t, cons2026)
	certs := realnet.Path(t, certs2026)
	garbage := filepath.Join(t.TempDir(), "garbage")
	os.WriteFile(garbage, []byte("this is not a microdescriptor\n"), 0o644)
	empty := filepath.Join(t.TempDir(), "empty")
	os.WriteFile(empty, nil, 0o644)
	for _, tc := range []struct {
		name string
		args []string
		code int
		want string
	}{
		{"no certs", []string{"--consensus", cons}, 2, "--consensus and --certs are required"},
		{"bad now", []string{"--consensus", cons, "--certs", certs, "--now", "yesterday"}, 2, "--now"},
		{"extra arg", []string{"--consensus", cons, "--certs", certs, "x"}, 2, "unexpected argument"},
		{"expired", []string{"--consensus", cons, "--certs", certs, "--now", "2026-06-28T04:30:00Z"}, 1, "expired"},
		{"missing file", []string{"--consensus", cons + ".nope", "--certs", certs}, 1, "consensus:"},
		{"malformed microdescs", []string{"--consensus", cons, "--certs", certs, "--now", "2026-06-27T04:30:00Z", "--microdescs", garbage}, 1, "no microdescriptor parsed"},
		{"empty microdescs", []string{"--consensus", cons, "--certs", certs, "--now", "2026-06-27T04:30:00Z", "--microdescs", empty}, 1, "no microdescriptors in the file"},
		{"wrong authorities", []string{"--consensus", cons, "--certs", certs, "--now", "2026-06-27T04:30:00Z", "--authorities", garbage}, 1, "authorities:"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, stdout, stderr := runStats(t, tc.args...)
			if code != tc.code || stdout != "" {
				t.Errorf("exit %d (want %d), stdout %q", code, tc.code, stdout)
			}
			oneLine(t, stderr, tc.want)
		})
	}
}

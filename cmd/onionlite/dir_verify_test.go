package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/onionlite/onionlite/internal/realnet"
)

func runVerify(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var o, e bytes.Buffer
	code = run(append([]string{"dir", "verify"}, args...), &o, &e)
	return code, o.String(), e.String()
}

// oneLine checks the failure contract: exactly one line on stderr.
func oneLine(t *testing.T, stderr, want string) {
	t.Helper()
	if strings.Count(stderr, "\n") != 1 || !strings.HasSuffix(stderr, "\n") || !strings.Contains(stderr, want) {
		t.Errorf("stderr %q: want one line containing %q", stderr, want)
	}
}

const (
	cons2026  = "2026-06-27-latest-consensus/consensus-microdesc-2026-06-27-04-00-00"
	certs2026 = "2026-06-27-latest-consensus/cached-certs"
)

func TestDirVerifyJSON(t *testing.T) {
	cons := realnet.Path(t, cons2026)
	certs := realnet.Path(t, certs2026)
	code, stdout, stderr := runVerify(t, "--consensus", cons, "--certs", certs, "--now", "2026-06-27T04:30:00Z", "--json")
	if code != 0 || stderr != "" {
		t.Fatalf("exit %d, stderr %q", code, stderr)
	}
	var rep map[string]any
	if err := json.Unmarshal([]byte(stdout), &rep); err != nil {
		t.Fatalf("stdout is not one JSON object: %v\n%s", err, stdout)
	}
	for k, want := range map[string]any{
		"valid": true, "relays": 9609.0, "signatures_valid": 9.0, "authorities": 9.0, "signatures_needed": 5.0,
		"valid_after": "2026-06-27T04:00:00Z", "fresh_until": "2026-06-27T05:00:00Z", "valid_until": "2026-06-27T07:00:00Z",
		"consensus_method": 35.0, "flavor": "microdesc", "now": "2026-06-27T04:30:00Z",
		"sha3_signed_part": "7BBB862C690B2EE5F5C2B97A9EB3E7DA828A0508E189D511DE366BF57F2A00A4",
	} {
		if rep[k] != want {
			t.Errorf("%s = %v, want %v", k, rep[k], want)
		}
	}
	if n := len(rep["signed_by"].([]any)); n != 9 {
		t.Errorf("signed_by has %d names", n)
	}
	// Plain output: one summary line.
	code, stdout, stderr = runVerify(t, "--consensus", cons, "--certs", certs, "--now", "2026-06-27T06:59:59+00:00")
	if code != 0 || stderr != "" || !strings.HasPrefix(stdout, "valid: 9609 relays, signed by 9 of 9 authorities") {
		t.Errorf("exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
}

func TestDirVerifyAuthoritiesFile(t *testing.T) {
	cons := realnet.Path(t, cons2026)
	certs := realnet.Path(t, certs2026)
	dir := t.TempDir()
	// Three of the real authorities configured: all three signed.
	three := filepath.Join(dir, "three")
	os.WriteFile(three, []byte(`# a subset
DirAuthority moria1 orport=9201 v3ident=F533C81CEF0BC0267857C99B2F471ADF249FA232 128.31.0.39:9231 1A25 C635 8DB9 1342 AA51 720A 5038 B727 4273 2498
DirAuthority dizum orport=443 v3ident=E8A9C45EDE6D711294FADF8E7951F4DE6CA56B58 45.66.35.11:80 7EA6EAD6FD83083C538F44038BBFA077587DD755
DirAuthority longclaw orport=443 v3ident=23D15D965BC35114467363C165C4F724B64B4F66 199.58.81.140:80 74A910646BCEEFBCD2E874FC1DC997430F968145
`), 0o644)
	code, stdout, stderr := runVerify(t, "--consensus", cons, "--certs", certs, "--now", "2026-06-27T04:30:00Z", "--authorities", three, "--json")
	var rep struct {
		Valid           bool `json:"valid"`
		Authorities     int  `json:"authorities"`
		SignaturesValid int  `json:"signatures_valid"`
	}
	if err := json.Unmarshal([]byte(stdout), &rep); err != nil || code != 0 || !rep.Valid || rep.Authorities != 3 || rep.SignaturesValid != 3 {
		t.Errorf("subset: exit %d %+v %v, stderr %q", code, rep, err, stderr)
	}
	// A test network's authorities never signed this consensus.
	testnet := filepath.Join(dir, "testnet")
	os.WriteFile(testnet, []byte(
		"DirAuthority auth0 orport=24000 no-v2 v3ident=0123456789ABCDEF0123456789ABCDEF01234567 127.0.0.1:24100 89ABCDEF0123456789ABCDEF0123456789ABCDEF\n"+
			"DirAuthority auth1 orport=24001 no-v2 v3ident=1123456789ABCDEF0123456789ABCDEF01234567 127.0.0.1:24101 99ABCDEF0123456789ABCDEF0123456789ABCDEF\n"+
			"DirAuthority auth2 orport=24002 no-v2 v3ident=2123456789ABCDEF0123456789ABCDEF01234567 127.0.0.1:24102 A9ABCDEF0123456789ABCDEF0123456789ABCDEF\n"), 0o644)
	code, stdout, stderr = runVerify(t, "--consensus", cons, "--certs", certs, "--now", "2026-06-27T04:30:00Z", "--authorities", testnet)
	if code != 1 || stdout != "" {
		t.Errorf("test-network authorities: exit %d, stdout %q", code, stdout)
	}
	oneLine(t, stderr, "0 of 3 configured authorities, need 2")
	bad := filepath.Join(dir, "bad")
	os.WriteFile(bad, []byte("DirAuthority broken\n"), 0o644)
	code, _, stderr = runVerify(t, "--consensus", cons, "--certs", certs, "--authorities", bad)
	if code != 1 {
		t.Errorf("bad authorities file: exit %d", code)
	}
	oneLine(t, stderr, "line 1")
}

func TestDirVerifyFailures(t *testing.T) {
	cons := realnet.Path(t, cons2026)
	certs := realnet.Path(t, certs2026)
	certs2019 := realnet.Path(t, "2019-12-15-full-md-set/cached-certs")
	arti := realnet.Path(t, "2026-07-27-arti-trimmed-sample/consensus-microdesc")
	dir := t.TempDir()
	raw, err := os.ReadFile(cons)
	if err != nil {
		t.Fatal(err)
	}
	tampered := filepath.Join(dir, "tampered")
	os.WriteFile(tampered, bytes.Replace(raw, []byte("w Bandwidth=59000"), []byte("w Bandwidth=59001"), 1), 0o644)
	truncated := filepath.Join(dir, "truncated")
	os.WriteFile(truncated, raw[:len(raw)/2], 0o644)
	garbage := filepath.Join(dir, "garbage")
	os.WriteFile(garbage, []byte("\x89PNG\r\n\x1a\n"), 0o644)

	for _, c := range []struct {
		name string
		args []string
		code int
		msg  string
	}{
		{"expired", []string{"--consensus", cons, "--certs", certs, "--now", "2026-06-27T07:00:01Z"}, 1, "expired"},
		{"not yet valid", []string{"--consensus", cons, "--certs", certs, "--now", "2026-06-27T03:59:59Z"}, 1, "not yet valid"},
		{"default now is today, long after", []string{"--consensus", cons, "--certs", certs}, 1, "consensus"},
		{"tampered", []string{"--consensus", tampered, "--certs", certs, "--now", "2026-06-27T04:30:00Z"}, 1, "bad signature"},
		{"wrong certs", []string{"--consensus", cons, "--certs", certs2019, "--now", "2026-06-27T04:30:00Z"}, 1, "no certificate"},
		{"trimmed arti sample", []string{"--consensus", arti, "--certs", certs, "--now", "2026-07-27T10:30:00Z"}, 1, "too few valid consensus signatures"},
		{"truncated", []string{"--consensus", truncated, "--certs", certs, "--now", "2026-06-27T04:30:00Z"}, 1, "truncated"},
		{"garbage consensus", []string{"--consensus", garbage, "--certs", certs}, 1, "malformed"},
		{"garbage certs", []string{"--consensus", cons, "--certs", garbage}, 1, "certs"},
		{"consensus as certs", []string{"--consensus", cons, "--certs", cons}, 1, "certs"},
		{"missing file", []string{"--consensus", filepath.Join(dir, "nope"), "--certs", certs}, 1, "no such file"},
		{"bad --now", []string{"--consensus", cons, "--certs", certs, "--now", "yesterday"}, 2, "RFC 3339"},
		{"missing flag", []string{"--consensus", cons}, 2, "required"},
		{"unknown flag", []string{"--consensus", cons, "--certs", certs, "--x"}, 2, "flag provided but not defined"},
		{"extra argument", []string{"--consensus", cons, "--certs", certs, "more"}, 2, "unexpected argument"},
	} {
		t.Run(c.name, func(t *testing.T) {
			code, stdout, stderr := runVerify(t, c.args...)
			if code != c.code {
				t.Errorf("exit %d, want %d", code, c.code)
			}
			if stdout != "" {
				t.Errorf("stdout %q", stdout)
			}
			oneLine(t, stderr, c.msg)
		})
	}

	// With --json a parsed but invalid consensus still gets its report.
	code, stdout, stderr := runVerify(t, "--consensus", cons, "--certs", certs, "--now", "2026-06-28T04:30:00Z", "--json")
	var rep struct {
		Valid           bool   `json:"valid"`
		Error           string `json:"error"`
		SignaturesValid int    `json:"signatures_valid"`
		Relays          int    `json:"relays"`
	}
	if err := json.Unmarshal([]byte(stdout), &rep); err != nil || code != 1 || rep.Valid || rep.SignaturesValid != 9 || rep.Relays != 9609 || !strings.Contains(rep.Error, "expired") {
		t.Errorf("expired --json: exit %d %+v %v", code, rep, err)
	}
	oneLine(t, stderr, "expired")
}

func TestDirVerifyHelp(t *testing.T) {
	code, stdout, _ := runVerify(t, "-h")
	if code != 0 || !strings.Contains(stdout, "--consensus FILE --certs FILE") {
		t.Fatalf("exit %d, stdout %q", code, stdout)
	}
}

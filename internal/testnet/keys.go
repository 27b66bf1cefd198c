package testnet

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
)

var hex40 = regexp.MustCompile(`^[0-9A-F]{40}$`)

// genAuthorityKeys runs tor-gencert in dataDir/keys for an authority whose
// DirPort is dirPort, and returns its v3 identity (the certificate's
// fingerprint).
func genAuthorityKeys(ctx context.Context, gencert, dataDir string, dirPort int) (string, error) {
	keys := filepath.Join(dataDir, "keys")
	if err := os.MkdirAll(keys, 0o700); err != nil {
		return "", err
	}
	cmd := exec.CommandContext(ctx, gencert, "--create-identity-key", "-m", "12",
		"-a", "127.0.0.1:"+strconv.Itoa(dirPort),
		"-i", "authority_identity_key", "-s", "authority_signing_key", "-c", "authority_certificate",
		"--passphrase-fd", "0")
	cmd.Dir = keys
	cmd.Stdin = strings.NewReader("\n")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("tor-gencert in %s: %v: %s", keys, err, bytes.TrimSpace(out))
	}
	return readV3Ident(dataDir)
}

// readV3Ident reads the fingerprint line of dataDir/keys/authority_certificate.
func readV3Ident(dataDir string) (string, error) {
	p := filepath.Join(dataDir, "keys", "authority_certificate")
	b, err := os.ReadFile(p)
	if err != nil {
		return "", err
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		if f := strings.Fields(sc.Text()); len(f) == 2 && f[0] == "fingerprint" {
			fp := strings.ToUpper(f[1])
			if !hex40.MatchString(fp) {
				break
			}
			return fp, nil
		}
	}
	return "", fmt.Errorf("%s: no valid fingerprint line", p)
}

// listFingerprint makes tor create the relay keys in dataDir (the node
// reuses them) and returns the RSA identity fingerprint.
func listFingerprint(ctx context.Context, tor, dataDir string, orPort int, nick string) (string, error) {
	cmd := exec.CommandContext(ctx, tor, "--quiet", "--ignore-missing-torrc", "-f", os.DevNull,
		"--defaults-torrc", os.DevNull, "--list-fingerprint",
		"--DataDirectory", dataDir, "--ORPort", "127.0.0.1:"+strconv.Itoa(orPort),
		"--Address", "127.0.0.1", "--Nickname", nick)
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("tor --list-fingerprint for %s: %v: %s", nick, err, bytes.TrimSpace(out))
	}
	return readFingerprint(dataDir, nick)
}

// readFingerprint reads dataDir/fingerprint ("NICK HEX").
func readFingerprint(dataDir, nick string) (string, error) {
	p := filepath.Join(dataDir, "fingerprint")
	b, err := os.ReadFile(p)
	if err != nil {
		return "", err
	}
	f := strings.Fields(string(b))
	if len(f) != 2 || f[0] != nick || !hex40.MatchString(f[1]) {
		return "", fmt.Errorf("%s: unexpected content %q", p, bytes.TrimSpace(b))
	}
	return f[1], nil
}

const ed25519PubHeader = "== ed25519v1-public: type0 =="

// readEd25519ID reads dataDir/keys/ed25519_master_id_public_key: a 32-byte
// header (the tag, NUL padded) followed by the 32-byte key.
func readEd25519ID(dataDir string) ([32]byte, error) {
	var id [32]byte
	p := filepath.Join(dataDir, "keys", "ed25519_master_id_public_key")
	b, err := os.ReadFile(p)
	if err != nil {
		return id, err
	}
	if len(b) != 64 || string(bytes.TrimRight(b[:32], "\x00")) != ed25519PubHeader {
		return id, errors.New(p + ": not an ed25519v1 public key file")
	}
	copy(id[:], b[32:])
	return id, nil
}

// parseVmHWM finds "VmHWM: N kB" in a /proc/PID/status file.
func parseVmHWM(status []byte) (int64, error) {
	sc := bufio.NewScanner(bytes.NewReader(status))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 3 && f[0] == "VmHWM:" && f[2] == "kB" {
			kb, err := strconv.ParseInt(f[1], 10, 64)
			if err != nil {
				return 0, fmt.Errorf("bad VmHWM %q", f[1])
			}
			return kb * 1024, nil
		}
	}
	return 0, errors.New("no VmHWM in process status")
}

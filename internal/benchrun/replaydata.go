package benchrun

import (
	"bytes"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"crypto/sha3"
)

// ReplaySetDir is the real-network document set the replay serves: the
// only one with a microdescriptor for every relay of its consensus.
const ReplaySetDir = "2019-12-15-full-md-set"

// replayConsensusFile is the microdesc consensus of that set.
const replayConsensusFile = "consensus-microdesc-2019-12-15-13-00-00"

// ReplayNow is the time the replayed clients are started at: 20 minutes
// into the consensus's validity (valid-after 13:00, fresh-until 14:00).
const ReplayNow = "2019-12-15T13:20:00Z"

// replayAuthority is one authority of the replayed consensus.
type replayAuthority struct {
	Nick     string
	V3Ident  string // 40 hex digits (dir-source)
	Identity string // RSA identity of its relay, from its "r" line; "" if absent
}

// replayCert is one authority key certificate.
type replayCert struct {
	Identity string // fingerprint: v3ident, 40 uppercase hex digits
	Signing  string // SHA-1 of the signing key's DER, 40 uppercase hex digits
	Text     []byte
}

// replayData is everything the replay directory server serves.
type replayData struct {
	Consensus []byte
	SignedSHA string // SHA3-256 of the signed part, uppercase hex
	Digests   []string
	MDs       map[string][]byte // by base64(SHA-256) without padding
	Certs     []replayCert
	Auths     []replayAuthority
}

// loadReplayData reads the 2019 set from dir and checks that every
// microdescriptor the consensus lists is present.
func loadReplayData(dir string) (*replayData, error) {
	cons, err := os.ReadFile(filepath.Join(dir, replayConsensusFile))
	if err != nil {
		return nil, err
	}
	d := &replayData{Consensus: cons, MDs: map[string][]byte{}}
	i := bytes.Index(cons, []byte("\ndirectory-signature "))
	if i < 0 {
		return nil, fmt.Errorf("%s: no directory-signature", replayConsensusFile)
	}
	sum := sha3.Sum256(cons[:i+len("\ndirectory-signature ")])
	d.SignedSHA = strings.ToUpper(hex.EncodeToString(sum[:]))
	d.Auths, d.Digests = parseReplayConsensus(cons)
	for _, f := range []string{"cached-microdescs", "cached-microdescs.new"} {
		b, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil {
			return nil, err
		}
		for k, v := range splitMicrodescs(b) {
			d.MDs[k] = v
		}
	}
	missing := 0
	for _, dg := range d.Digests {
		if _, ok := d.MDs[dg]; !ok {
			missing++
		}
	}
	if missing > 0 || len(d.Digests) == 0 {
		return nil, fmt.Errorf("%s: %d of %d microdescriptors missing", dir, missing, len(d.Digests))
	}
	certs, err := os.ReadFile(filepath.Join(dir, "cached-certs"))
	if err != nil {
		return nil, err
	}
	if d.Certs, err = splitCerts(certs); err != nil {
		return nil, err
	}
	return d, nil
}

// parseReplayConsensus returns the consensus's authorities (with the
// identity of the relay each runs, matched by nickname and address) and
// its microdescriptor digests.
func parseReplayConsensus(cons []byte) ([]replayAuthority, []string) {
	var auths []replayAuthority
	addr := map[string]string{} // nick → IP of its dir-source
	var digests []string
	var lastR []string
	for _, l := range strings.Split(string(cons), "\n") {
		f := strings.Fields(l)
		if len(f) == 0 {
			continue
		}
		switch f[0] {
		case "dir-source":
			if len(f) >= 5 {
				auths = append(auths, replayAuthority{Nick: f[1], V3Ident: strings.ToUpper(f[2])})
				addr[f[1]] = f[4]
			}
		case "r":
			lastR = f
			// r NICK ID-B64 DATE TIME IP ORPORT DIRPORT
			if len(f) >= 8 {
				for k := range auths {
					if auths[k].Nick == f[1] && addr[f[1]] == f[5] && auths[k].Identity == "" {
						if id, err := base64.RawStdEncoding.DecodeString(strings.TrimRight(f[2], "=")); err == nil {
							auths[k].Identity = strings.ToUpper(hex.EncodeToString(id))
						}
					}
				}
			}
		case "m":
			if lastR != nil && len(f) >= 2 {
				digests = append(digests, f[1])
			}
		}
	}
	return auths, digests
}

// splitMicrodescs cuts a cached-microdescs file into microdescriptors:
// each runs from a line that is exactly "onion-key" up to the next "@"
// annotation or "onion-key" line. They are keyed by base64(SHA-256)
// without padding, as consensus "m" lines name them.
func splitMicrodescs(b []byte) map[string][]byte {
	out := map[string][]byte{}
	start := -1
	flush := func(end int) {
		if start >= 0 {
			md := b[start:end]
			sum := sha256.Sum256(md)
			out[base64.RawStdEncoding.EncodeToString(sum[:])] = md
		}
		start = -1
	}
	for off := 0; off < len(b); {
		end := bytes.IndexByte(b[off:], '\n')
		next := len(b)
		if end >= 0 {
			next = off + end + 1
		}
		line := b[off:next]
		switch {
		case bytes.Equal(bytes.TrimRight(line, "\n"), []byte("onion-key")):
			flush(off)
			start = off
		case len(line) > 0 && line[0] == '@':
			flush(off)
		}
		off = next
	}
	flush(len(b))
	return out
}

// splitCerts cuts a cached-certs file into certificates and indexes each
// by its identity fingerprint and signing-key digest.
func splitCerts(b []byte) ([]replayCert, error) {
	const begin = "dir-key-certificate-version 3\n"
	var out []replayCert
	text := string(b)
	for {
		i := strings.Index(text, begin)
		if i < 0 {
			break
		}
		text = text[i:]
		j := strings.Index(text[len(begin):], begin)
		cert := text
		if j >= 0 {
			cert = text[:len(begin)+j]
		}
		text = text[len(cert):]
		c := replayCert{Text: []byte(cert)}
		for _, l := range strings.Split(cert, "\n") {
			if v, ok := strings.CutPrefix(l, "fingerprint "); ok {
				c.Identity = strings.ToUpper(strings.TrimSpace(v))
			}
		}
		k := strings.Index(cert, "\ndir-signing-key\n")
		if k < 0 {
			return nil, fmt.Errorf("certificate of %s has no dir-signing-key", c.Identity)
		}
		blk, _ := pem.Decode([]byte(cert[k+len("\ndir-signing-key\n"):]))
		if blk == nil || c.Identity == "" {
			return nil, fmt.Errorf("certificate %d does not parse", len(out)+1)
		}
		sum := sha1.Sum(blk.Bytes)
		c.Signing = strings.ToUpper(hex.EncodeToString(sum[:]))
		out = append(out, c)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no certificates")
	}
	return out, nil
}

// sha1Hex is the uppercase hex SHA-1 of b.
func sha1Hex(b []byte) string {
	sum := sha1.Sum(b)
	return strings.ToUpper(hex.EncodeToString(sum[:]))
}

package guard

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/onionlite/onionlite/dircache/netdir"
)

// The persisted state is text, one sampled guard per line in sample
// order, in the spirit of C tor's state file (guard-spec A.5):
//
//	onionlite-guards 1
//	guard rsa_id=HEX40 sampled_on=2026-06-27T04:00:00 listed=1 confirmed_on=... confirmed_idx=0
//
// Times are UTC to the second. Unrecognized K=V fields of a guard line
// are kept and written back. Only persistent facts are stored: whether a
// guard was reachable is forgotten on restart, as in C tor.
const stateHeader = "onionlite-guards 1"

const stateTime = "2006-01-02T15:04:05"

// maxStateGuards bounds what a state may hold (a sample never exceeds
// guard-max-sample-size, 60 by default).
const maxStateGuards = 10000

// MarshalBinary encodes the persistent state.
func (m *Manager) MarshalBinary() ([]byte, error) {
	var b bytes.Buffer
	b.WriteString(stateHeader + "\n")
	for _, e := range m.sampled {
		fmt.Fprintf(&b, "guard rsa_id=%X sampled_on=%s listed=%d", e.id, e.addedOn.UTC().Format(stateTime), boolInt(e.listed))
		if !e.unlistedSince.IsZero() {
			fmt.Fprintf(&b, " unlisted_since=%s", e.unlistedSince.UTC().Format(stateTime))
		}
		if !e.confirmedOn.IsZero() {
			idx := 0
			for k, c := range m.confirmed {
				if c == e {
					idx = k
				}
			}
			fmt.Fprintf(&b, " confirmed_on=%s confirmed_idx=%d", e.confirmedOn.UTC().Format(stateTime), idx)
		}
		for _, x := range e.extra {
			b.WriteString(" " + x)
		}
		b.WriteByte('\n')
	}
	return b.Bytes(), nil
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// UnmarshalBinary replaces the Manager's guards with a persisted state.
// On error the Manager is unchanged. Call SetNetDir afterwards.
func (m *Manager) UnmarshalBinary(data []byte) error {
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(nil, 1<<16)
	line := 0
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%w: line %d: %s", ErrBadState, line, fmt.Sprintf(format, a...))
	}
	if !sc.Scan() {
		line = 1
		return bad("empty state")
	}
	line = 1
	if strings.TrimRight(sc.Text(), "\r") != stateHeader {
		return bad("want %q, got %.40q", stateHeader, sc.Text())
	}
	var sampled []*entry
	type conf struct {
		idx int
		e   *entry
	}
	var confirmed []conf
	seen := map[[20]byte]bool{}
	for sc.Scan() {
		line++
		text := strings.TrimSpace(sc.Text())
		if text == "" {
			continue
		}
		fields := strings.Fields(text)
		if fields[0] != "guard" {
			return bad("unknown line %.40q", fields[0])
		}
		if len(sampled) == maxStateGuards {
			return bad("more than %d guards", maxStateGuards)
		}
		e := &entry{}
		have := map[string]bool{}
		cidx := -1
		for _, f := range fields[1:] {
			k, v, ok := strings.Cut(f, "=")
			if !ok || k == "" {
				return bad("field %.40q is not K=V", f)
			}
			if have[k] {
				return bad("repeated field %q", k)
			}
			have[k] = true
			var err error
			switch k {
			case "rsa_id":
				var id []byte
				if id, err = hex.DecodeString(v); err == nil && len(id) != 20 {
					err = fmt.Errorf("%d bytes", len(id))
				}
				copy(e.id[:], id)
			case "sampled_on":
				e.addedOn, err = time.Parse(stateTime, v)
			case "listed":
				switch v {
				case "0", "1":
					e.listed = v == "1"
				default:
					err = fmt.Errorf("not 0 or 1")
				}
			case "unlisted_since":
				e.unlistedSince, err = time.Parse(stateTime, v)
			case "confirmed_on":
				e.confirmedOn, err = time.Parse(stateTime, v)
			case "confirmed_idx":
				cidx, err = strconv.Atoi(v)
				if err == nil && cidx < 0 {
					err = fmt.Errorf("negative")
				}
			default:
				e.extra = append(e.extra, f)
			}
			if err != nil {
				return bad("%s: %v", k, err)
			}
		}
		for _, k := range []string{"rsa_id", "sampled_on", "listed"} {
			if !have[k] {
				return bad("guard without %s", k)
			}
		}
		if (cidx >= 0) != !e.confirmedOn.IsZero() {
			return bad("confirmed_on and confirmed_idx go together")
		}
		if seen[e.id] {
			return bad("guard %X listed twice", e.id)
		}
		seen[e.id] = true
		e.idx = netdir.NoRelay // until SetNetDir
		sampled = append(sampled, e)
		if cidx >= 0 {
			confirmed = append(confirmed, conf{cidx, e})
		}
	}
	if err := sc.Err(); err != nil {
		return bad("%v", err)
	}
	sort.SliceStable(confirmed, func(a, b int) bool { return confirmed[a].idx < confirmed[b].idx })
	for k := 1; k < len(confirmed); k++ {
		if confirmed[k].idx == confirmed[k-1].idx {
			return fmt.Errorf("%w: confirmed_idx %d used twice", ErrBadState, confirmed[k].idx)
		}
	}
	m.sampled, m.confirmed, m.primary = sampled, nil, nil
	for _, c := range confirmed {
		m.confirmed = append(m.confirmed, c.e)
	}
	m.nd = nil
	m.gen++
	return nil
}

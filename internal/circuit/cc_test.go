package circuit

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/ecdh"
	"crypto/sha3"
	"encoding/binary"
	"errors"
	"io"
	"reflect"
	"testing"
	"testing/synctest"
	"time"

	"github.com/onionlite/onionlite/internal/cell"
	"github.com/onionlite/onionlite/internal/relaycrypto"
	"github.com/onionlite/onionlite/internal/stream"
	"github.com/onionlite/onionlite/internal/torcrypto"
)

// vegasRow is one SENDME through TOR_VEGAS: a hand-set state, the RTT of
// the acknowledged cell, and the state prop 324 section 3.3 says follows
// (worked out by hand in the comments).
type vegasRow struct {
	name   string
	params func(*CCParams) // changes to the 0.4.9 defaults
	// state before
	cwnd, inflight         int64
	ss                     bool
	minRTT, ewmaRTT        int64
	nextCC, nextCwnd       int64
	rtt                    int64
	wantCwnd, wantInflight int64
	wantSS                 bool
	wantMin, wantEWMA      int64
	wantBDP                int64
	wantNextCC             int64
	wantNextCwnd           int64
	wantFull               bool
	wantStalls             int
}

// The defaults (tor 0.4.9): sendme_inc 31, cwnd_min 124, cwnd_inc 1,
// cwnd_inc_rate 31, cwnd_inc_pct_ss 100, gamma 186, alpha 124, beta 248,
// delta 372, sscap 500, ss_max 5000, full_gap 1, full_minpct 75,
// full_per_cwnd 1, ewma_ss 2, ewma_cwnd_pct 50, ewma_max 10.
var vegasRows = []vegasRow{
	{
		// First SENDME: ewma = min = 10000; bdp = 124*10000/10000 = 124;
		// queue 0 < gamma; full (124+31 >= 124), so cwnd += (100*31+50)/100
		// = 31 -> 155. Exit check 31*SENDME_PER_CWND(155)=31*5=155 > 1*31.
		// next_cwnd_event 0 -> 5 = SENDME_PER_CWND, which resets full.
		name: "slow start grows by sendme_inc", cwnd: 124, inflight: 124, ss: true, nextCC: 1,
		rtt: 10000, wantCwnd: 155, wantInflight: 93, wantSS: true, wantMin: 10000, wantEWMA: 10000,
		wantBDP: 124, wantNextCC: 1, wantNextCwnd: 5,
	},
	{
		// ewma = (2*20000 + 1*10000)/3 = 16666; bdp = 155*10000/16666 =
		// 93; queue 62 < gamma but 100*93 < 75*155: not full, no growth.
		name: "slow start with a window not full", cwnd: 155, inflight: 93, ss: true, minRTT: 10000, ewmaRTT: 10000,
		nextCC: 1, nextCwnd: 5, rtt: 20000, wantCwnd: 155, wantInflight: 62, wantSS: true,
		wantMin: 10000, wantEWMA: 16666, wantBDP: 93, wantNextCC: 1, wantNextCwnd: 4,
	},
	{
		// ewma = (80000+10000)/3 = 30000; bdp = 400*10000/30000 = 133;
		// queue 267 >= gamma 186: cwnd = 133+186 = 319, slow start ends;
		// CWND_UPDATE_RATE(319) = (319+480)/961 = 0.
		name: "queueing ends slow start at gamma", cwnd: 400, inflight: 400, ss: true, minRTT: 10000, ewmaRTT: 10000,
		nextCC: 1, nextCwnd: 3, rtt: 40000, wantCwnd: 319, wantInflight: 369, wantSS: false,
		wantMin: 10000, wantEWMA: 30000, wantBDP: 133, wantNextCC: 0, wantNextCwnd: 2, wantFull: true,
	},
	{
		// Above sscap: inc = max((31*500+600)/(2*600), 1) = 13 -> 613.
		name: "RFC 3742 increments above sscap", cwnd: 600, inflight: 600, ss: true, minRTT: 10000, ewmaRTT: 10000,
		nextCC: 1, nextCwnd: 3, rtt: 10000, wantCwnd: 613, wantInflight: 569, wantSS: true,
		wantMin: 10000, wantEWMA: 10000, wantBDP: 600, wantNextCC: 1, wantNextCwnd: 2, wantFull: true,
	},
	{
		// inc = (15500+4999)/9998 = 2 -> 5001 >= cc_ss_max: 5000, out of
		// slow start. SENDME_PER_CWND(5000) = 161 resets full;
		// CWND_UPDATE_RATE = 5480/961 = 5.
		name: "slow start capped at cc_ss_max", cwnd: 4999, inflight: 4999, ss: true, minRTT: 10000, ewmaRTT: 10000,
		nextCC: 1, rtt: 10000, wantCwnd: 5000, wantInflight: 4968, wantSS: false,
		wantMin: 10000, wantEWMA: 10000, wantBDP: 4999, wantNextCC: 5, wantNextCwnd: 161,
	},
	{
		// sscap 100, cwnd_inc 1000, rate 1: inc = (3100+101)/202 = 15 ->
		// 116; 15*SENDME_PER_CWND(116)=15*4 = 60 <= 1000: slow start ends.
		name:   "slow start ends when its increment is below steady state",
		params: func(p *CCParams) { p.SSCap, p.CwndInc, p.CwndIncRate = 100, 1000, 1 },
		cwnd:   101, inflight: 101, ss: true, minRTT: 10000, ewmaRTT: 10000, nextCC: 1,
		rtt: 10000, wantCwnd: 116, wantInflight: 70, wantSS: false, wantMin: 10000, wantEWMA: 10000,
		wantBDP: 101, wantNextCC: 4, wantNextCwnd: 4,
	},
	{
		// Steady state: N = max(min(1*50/100, 10), 2) = 2; ewma =
		// (40000+20000)/3 = 20000; bdp = 1000*10000/20000 = 500; queue 500
		// > delta 372: cwnd = 500+372-1 = 871.
		name: "queue above delta", cwnd: 1000, inflight: 1000, minRTT: 10000, ewmaRTT: 20000, nextCC: 1, nextCwnd: 5,
		rtt: 20000, wantCwnd: 871, wantInflight: 969, wantMin: 10000, wantEWMA: 20000, wantBDP: 500,
		wantNextCC: 1, wantNextCwnd: 4, wantFull: true,
	},
	{
		// bdp = 1000*7000/10000 = 700; queue 300 > beta 248: -1.
		name: "queue above beta", cwnd: 1000, inflight: 1000, minRTT: 7000, ewmaRTT: 10000, nextCC: 1, nextCwnd: 5,
		rtt: 10000, wantCwnd: 999, wantInflight: 969, wantMin: 7000, wantEWMA: 10000, wantBDP: 700,
		wantNextCC: 1, wantNextCwnd: 4, wantFull: true,
	},
	{
		name: "full window and queue below alpha", cwnd: 1000, inflight: 1000, minRTT: 10000, ewmaRTT: 10000,
		nextCC: 1, nextCwnd: 5, rtt: 10000, wantCwnd: 1001, wantInflight: 969, wantMin: 10000, wantEWMA: 10000,
		wantBDP: 1000, wantNextCC: 1, wantNextCwnd: 4, wantFull: true,
	},
	{
		// 100*500 < 75*1000: not full, so no increase despite no queue.
		name: "window not full", cwnd: 1000, inflight: 500, minRTT: 10000, ewmaRTT: 10000,
		nextCC: 1, nextCwnd: 5, rtt: 10000, wantCwnd: 1000, wantInflight: 469, wantMin: 10000, wantEWMA: 10000,
		wantBDP: 1000, wantNextCC: 1, wantNextCwnd: 4,
	},
	{
		// cwnd_inc 31, rate 1: CWND_UPDATE_RATE(1000) = 1015/31 = 32, so
		// N = min(32*50/100, 10) = 10; next_cc_event 5 -> 4: no update.
		name:   "updates only every CWND_UPDATE_RATE SENDMEs",
		params: func(p *CCParams) { p.CwndInc, p.CwndIncRate = 31, 1 },
		cwnd:   1000, inflight: 1000, minRTT: 10000, ewmaRTT: 10000, nextCC: 5, nextCwnd: 5, rtt: 10000,
		wantCwnd: 1000, wantInflight: 969, wantMin: 10000, wantEWMA: 10000, wantBDP: 1000,
		wantNextCC: 4, wantNextCwnd: 4, wantFull: true,
	},
	{
		// beta 50, cwnd_inc 31: bdp = 125*1000/10000 = 12, queue 113 >
		// 50: 125-31 = 94, raised to cwnd_min 124.
		name:   "never below cc_cwnd_min",
		params: func(p *CCParams) { p.VegasBeta, p.CwndInc, p.CwndIncRate = 50, 31, 1 },
		cwnd:   125, inflight: 125, minRTT: 1000, ewmaRTT: 10000, nextCC: 1, nextCwnd: 3, rtt: 10000,
		wantCwnd: 124, wantInflight: 94, wantMin: 1000, wantEWMA: 10000, wantBDP: 12,
		wantNextCC: 4, wantNextCwnd: 2, wantFull: true,
	},
	{
		// At cwnd_min out of slow start, min RTT is reset to
		// percent_max_mix(10000, 5000, 100) = 10000; bdp = 124, and the
		// full window grows by 1; CWND_UPDATE_RATE(125) = 605/961 = 0.
		name: "min RTT reset at the window floor", cwnd: 124, inflight: 124, minRTT: 5000, ewmaRTT: 10000,
		nextCC: 1, nextCwnd: 3, rtt: 10000, wantCwnd: 125, wantInflight: 93, wantMin: 10000, wantEWMA: 10000,
		wantBDP: 124, wantNextCC: 0, wantNextCwnd: 2, wantFull: true,
	},
	{
		// A zero RTT is a clock stall: nothing but inflight changes.
		name: "clock stall", cwnd: 1000, inflight: 1000, minRTT: 10000, ewmaRTT: 10000, nextCC: 1, nextCwnd: 5,
		rtt: 0, wantCwnd: 1000, wantInflight: 969, wantMin: 10000, wantEWMA: 10000, wantBDP: 1000,
		wantNextCC: 0, wantNextCwnd: 4, wantStalls: 1,
	},
	{
		// 5000 times the average after slow start: a clock jump.
		name: "clock jump", cwnd: 1000, inflight: 1000, minRTT: 10000, ewmaRTT: 10000, nextCC: 1, nextCwnd: 5,
		rtt: 10000*5000 + 1, wantCwnd: 1000, wantInflight: 969, wantMin: 10000, wantEWMA: 10000, wantBDP: 1000,
		wantNextCC: 0, wantNextCwnd: 4, wantStalls: 1,
	},
	{
		// The same jump in slow start is believed (too few samples):
		// ewma = (2*50000000 + 10000)/3 = 33336666; bdp = 124*10000/33336666
		// = 0; queue 124 < gamma; full: +31.
		name: "no clock heuristics in slow start", cwnd: 124, inflight: 124, ss: true, minRTT: 10000, ewmaRTT: 10000,
		nextCC: 1, rtt: 50000000, wantCwnd: 155, wantInflight: 93, wantSS: true, wantMin: 10000,
		wantEWMA: 33336666, wantBDP: 0, wantNextCC: 1, wantNextCwnd: 5,
	},
}

func TestVegasRules(t *testing.T) {
	for _, r := range vegasRows {
		t.Run(r.name, func(t *testing.T) {
			p := DefaultCCParams()
			if r.params != nil {
				r.params(&p)
			}
			v := newVegas(p, 31, 0)
			v.cwnd, v.inflight, v.inSlowStart = r.cwnd, r.inflight, r.ss
			v.minRTT, v.ewmaRTT, v.maxRTT = r.minRTT, r.ewmaRTT, r.ewmaRTT
			v.bdp = r.cwnd // a stalled row keeps what was there
			v.nextCCEvent, v.nextCwndEvent = r.nextCC, r.nextCwnd
			v.onSendme(r.rtt)
			got := vegasRow{cwnd: v.cwnd, inflight: v.inflight, ss: v.inSlowStart, minRTT: v.minRTT, ewmaRTT: v.ewmaRTT,
				wantBDP: v.bdp, nextCC: v.nextCCEvent, nextCwnd: v.nextCwndEvent, wantFull: v.cwndFull, wantStalls: v.stalls}
			want := vegasRow{cwnd: r.wantCwnd, inflight: r.wantInflight, ss: r.wantSS, minRTT: r.wantMin, ewmaRTT: r.wantEWMA,
				wantBDP: r.wantBDP, nextCC: r.wantNextCC, nextCwnd: r.wantNextCwnd, wantFull: r.wantFull, wantStalls: r.wantStalls}
			if r.rtt == 0 || r.wantStalls > 0 {
				want.wantBDP = got.wantBDP // not the point of these rows
			}
			got.params, want.params = nil, nil
			if got.cwnd != want.cwnd || got.inflight != want.inflight || got.ss != want.ss || got.minRTT != want.minRTT ||
				got.ewmaRTT != want.ewmaRTT || got.wantBDP != want.wantBDP || got.nextCC != want.nextCC ||
				got.nextCwnd != want.nextCwnd || got.wantFull != want.wantFull || got.wantStalls != want.wantStalls {
				t.Errorf("\n got  cwnd %d inflight %d ss %v rtt %d/%d bdp %d next %d/%d full %v stalls %d\n want cwnd %d inflight %d ss %v rtt %d/%d bdp %d next %d/%d full %v stalls %d",
					got.cwnd, got.inflight, got.ss, got.minRTT, got.ewmaRTT, got.wantBDP, got.nextCC, got.nextCwnd, got.wantFull, got.wantStalls,
					want.cwnd, want.inflight, want.ss, want.minRTT, want.ewmaRTT, want.wantBDP, want.nextCC, want.nextCwnd, want.wantFull, want.wantStalls)
			}
		})
	}
}

func TestNEWMA(t *testing.T) {
	// prop 324 2.1.2: (BDP*2 + prev*(N-1))/(N+1), in integers.
	for _, c := range [][4]int64{{20000, 10000, 2, 16666}, {7, 0, 5, 7}, {100, 40, 9, 52}, {1, 1, 2, 1}} {
		if got := nEWMA(c[0], c[1], c[2]); got != c[3] {
			t.Errorf("nEWMA(%d, %d, %d) = %d, want %d", c[0], c[1], c[2], got, c[3])
		}
	}
}

func TestCCParamsFrom(t *testing.T) {
	// The 2026 consensus's congestion control entries, and the test
	// network's (none).
	live := map[string]int32{"cc_alg": 2, "cc_cwnd_full_gap": 4, "cc_cwnd_full_minpct": 25, "cc_cwnd_inc": 1,
		"cc_cwnd_inc_rate": 31, "cc_cwnd_min": 124, "cc_sscap_exit": 600, "cc_vegas_alpha_exit": 186,
		"cc_vegas_delta_exit": 310, "cc_sscap_onion": 475, "UseOptimisticData": 1}
	p := CCParamsFrom(func(n string) (int32, bool) { v, ok := live[n]; return v, ok })
	want := DefaultCCParams()
	want.CwndFullGap, want.CwndFullMinPct, want.SSCap, want.VegasAlpha, want.VegasDelta = 4, 25, 600, 186, 310
	if p != want {
		t.Fatalf("got %+v\nwant %+v", p, want)
	}
	if p := CCParamsFrom(func(string) (int32, bool) { return 0, false }); p != DefaultCCParams() {
		t.Fatalf("no entries: %+v", p)
	}
	if p := CCParamsFrom(func(n string) (int32, bool) { return 0, n == "cc_alg" }); p.Alg != 0 {
		t.Fatal("cc_alg=0 not taken")
	}
	if n := reflect.TypeFor[CCParams]().NumField(); len(want.fields()) != n {
		t.Fatalf("%d fields named; CCParams has %d", len(want.fields()), n)
	}
}

func TestCCParamsClamped(t *testing.T) {
	p := CCParams{Alg: 9, SendmeInc: 0, CwndMin: 5000, XonEwmaCnt: 1}.clamped()
	if p.Alg != 3 || p.SendmeInc != 1 || p.CwndMin != 1000 || p.XonEwmaCnt != 2 || p.CwndInit != 31 || p.SSMax != 500 {
		t.Fatalf("%+v", p)
	}
	d := DefaultCCParams()
	if d.clamped() != d {
		t.Fatal("defaults are out of their own bounds")
	}
	for inc, ok := range map[int]bool{0: false, 15: true, 14: false, 62: true, 63: false, 31: true} {
		if d.acceptSendmeInc(inc) != ok {
			t.Errorf("sendme_inc %d accepted: %v", inc, !ok)
		}
	}
}

// TestVegasSendmeDigestsAndRTT drives the vegas hop through sent and
// sendmeReceived: digests are recorded after cells 31, 62, ...; RTTs are
// measured from those cells' send times; the window gates sending.
func TestVegasSendmeDigestsAndRTT(t *testing.T) {
	v := newVegas(DefaultCCParams(), 31, 1)
	t0 := time.Unix(1000, 0)
	for i := 1; i <= 124; i++ {
		if !v.canSend() {
			t.Fatalf("window closed after %d cells", i-1)
		}
		v.sent(relaycrypto.Digest{byte(i)}, t0.Add(time.Duration(i)*time.Millisecond))
	}
	if v.canSend() {
		t.Fatal("sent past cwnd 124")
	}
	if len(v.expected) != 4 || v.expected[0][0] != 31 || v.expected[3][0] != 124 {
		t.Fatalf("recorded digests of %v", v.expected)
	}
	// A v0 SENDME below sendme_accept_min_version 1, and a v1 with the
	// wrong digest, are violations.
	if err := v.sendmeReceived(&cell.Sendme{}, t0); !errors.Is(err, ErrProtocol) {
		t.Fatalf("v0: %v", err)
	}
	v = newVegas(DefaultCCParams(), 31, 0)
	for i := 1; i <= 124; i++ {
		v.sent(relaycrypto.Digest{byte(i)}, t0.Add(time.Duration(i)*time.Millisecond))
	}
	if err := v.sendmeReceived(&cell.Sendme{Version: 1, Digest: [20]byte{62}}, t0); !errors.Is(err, ErrProtocol) {
		t.Fatalf("SENDME echoing cell 62 first: %v", err)
	}
	v = newVegas(DefaultCCParams(), 31, 0)
	for i := 1; i <= 124; i++ {
		v.sent(relaycrypto.Digest{byte(i)}, t0.Add(time.Duration(i)*time.Millisecond))
	}
	// Cell 31 was sent at t0+31ms; its SENDME arrives 10 ms later.
	if err := v.sendmeReceived(&cell.Sendme{Version: 1, Digest: [20]byte{31}}, t0.Add(41*time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	st := v.state()
	if st.MinRTT != 10*time.Millisecond || st.EWMARTT != 10*time.Millisecond || st.Inflight != 93 || st.Cwnd != 155 || st.SendmeInc != 31 {
		t.Fatalf("%+v", st)
	}
	if !v.canSend() {
		t.Fatal("window still closed after the SENDME")
	}
	v.expected, v.pending = v.expected[:0], v.pending[:0]
	if err := v.sendmeReceived(&cell.Sendme{Version: 1}, t0); !errors.Is(err, ErrProtocol) {
		t.Fatalf("SENDME without outstanding data: %v", err)
	}
}

// ntor-v3 responder (prop 332), written from the spec, for fake relays.
const (
	n3Proto = "ntor3-curve25519-sha3_256-1"
	n3Ver   = "circuit extend"
)

func n3Encap(b, s []byte) []byte {
	return append(binary.BigEndian.AppendUint64(b, uint64(len(s))), s...)
}

func n3Hash(tweak string, parts ...[]byte) []byte {
	h := sha3.New256()
	h.Write(n3Encap(nil, []byte(tweak)))
	for _, p := range parts {
		h.Write(p)
	}
	return h.Sum(nil)
}

func n3KDF(tweak string, s []byte, n int) []byte {
	x := sha3.NewSHAKE256()
	x.Write(n3Encap(nil, []byte(tweak)))
	x.Write(s)
	out := make([]byte, n)
	x.Read(out)
	return out
}

func n3CTR(key, msg []byte) []byte {
	blk, _ := aes.NewCipher(key)
	out := make([]byte, len(msg))
	cipher.NewCTR(blk, make([]byte, aes.BlockSize)).XORKeyStream(out, msg)
	return out
}

// ntorV3Respond answers a client handshake for the relay (id, b): it
// returns the client's decrypted message, the reply carrying answer, and
// the relay's keys.
func ntorV3Respond(t testing.TB, id [32]byte, b *ecdh.PrivateKey, hs []byte, answer func(clientMsg []byte) []byte) ([]byte, []byte, *torcrypto.RelayKeys) {
	t.Helper()
	if len(hs) < 128 {
		t.Fatalf("ntor-v3 handshake of %d bytes", len(hs))
	}
	bPub := b.PublicKey().Bytes()
	if !bytes.Equal(hs[:32], id[:]) || !bytes.Equal(hs[32:64], bPub) {
		t.Fatal("handshake for another relay")
	}
	xPub, enc, mac := hs[64:96], hs[96:len(hs)-32], hs[len(hs)-32:]
	X, err := ecdh.X25519().NewPublicKey(xPub)
	if err != nil {
		t.Fatal(err)
	}
	bx, _ := b.ECDH(X)
	s1 := append(append(append(append(append([]byte{}, bx...), id[:]...), xPub...), bPub...), n3Proto...)
	s1 = n3Encap(s1, []byte(n3Ver))
	k1 := n3KDF(n3Proto+":kdf_phase1", s1, 64)
	if !bytes.Equal(n3Hash(n3Proto+":msg_mac", n3Encap(nil, k1[32:]), id[:], bPub, xPub, enc), mac) {
		t.Fatal("client MAC does not verify")
	}
	clientMsg := n3CTR(k1[:32], enc)
	y, _ := ecdh.X25519().GenerateKey(bytes.NewReader(bytes.Repeat([]byte{7}, 32)))
	yPub := y.PublicKey().Bytes()
	xy, _ := y.ECDH(X)
	s := append(append(append(append(append(append(append([]byte{}, xy...), bx...), id[:]...), bPub...), xPub...), yPub...), n3Proto...)
	s = n3Encap(s, []byte(n3Ver))
	seed, verify := n3Hash(n3Proto+":key_seed", s), n3Hash(n3Proto+":verify", s)
	ks := n3KDF(n3Proto+":kdf_final", seed, 32+torcrypto.RelayKeyMaterialLen)
	sm := n3CTR(ks[:32], answer(clientMsg))
	auth := n3Hash(n3Proto+":auth_final", verify, id[:], bPub, yPub, xPub, mac, n3Encap(nil, sm), []byte(n3Proto), []byte("Server"))
	m := ks[32:]
	k := &torcrypto.RelayKeys{}
	n := copy(k.Df[:], m)
	n += copy(k.Db[:], m[n:])
	n += copy(k.Kf[:], m[n:])
	n += copy(k.Kb[:], m[n:])
	copy(k.KH[:], m[n:])
	return clientMsg, append(append(yPub, auth...), sm...), k
}

// ccAnswer is an exit's ntor-v3 answer carrying cc_sendme_inc inc.
func ccAnswer(inc int) func([]byte) []byte {
	return func([]byte) []byte {
		b, _ := torcrypto.AppendExtensions(nil, []torcrypto.Extension{{Type: torcrypto.ExtCCResponse, Data: []byte{byte(inc)}}})
		return b
	}
}

// createNtorV3 builds a one-hop circuit to a fake relay with ntor-v3; the
// relay answers with answer and the client's message is returned.
func createNtorV3(t testing.TB, cfg *Config, askCC bool, answer func([]byte) []byte) (*Circuit, *fakeRelay, []byte, error) {
	t.Helper()
	bKey, _ := ecdh.X25519().GenerateKey(bytes.NewReader(bytes.Repeat([]byte{3}, 32)))
	var id [32]byte
	id[0] = 0xed
	r := Relay{Ed25519ID: id, NtorKey: [32]byte(bKey.PublicKey().Bytes()), NtorV3: true, CongestionControl: askCC}
	l := newFakeLink()
	type res struct {
		c   *Circuit
		err error
	}
	done := make(chan res, 1)
	go func() {
		c, err := Create(context.Background(), l, r, cfg)
		done <- res{c, err}
	}()
	req := <-l.sent
	c2, err := cell.ParseCreate2(req.Payload()[:])
	if err != nil || c2.HType != cell.HTypeNtorV3 {
		t.Fatalf("%v %v", c2.HType, err)
	}
	clientMsg, reply, keys := ntorV3Respond(t, id, bKey, c2.HData, answer)
	hop, _ := relaycrypto.NewResponderHop(keys)
	rep, _ := l.pool.Get(context.Background())
	p, _ := cell.Created2{HData: reply}.Append(nil)
	rep.SetPayload(req.CircID(), cell.CmdCreated2, p)
	circID := req.CircID()
	l.pool.Put(req)
	l.handler().HandleCell(rep)
	got := <-done
	if got.err != nil {
		return nil, nil, clientMsg, got.err
	}
	return got.c, &fakeRelay{t: t, link: l, hop: hop, id: circID}, clientMsg, nil
}

func TestCCNegotiation(t *testing.T) {
	p := DefaultCCParams()
	off := DefaultCCParams()
	off.Alg = 0
	none := func([]byte) []byte { b, _ := torcrypto.AppendExtensions(nil, nil); return b }
	cases := []struct {
		name   string
		cfg    *Config
		askCC  bool
		answer func([]byte) []byte
		wantCC bool // the request went out
		ok     bool
		inc    int // negotiated; 0 = fixed windows
	}{
		{"negotiated", &Config{CongestionControl: &p}, true, ccAnswer(31), true, true, 31},
		{"exit's increment within a factor of 2", &Config{CongestionControl: &p}, true, ccAnswer(60), true, true, 60},
		{"exit declines", &Config{CongestionControl: &p}, true, none, true, true, 0},
		{"increment too far", &Config{CongestionControl: &p}, true, ccAnswer(63), true, false, 0},
		{"zero increment", &Config{CongestionControl: &p}, true, ccAnswer(0), true, false, 0},
		{"empty answer", &Config{CongestionControl: &p}, true, func([]byte) []byte {
			b, _ := torcrypto.AppendExtensions(nil, []torcrypto.Extension{{Type: torcrypto.ExtCCResponse}})
			return b
		}, true, false, 0},
		{"not asked for this hop", &Config{CongestionControl: &p}, false, ccAnswer(31), false, false, 0},
		{"consensus cc_alg 0", &Config{CongestionControl: &off}, true, ccAnswer(31), false, false, 0},
		{"no parameters", nil, true, none, false, true, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, _, msg, err := createNtorV3(t, tc.cfg, tc.askCC, tc.answer)
			exts, perr := torcrypto.ParseExtensions(msg)
			if perr != nil {
				t.Fatal(perr)
			}
			if _, asked := torcrypto.FindExtension(exts, torcrypto.ExtCCRequest); asked != tc.wantCC {
				t.Fatalf("CC request sent: %v", asked)
			}
			if (err == nil) != tc.ok {
				t.Fatalf("Create: %v", err)
			}
			if err != nil {
				if !errors.Is(err, ErrProtocol) {
					t.Fatalf("refusal is not a protocol error: %v", err)
				}
				return
			}
			st, ok := c.CongestionControl()
			if ok != (tc.inc != 0) || st.SendmeInc != tc.inc {
				t.Fatalf("CongestionControl() = %+v, %v", st, ok)
			}
		})
	}
}

// ccCircuit is a one-hop circuit with congestion control negotiated at
// sendme_inc 31 and an open BEGIN_DIR stream.
func ccCircuit(t *testing.T, p CCParams) (*Circuit, *fakeRelay, *stream.Stream) {
	t.Helper()
	c, r, _, err := createNtorV3(t, &Config{CongestionControl: &p}, true, ccAnswer(31))
	if err != nil {
		t.Fatal(err)
	}
	return c, r, r.openDir(c)
}

// TestCCSendmeEvery31 receives 100 DATA cells on a congestion-controlled
// hop: a SENDME v1 goes back after cells 31, 62 and 93, echoing each
// one's digest, and no stream SENDME ever does.
func TestCCSendmeEvery31(t *testing.T) {
	c, r, s := ccCircuit(t, DefaultCCParams())
	var digests []relaycrypto.Digest
	for i := 0; i < 100; i++ {
		digests = append(digests, r.send(cell.CmdRelay, cell.RelayData, s.ID(), bytes.Repeat([]byte{byte(i)}, 498)))
	}
	for k := 1; k <= 3; k++ {
		b, h, body := r.recv()
		m, err := cell.ParseSendme(body)
		if h.Cmd != cell.RelaySendme || h.StreamID != 0 || err != nil || m.Version != 1 || m.Digest != digests[31*k-1] {
			t.Fatalf("SENDME %d: %v on %d, %+v %v", k, h.Cmd, h.StreamID, m, err)
		}
		r.link.pool.Put(b)
	}
	if _, err := io.ReadFull(s, make([]byte, 100*498)); err != nil {
		t.Fatal(err)
	}
	select {
	case b := <-r.link.sent:
		_, h, _ := r.recvCell(b)
		t.Fatalf("unexpected %v on stream %d", h.Cmd, h.StreamID)
	default:
	}
	// A stream SENDME is a violation on a congestion-controlled circuit.
	r.send(cell.CmdRelay, cell.RelaySendme, s.ID(), nil)
	<-c.Done()
	if !errors.Is(c.Err(), stream.ErrProtocol) {
		t.Fatalf("circuit error %v", c.Err())
	}
}

// recvCell opens a cell the client sent.
func (r *fakeRelay) recvCell(c *cell.Cell) (*cell.Cell, cell.RelayHeader, []byte) {
	r.t.Helper()
	if _, ok := r.hop.Open(c); !ok {
		r.t.Fatal("relay did not recognize the client's cell")
	}
	h, body, err := c.RelayBody()
	if err != nil {
		r.t.Fatal(err)
	}
	return c, h, body
}

// TestCCWindowGatesSending writes on a congestion-controlled hop: exactly
// cwnd (124) DATA cells go out, then none until a SENDME; the SENDME 10 ms
// after cell 31 was sent grows the full window to 155 in slow start, so 62
// more may go. XOFF stops the stream, XON resumes it.
func TestCCWindowGatesSending(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c, r, s := ccCircuit(t, DefaultCCParams())
		werr := make(chan error, 1)
		go func() {
			_, err := s.Write(make([]byte, 400*498))
			werr <- err
		}()
		var digests []relaycrypto.Digest // of every DATA cell, in order
		drain := func() int {
			synctest.Wait()
			n := 0
			for len(r.link.sent) > 0 {
				b := <-r.link.sent
				d, ok := r.hop.Open(b)
				if !ok {
					t.Fatal("not recognized")
				}
				h, _, _ := b.RelayBody()
				if h.Cmd != cell.RelayData {
					t.Fatalf("sent %v", h.Cmd)
				}
				n++
				digests = append(digests, d)
				r.link.pool.Put(b)
			}
			return n
		}
		sendme := func(cellNo int) {
			d := digests[cellNo-1]
			r.send(cell.CmdRelay, cell.RelaySendme, 0, append([]byte{1, 0, 20}, d[:]...))
		}
		if n := drain(); n != 124 {
			t.Fatalf("%d cells in the initial window", n)
		}
		time.Sleep(10 * time.Millisecond)
		sendme(31)
		if n := drain(); n != 62 {
			t.Fatalf("%d cells after the first SENDME", n)
		}
		st, _ := c.CongestionControl()
		if st.Cwnd != 155 || st.Inflight != 155 || st.MinRTT != 10*time.Millisecond || !st.SlowStart {
			t.Fatalf("%+v", st)
		}
		// XOFF: the writer stops even when every cell is acknowledged.
		// The one cell it was already waiting to put on the circuit when
		// the XOFF came may still go.
		r.send(cell.CmdRelay, cell.RelayXoff, s.ID(), []byte{0})
		time.Sleep(10 * time.Millisecond)
		for k := 2; k <= 6; k++ {
			sendme(31 * k)
		}
		late := drain()
		if late > 1 {
			t.Fatalf("%d cells sent under XOFF", late)
		}
		st, _ = c.CongestionControl()
		if fs, _ := s.FlowStats(); fs.XoffReceived != 1 || st.Inflight != late {
			t.Fatalf("%+v %+v", fs, st)
		}
		r.send(cell.CmdRelay, cell.RelayXon, s.ID(), []byte{0, 0, 0, 0, 0})
		if n := drain(); n+late != st.Cwnd {
			t.Fatalf("%d+%d cells after XON, window %d", late, n, st.Cwnd)
		}
		s.Close()
		if err := <-werr; !errors.Is(err, stream.ErrClosed) {
			t.Fatalf("write: %v", err)
		}
	})
}

// TestCCSlowReader: DATA arriving faster than it is read makes the client
// send XOFF once more than cc_xoff_client cells' worth (here 20) wait, and
// XON once the reader has emptied the queue.
func TestCCSlowReader(t *testing.T) {
	p := DefaultCCParams()
	p.XoffClient = 20
	_, r, s := ccCircuit(t, p)
	flow := func() []cell.RelayCmd {
		var cmds []cell.RelayCmd
		for len(r.link.sent) > 0 {
			b, h, _ := r.recv()
			if h.Cmd != cell.RelaySendme {
				if h.StreamID != s.ID() {
					t.Fatalf("%v on stream %d", h.Cmd, h.StreamID)
				}
				cmds = append(cmds, h.Cmd)
			}
			r.link.pool.Put(b)
		}
		return cmds
	}
	for i := 0; i < 20; i++ {
		r.send(cell.CmdRelay, cell.RelayData, s.ID(), make([]byte, 498))
	}
	if got := flow(); len(got) != 0 {
		t.Fatalf("sent %v with 20 cells queued", got)
	}
	r.send(cell.CmdRelay, cell.RelayData, s.ID(), make([]byte, 498))
	if got := flow(); len(got) != 1 || got[0] != cell.RelayXoff {
		t.Fatalf("after 21 cells: %v", got)
	}
	for i := 0; i < 10; i++ { // data in flight keeps coming; no second XOFF
		r.send(cell.CmdRelay, cell.RelayData, s.ID(), make([]byte, 498))
	}
	if got := flow(); len(got) != 0 {
		t.Fatalf("sent %v after the XOFF", got)
	}
	if _, err := io.ReadFull(s, make([]byte, 30*498)); err != nil {
		t.Fatal(err)
	}
	if got := flow(); len(got) != 0 {
		t.Fatalf("sent %v with a cell still queued", got)
	}
	if _, err := io.ReadFull(s, make([]byte, 498)); err != nil {
		t.Fatal(err)
	}
	if got := flow(); len(got) != 1 || got[0] != cell.RelayXon {
		t.Fatalf("after draining: %v", got)
	}
	if fs, _ := s.FlowStats(); fs.XoffSent != 1 || fs.XonSent != 1 {
		t.Fatalf("%+v", fs)
	}
}

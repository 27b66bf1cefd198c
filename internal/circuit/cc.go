package circuit

import (
	"fmt"
	"math"
	"time"

	"github.com/onionlite/onionlite/internal/cell"
	"github.com/onionlite/onionlite/internal/relaycrypto"
)

// CCParams are the consensus parameters of congestion control (prop 324
// section 6.5) a client uses, one field per "params" entry. CCParamsFrom
// fills them from a consensus; otherwise start from DefaultCCParams.
// Values outside the consensus bounds are clamped into them (as C tor's
// networkstatus_get_param does), so a zero field means the bound, not the
// default.
type CCParams struct {
	// Alg is cc_alg: 0 keeps fixed windows (no request is made); any
	// other value requests congestion control, which onionlite always
	// runs as TOR_VEGAS (2, the deployed algorithm). Each end runs its
	// own algorithm, so only the request is negotiated (prop 324 10.2).
	Alg int
	// SendmeInc is cc_sendme_inc, the cells a SENDME acknowledges. An
	// exit's answer more than a factor of 2 away from it is refused.
	SendmeInc int
	// CwndInit, CwndMin, CwndMax and CwndInc are cc_cwnd_init,
	// cc_cwnd_min, cc_cwnd_max and cc_cwnd_inc, in cells.
	CwndInit, CwndMin, CwndMax, CwndInc int
	// CwndIncPctSS is cc_cwnd_inc_pct_ss and CwndIncRate cc_cwnd_inc_rate.
	CwndIncPctSS, CwndIncRate int
	// CwndFullGap, CwndFullMinPct and CwndFullPerCwnd are
	// cc_cwnd_full_gap, cc_cwnd_full_minpct and cc_cwnd_full_per_cwnd.
	CwndFullGap, CwndFullMinPct, CwndFullPerCwnd int
	// EwmaCwndPct, EwmaMax and EwmaSS are cc_ewma_cwnd_pct, cc_ewma_max
	// and cc_ewma_ss; RTTResetPct is cc_rtt_reset_pct.
	EwmaCwndPct, EwmaMax, EwmaSS, RTTResetPct int
	// SSMax is cc_ss_max and SSCap cc_sscap_exit.
	SSMax, SSCap int
	// VegasAlpha, VegasBeta, VegasGamma and VegasDelta are
	// cc_vegas_{alpha,beta,gamma,delta}_exit, in cells.
	VegasAlpha, VegasBeta, VegasGamma, VegasDelta int
	// XoffClient, XonRate, XonChangePct and XonEwmaCnt are
	// cc_xoff_client, cc_xon_rate (both in cells), cc_xon_change_pct and
	// cc_xon_ewma_cnt: stream flow control on our receiving side.
	XoffClient, XonRate, XonChangePct, XonEwmaCnt int
}

// DefaultCCParams returns the defaults tor 0.4.9 assumes for entries the
// consensus leaves out: Vegas on (cc_alg 2), a window of 124 cells that
// never falls below 124, and in steady state one cell more or less per
// SENDME (cc_cwnd_inc 1, cc_cwnd_inc_rate 31). tor 0.4.8 and older
// defaulted to cc_alg 0, cc_cwnd_min 62, cc_cwnd_inc 31 and
// cc_cwnd_inc_rate 1; the live consensus sets the 0.4.9 values.
func DefaultCCParams() CCParams {
	return CCParams{
		Alg: 2, SendmeInc: 31,
		CwndInit: 124, CwndMin: 124, CwndMax: math.MaxInt32, CwndInc: 1,
		CwndIncPctSS: 100, CwndIncRate: 31,
		CwndFullGap: 1, CwndFullMinPct: 75, CwndFullPerCwnd: 1,
		EwmaCwndPct: 50, EwmaMax: 10, EwmaSS: 2, RTTResetPct: 100,
		SSMax: 5000, SSCap: 500,
		VegasAlpha: 124, VegasBeta: 248, VegasGamma: 186, VegasDelta: 372,
		XoffClient: 500, XonRate: 500, XonChangePct: 25, XonEwmaCnt: 2,
	}
}

// CCParamsFrom returns DefaultCCParams with every entry lookup finds
// replaced by the consensus's value. lookup reports a "params" entry by
// name; dircache/netdir's Params.Lookup has this shape:
//
//	p := circuit.CCParamsFrom(nd.Params().Lookup)
//	cfg.CongestionControl = &p
//
// Absent entries keep tor 0.4.9's defaults, which differ from 0.4.8's.
func CCParamsFrom(lookup func(name string) (int32, bool)) CCParams {
	p := DefaultCCParams()
	for name, f := range p.fields() {
		if v, ok := lookup(name); ok {
			*f = int(v)
		}
	}
	return p
}

// fields maps consensus parameter names to p's fields.
func (p *CCParams) fields() map[string]*int {
	return map[string]*int{
		"cc_alg":                &p.Alg,
		"cc_sendme_inc":         &p.SendmeInc,
		"cc_cwnd_init":          &p.CwndInit,
		"cc_cwnd_min":           &p.CwndMin,
		"cc_cwnd_max":           &p.CwndMax,
		"cc_cwnd_inc":           &p.CwndInc,
		"cc_cwnd_inc_pct_ss":    &p.CwndIncPctSS,
		"cc_cwnd_inc_rate":      &p.CwndIncRate,
		"cc_cwnd_full_gap":      &p.CwndFullGap,
		"cc_cwnd_full_minpct":   &p.CwndFullMinPct,
		"cc_cwnd_full_per_cwnd": &p.CwndFullPerCwnd,
		"cc_ewma_cwnd_pct":      &p.EwmaCwndPct,
		"cc_ewma_max":           &p.EwmaMax,
		"cc_ewma_ss":            &p.EwmaSS,
		"cc_rtt_reset_pct":      &p.RTTResetPct,
		"cc_ss_max":             &p.SSMax,
		"cc_sscap_exit":         &p.SSCap,
		"cc_vegas_alpha_exit":   &p.VegasAlpha,
		"cc_vegas_beta_exit":    &p.VegasBeta,
		"cc_vegas_gamma_exit":   &p.VegasGamma,
		"cc_vegas_delta_exit":   &p.VegasDelta,
		"cc_xoff_client":        &p.XoffClient,
		"cc_xon_rate":           &p.XonRate,
		"cc_xon_change_pct":     &p.XonChangePct,
		"cc_xon_ewma_cnt":       &p.XonEwmaCnt,
	}
}

func clampInt(v, lo, hi int) int { return max(lo, min(v, hi)) }

// clamped returns p with every value inside its consensus bounds.
func (p CCParams) clamped() CCParams {
	const i32 = math.MaxInt32
	p.Alg = clampInt(p.Alg, 0, 3)
	p.SendmeInc = clampInt(p.SendmeInc, 1, 254)
	p.CwndInit = clampInt(p.CwndInit, 31, 10000)
	p.CwndMin = clampInt(p.CwndMin, 31, 1000)
	p.CwndMax = clampInt(p.CwndMax, 500, i32)
	p.CwndInc = clampInt(p.CwndInc, 1, 1000)
	p.CwndIncPctSS = clampInt(p.CwndIncPctSS, 1, 500)
	p.CwndIncRate = clampInt(p.CwndIncRate, 1, 250)
	p.CwndFullGap = clampInt(p.CwndFullGap, 0, math.MaxInt16)
	p.CwndFullMinPct = clampInt(p.CwndFullMinPct, 0, 100)
	p.CwndFullPerCwnd = clampInt(p.CwndFullPerCwnd, 0, 1)
	p.EwmaCwndPct = clampInt(p.EwmaCwndPct, 1, 255)
	p.EwmaMax = clampInt(p.EwmaMax, 2, i32)
	p.EwmaSS = clampInt(p.EwmaSS, 2, i32)
	p.RTTResetPct = clampInt(p.RTTResetPct, 0, 100)
	p.SSMax = clampInt(p.SSMax, 500, i32)
	p.SSCap = clampInt(p.SSCap, 100, i32)
	p.VegasAlpha = clampInt(p.VegasAlpha, 0, 1000)
	p.VegasBeta = clampInt(p.VegasBeta, 0, 1000)
	p.VegasGamma = clampInt(p.VegasGamma, 0, 1000)
	p.VegasDelta = clampInt(p.VegasDelta, 0, i32)
	p.XoffClient = clampInt(p.XoffClient, 1, 10000)
	p.XonRate = clampInt(p.XonRate, 1, 5000)
	p.XonChangePct = clampInt(p.XonChangePct, 1, 99)
	p.XonEwmaCnt = clampInt(p.XonEwmaCnt, 2, 100)
	return p
}

// acceptSendmeInc reports whether an exit's cc_sendme_inc may be used: not
// zero and within a factor of 2 of ours (prop 324 10.5).
func (p CCParams) acceptSendmeInc(inc int) bool {
	return inc != 0 && inc <= 2*p.SendmeInc && inc >= p.SendmeInc/2
}

// CCState is a snapshot of congestion control on one hop.
type CCState struct {
	// SendmeInc is the negotiated cc_sendme_inc.
	SendmeInc int
	// Cwnd is the congestion window and Inflight the DATA cells sent and
	// not yet acknowledged, in cells.
	Cwnd, Inflight int
	// SlowStart says whether Vegas is still in slow start.
	SlowStart bool
	// MinRTT, EWMARTT and MaxRTT are the circuit RTT estimates (zero
	// before the first SENDME).
	MinRTT, EWMARTT, MaxRTT time.Duration
	// BDP is the congestion-window BDP estimate Vegas uses, in cells.
	BDP int
	// Sendmes counts the SENDMEs received and Stalls those whose RTT was
	// discarded as a clock stall or jump (prop 324 2.1.1).
	Sendmes, Stalls int
}

// deltaDiscrepancyMax is C tor's DELTA_DISCREPENCY_RATIO_MAX: an RTT this
// many times above or below the average is a clock jump or stall.
const deltaDiscrepancyMax = 5000

// vegas is prop 324's congestion control for one hop as the origin runs
// it: inflight against cwnd replaces the package window, each SENDME
// measures the RTT of the cell that triggered it, the BDP is estimated
// from the window and the RTTs (section 3.1.2, the estimator Vegas uses),
// and TOR_VEGAS (section 3.3) with RFC 3742 limited slow start moves cwnd.
// It follows tor 0.4.9's congestion_control_common.c and
// congestion_control_vegas.c; times are microseconds, as there. Our local
// channel is never treated as blocked (the orconn_blocked signal), so
// only RTT drives the window.
type vegas struct {
	p                CCParams // clamped
	acceptMinVersion int
	inc              int64 // negotiated cc_sendme_inc

	cwnd, inflight int64
	sentCells      uint64
	// expected holds the digests after every inc-th DATA cell sent and
	// pending the times they were sent; a SENDME pops one of each.
	expected []relaycrypto.Digest
	pending  []time.Time

	inSlowStart   bool
	nextCCEvent   int64
	nextCwndEvent int64
	cwndFull      bool

	minRTT, ewmaRTT, maxRTT int64 // µs
	clockBroken             bool

	bdp int64 // cells: cwnd * minRTT / ewmaRTT

	sendmes, stalls int

	recv deliverWindow
}

func newVegas(p CCParams, inc int, acceptMinVersion int) *vegas {
	v := &vegas{p: p.clamped(), acceptMinVersion: acceptMinVersion, inc: int64(inc), inSlowStart: true,
		recv: newDeliverWindow(CircWindowStart, inc)}
	v.cwnd = int64(v.p.CwndInit)
	v.nextCCEvent = v.cwndUpdateRate()
	return v
}

// nEWMA is prop 324 2.1.2's N_EWMA in the rounding form C tor uses; a
// zero previous value takes the new one.
func nEWMA(curr, prev, n int64) int64 {
	if prev == 0 {
		return curr
	}
	return (2*curr + (n-1)*prev) / (n + 1)
}

// percentMaxMix is pct% of the larger of a and b plus the rest of the
// smaller.
func percentMaxMix(a, b, pct int64) int64 {
	hi, lo := max(a, b), min(a, b)
	return pct*hi/100 + (100-pct)*lo/100
}

// cwndUpdateRate is CWND_UPDATE_RATE: SENDMEs between window updates.
func (v *vegas) cwndUpdateRate() int64 {
	if v.inSlowStart {
		return 1
	}
	r := int64(v.p.CwndIncRate)
	return (v.cwnd + r*v.inc/2) / (r * v.inc)
}

// sendmePerCwnd is SENDME_PER_CWND: the SENDMEs in one window, rounded.
func (v *vegas) sendmePerCwnd() int64 { return (v.cwnd + v.inc/2) / v.inc }

// ewmaCount is the N of N_EWMA for RTT and BDP.
func (v *vegas) ewmaCount() int64 {
	var n int64
	if v.inSlowStart {
		n = int64(v.p.EwmaSS)
	} else {
		n = min(v.cwndUpdateRate()*int64(v.p.EwmaCwndPct)/100, int64(v.p.EwmaMax))
	}
	return max(n, 2)
}

func (v *vegas) canSend() bool { return v.inflight < v.cwnd }

func (v *vegas) sent(d relaycrypto.Digest, now time.Time) {
	v.sentCells++
	v.inflight++
	// The exit sends a SENDME after every inc-th DATA cell it receives:
	// remember that cell's digest and send time.
	if v.sentCells%uint64(v.inc) == 0 {
		v.expected = append(v.expected, d)
		v.pending = append(v.pending, now)
	}
}

func (v *vegas) delivered(d relaycrypto.Digest) (bool, relaycrypto.Digest, error) {
	return v.recv.delivered(d)
}

func (v *vegas) sendmeReceived(m *cell.Sendme, now time.Time) error {
	n := len(v.expected)
	err := checkSendme(m, v.acceptMinVersion, &v.expected)
	var sentAt time.Time
	if len(v.expected) < n { // a digest was used up: so is its send time
		sentAt, v.pending = v.pending[0], v.pending[1:]
	}
	if err != nil {
		return err
	}
	v.sendmes++
	v.onSendme(now.Sub(sentAt).Microseconds())
	return nil
}

// onSendme runs TOR_VEGAS for one SENDME whose triggering cell took rtt
// µs to be acknowledged (congestion_control_vegas_process_sendme).
func (v *vegas) onSendme(rtt int64) {
	if v.nextCCEvent > 0 {
		v.nextCCEvent--
	}
	if v.nextCwndEvent > 0 {
		v.nextCwndEvent--
	}
	if !v.updateEstimates(rtt) {
		v.inflight -= v.inc
		return
	}
	queueUse := max(v.cwnd-v.bdp, 0)
	if v.inflight+int64(v.p.CwndFullGap)*v.inc >= v.cwnd {
		v.cwndFull = true
	} else if 100*v.inflight < int64(v.p.CwndFullMinPct)*v.cwnd {
		v.cwndFull = false
	}
	if v.inSlowStart {
		if queueUse < int64(v.p.VegasGamma) {
			if v.cwndFull {
				inc := v.slowStartInc()
				v.cwnd += inc
				// Exit when the limited slow start grows the window less
				// than steady state would.
				if inc*v.sendmePerCwnd() <= int64(v.p.CwndInc)*int64(v.p.CwndIncRate) {
					v.inSlowStart = false
				}
			}
		} else {
			// Queueing seen: exit slow start at the gamma threshold.
			v.cwnd = v.bdp + int64(v.p.VegasGamma)
			v.inSlowStart = false
		}
		if v.cwnd >= int64(v.p.SSMax) {
			v.cwnd = int64(v.p.SSMax)
			v.inSlowStart = false
		}
	} else if v.nextCCEvent == 0 {
		switch {
		case queueUse > int64(v.p.VegasDelta):
			v.cwnd = v.bdp + int64(v.p.VegasDelta) - int64(v.p.CwndInc)
		case queueUse > int64(v.p.VegasBeta):
			v.cwnd -= int64(v.p.CwndInc)
		case v.cwndFull && queueUse < int64(v.p.VegasAlpha):
			v.cwnd += int64(v.p.CwndInc)
		}
		v.cwnd = max(v.cwnd, int64(v.p.CwndMin))
	}
	if v.nextCwndEvent == 0 {
		v.nextCwndEvent = v.sendmePerCwnd()
	}
	if v.nextCCEvent == 0 {
		v.nextCCEvent = v.cwndUpdateRate()
	}
	if v.p.CwndFullPerCwnd != 0 {
		if v.nextCwndEvent == v.sendmePerCwnd() {
			v.cwndFull = false
		}
	} else if v.nextCCEvent == v.cwndUpdateRate() {
		v.cwndFull = false
	}
	v.inflight -= v.inc
	v.cwnd = min(v.cwnd, int64(v.p.CwndMax))
}

// slowStartInc is RFC 3742 limited slow start (rfc3742_ss_inc).
func (v *vegas) slowStartInc() int64 {
	capc := int64(v.p.SSCap)
	if v.cwnd <= capc {
		return (int64(v.p.CwndIncPctSS)*v.inc + 50) / 100
	}
	return max((v.inc*capc+v.cwnd)/(2*v.cwnd), 1)
}

// updateRTT folds one RTT sample into the estimates and returns it, or 0
// when it looks like a clock stall or jump (and is not used).
func (v *vegas) updateRTT(rtt int64) int64 {
	if v.stalledOrJumped(v.ewmaRTT, rtt) {
		v.stalls++
		return 0
	}
	v.ewmaRTT = nEWMA(rtt, v.ewmaRTT, v.ewmaCount())
	v.maxRTT = max(v.maxRTT, rtt)
	switch {
	case v.minRTT == 0:
		v.minRTT = v.ewmaRTT
	case v.cwnd == int64(v.p.CwndMin) && !v.inSlowStart:
		// Out of a wedge: the window hit its floor, perhaps because
		// min RTT was abnormally low.
		v.minRTT = percentMaxMix(v.ewmaRTT, v.minRTT, int64(v.p.RTTResetPct))
	case v.ewmaRTT < v.minRTT:
		v.minRTT = v.ewmaRTT
	}
	return rtt
}

// stalledOrJumped applies prop 324 2.1.1's clock heuristics.
func (v *vegas) stalledOrJumped(old, rtt int64) bool {
	if rtt <= 0 {
		v.clockBroken = true
		return true
	}
	if v.inSlowStart || v.ewmaRTT == 0 {
		return false // too few samples to compare against
	}
	if old > rtt*deltaDiscrepancyMax {
		return v.clockBroken
	}
	if rtt > old*deltaDiscrepancyMax {
		return true
	}
	v.clockBroken = false
	return false
}

// updateEstimates folds an RTT sample into the RTT and BDP estimates and
// reports whether Vegas may run on them: not when the sample was
// discarded, and the BDP is then the window itself until a first RTT is
// known.
func (v *vegas) updateEstimates(rtt int64) bool {
	curr := v.updateRTT(rtt)
	if v.ewmaRTT == 0 {
		v.bdp = v.cwnd
		return false
	}
	v.bdp = v.cwnd * v.minRTT / v.ewmaRTT
	return curr != 0
}

func (v *vegas) state() CCState {
	us := func(x int64) time.Duration { return time.Duration(x) * time.Microsecond }
	return CCState{SendmeInc: int(v.inc), Cwnd: int(v.cwnd), Inflight: int(v.inflight), SlowStart: v.inSlowStart,
		MinRTT: us(v.minRTT), EWMARTT: us(v.ewmaRTT), MaxRTT: us(v.maxRTT), BDP: int(v.bdp),
		Sendmes: v.sendmes, Stalls: v.stalls}
}

func (v *vegas) String() string {
	return fmt.Sprintf("cwnd %d inflight %d ss %v rtt %d/%d/%d µs", v.cwnd, v.inflight, v.inSlowStart, v.minRTT, v.ewmaRTT, v.maxRTT)
}

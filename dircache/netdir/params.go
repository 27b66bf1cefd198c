package netdir

import (
	"math"
	"slices"

	"github.com/onionlite/onionlite/internal/netdoc"
)

// Param describes one consensus "params" entry a client uses: its name,
// the value to assume when it is absent, and the bounds a present value
// is clamped to (as C tor's networkstatus_get_param does).
type Param struct {
	Name              string
	Default, Min, Max int32
}

// Params are the consensus parameters of a NetDir. The zero value has
// none, so every Get returns the default.
type Params struct {
	list netdoc.Params // sorted by name
}

func newParams(p netdoc.Params) Params {
	l := slices.Clone(p)
	slices.SortStableFunc(l, func(a, b netdoc.Param) int {
		switch {
		case a.Name < b.Name:
			return -1
		case a.Name > b.Name:
			return 1
		}
		return 0
	})
	// A repeated name keeps its first value, as netdoc.Params.Get does.
	l = slices.CompactFunc(l, func(a, b netdoc.Param) bool { return a.Name == b.Name })
	return Params{list: slices.Clip(l)}
}

// Lookup returns the raw value of the named parameter and whether the
// consensus lists it.
func (p Params) Lookup(name string) (int32, bool) {
	i, ok := slices.BinarySearchFunc(p.list, name, func(e netdoc.Param, n string) int {
		switch {
		case e.Name < n:
			return -1
		case e.Name > n:
			return 1
		}
		return 0
	})
	if !ok {
		return 0, false
	}
	return p.list[i].Value, true
}

// Get returns the value of q: the consensus value clamped to
// [q.Min, q.Max], or q.Default when the consensus does not list it.
func (p Params) Get(q Param) int32 {
	v, ok := p.Lookup(q.Name)
	if !ok {
		return q.Default
	}
	return min(max(v, q.Min), q.Max)
}

// Len returns the number of parameters the consensus lists.
func (p Params) Len() int { return len(p.list) }

const maxInt32 = math.MaxInt32

// Parameters a client reads, with param-spec's (or, where the spec is
// silent or stale, C tor 0.4.8's, or 0.4.9's where it changed them) defaults and bounds.
var (
	// Bandwidth weighting (dir-spec 3.8.3).
	ParamBwWeightScale   = Param{"bwweightscale", 10000, 1, maxInt32}
	ParamMaxUnmeasuredBw = Param{"maxunmeasuredbw", 20, 1, maxInt32} // kB/s

	// Directory information.
	ParamMinPathsForCircsPct = Param{"min_paths_for_circs_pct", 60, 25, 95}

	// Circuits and streams (tor-spec 7.3, proposal 289).
	ParamCircWindow             = Param{"circwindow", 1000, 100, 1000}
	ParamSendmeEmitMinVersion   = Param{"sendme_emit_min_version", 0, 0, 255}
	ParamSendmeAcceptMinVersion = Param{"sendme_accept_min_version", 0, 0, 255}
	ParamExtendByEd25519ID      = Param{"ExtendByEd25519ID", 0, 0, 1}
	ParamCircMaxCellQueueSize   = Param{"circ_max_cell_queue_size", 50000, 1000, maxInt32}

	// Congestion control (proposal 324 section 6.5; defaults as in C tor
	// 0.4.9, which changed cc_alg to 2 (Vegas; 0 means fixed windows) and
	// cc_cwnd_min/inc/inc_rate to the values the live consensus carries).
	ParamCCAlg             = Param{"cc_alg", 2, 0, 3}
	ParamCCSendmeInc       = Param{"cc_sendme_inc", 31, 1, 255}
	ParamCCCwndInit        = Param{"cc_cwnd_init", 124, 31, 10000}
	ParamCCCwndMin         = Param{"cc_cwnd_min", 124, 31, 1000}
	ParamCCCwndMax         = Param{"cc_cwnd_max", maxInt32, 500, maxInt32}
	ParamCCCwndInc         = Param{"cc_cwnd_inc", 1, 1, 1000}
	ParamCCCwndIncPctSS    = Param{"cc_cwnd_inc_pct_ss", 100, 1, 500}
	ParamCCCwndIncRate     = Param{"cc_cwnd_inc_rate", 31, 1, 250}
	ParamCCCwndFullGap     = Param{"cc_cwnd_full_gap", 1, 0, math.MaxInt16}
	ParamCCCwndFullMinPct  = Param{"cc_cwnd_full_minpct", 75, 0, 100}
	ParamCCCwndFullPerCwnd = Param{"cc_cwnd_full_per_cwnd", 1, 0, 1}
	ParamCCBweMin          = Param{"cc_bwe_min", 5, 2, 20}
	ParamCCEwmaCwndPct     = Param{"cc_ewma_cwnd_pct", 50, 1, 255}
	ParamCCEwmaMax         = Param{"cc_ewma_max", 10, 2, maxInt32}
	ParamCCEwmaSS          = Param{"cc_ewma_ss", 2, 2, maxInt32}
	ParamCCRttResetPct     = Param{"cc_rtt_reset_pct", 100, 0, 100}
	ParamCCSSMax           = Param{"cc_ss_max", 5000, 500, maxInt32}
	ParamCCVegasAlphaExit  = Param{"cc_vegas_alpha_exit", 124, 0, 1000}
	ParamCCVegasBetaExit   = Param{"cc_vegas_beta_exit", 248, 0, 1000}
	ParamCCVegasGammaExit  = Param{"cc_vegas_gamma_exit", 186, 0, 1000}
	ParamCCVegasDeltaExit  = Param{"cc_vegas_delta_exit", 372, 0, maxInt32}
	ParamCCSSCapExit       = Param{"cc_sscap_exit", 500, 100, maxInt32}
	ParamCCXoffClient      = Param{"cc_xoff_client", 500, 1, 10000} // cells
	ParamCCXonRate         = Param{"cc_xon_rate", 500, 1, 5000}     // cells
	ParamCCXonChangePct    = Param{"cc_xon_change_pct", 25, 1, 99}
	ParamCCXonEwmaCnt      = Param{"cc_xon_ewma_cnt", 2, 2, 100}

	// Circuit build timeouts (path-spec 2.4.5).
	ParamCbtDisabled       = Param{"cbtdisabled", 0, 0, 1}
	ParamCbtNumModes       = Param{"cbtnummodes", 10, 1, 20}
	ParamCbtRecentCount    = Param{"cbtrecentcount", 20, 3, 1000}
	ParamCbtMaxTimeouts    = Param{"cbtmaxtimeouts", 18, 3, 10000}
	ParamCbtMinCircs       = Param{"cbtmincircs", 100, 1, 10000}
	ParamCbtQuantile       = Param{"cbtquantile", 80, 10, 99}
	ParamCbtCloseQuantile  = Param{"cbtclosequantile", 99, 10, 99}
	ParamCbtTestFreq       = Param{"cbttestfreq", 10, 1, maxInt32}           // seconds
	ParamCbtMinTimeout     = Param{"cbtmintimeout", 10, 10, maxInt32}        // ms
	ParamCbtInitialTimeout = Param{"cbtinitialtimeout", 60000, 10, maxInt32} // ms
	ParamCbtLearnTimeout   = Param{"cbtlearntimeout", 180, 10, 60000}        // seconds
	ParamCbtMaxOpenCircs   = Param{"cbtmaxopencircs", 10, 0, 14}

	// Guards (guard-spec A.1, param-spec 11).
	ParamGuardLifetimeDays             = Param{"guard-lifetime-days", 120, 1, 3650}
	ParamGuardConfirmedMinLifetimeDays = Param{"guard-confirmed-min-lifetime-days", 60, 1, 3650}
	ParamGuardInternetLikelyDownSecs   = Param{"guard-internet-likely-down-interval", 600, 1, maxInt32}
	ParamGuardMaxSampleSize            = Param{"guard-max-sample-size", 60, 1, maxInt32}
	ParamGuardMaxSampleThresholdPct    = Param{"guard-max-sample-threshold-percent", 20, 1, 100}
	ParamGuardMinFilteredSampleSize    = Param{"guard-min-filtered-sample-size", 20, 1, maxInt32}
	ParamGuardNPrimary                 = Param{"guard-n-primary-guards", 3, 1, maxInt32}
	ParamGuardNPrimaryToUse            = Param{"guard-n-primary-guards-to-use", 1, 1, maxInt32}
	ParamGuardNPrimaryDirToUse         = Param{"guard-n-primary-dir-guards-to-use", 3, 1, maxInt32}
	ParamGuardNonprimaryConnectTimeout = Param{"guard-nonprimary-guard-connect-timeout", 15, 1, maxInt32}
	ParamGuardNonprimaryIdleTimeout    = Param{"guard-nonprimary-guard-idle-timeout", 600, 1, maxInt32}
	ParamGuardRemoveUnlistedAfterDays  = Param{"guard-remove-unlisted-guards-after-days", 20, 1, 3650}
	ParamGuardMeaningfulRestrictionPct = Param{"guard-meaningful-restriction-percent", 20, 1, 100}
	ParamGuardExtremeRestrictionPct    = Param{"guard-extreme-restriction-percent", 1, 1, 100}
	ParamUseGuardFraction              = Param{"UseGuardFraction", 0, 0, 1}

	// Consensus diffs (param-spec 5).
	ParamTryDiffForConsensusNewerThan = Param{"try-diff-for-consensus-newer-than", 72, 0, 8192} // hours
)

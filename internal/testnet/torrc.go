package testnet

import (
	"fmt"
	"strings"
)

// authorityLine is the torrc line naming one authority to every node and
// client.
func authorityLine(n *Node) string {
	return fmt.Sprintf("DirAuthority %s orport=%d no-v2 v3ident=%s 127.0.0.1:%d %s",
		n.Nick, n.ORPort, n.V3Ident, n.DirPort, n.Fingerprint)
}

// noGeoIP are the lines that keep tor from loading Debian's tor-geoipdb
// (a recommended package: installed by a plain "apt-get install tor", not
// by ours, which passes --no-install-recommends). Parsed, the two files
// take about 36 MB of a client's heap: a C tor measured beside onionlite
// would weigh three times as much on a machine that has them, and nothing
// here selects relays by country.
var noGeoIP = []string{`GeoIPFile ""`, `GeoIPv6File ""`}

// nodeTorrc renders the configuration of one node: the common part of
// ../shared/notes/tor-testnet.md section 4 plus the role's additions, run
// in the foreground, with the control port on an automatic port written
// to DataDir/control_port. offset shifts the authorities' voting schedule
// (TestingV3AuthVotingStartOffset, seconds).
func nodeTorrc(n *Node, root, logDir string, interval, offset int, auths []string) string {
	var b strings.Builder
	l := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	l("# onionlite testnet node %s (%s); written by internal/testnet", n.Nick, n.Role)
	l("TestingTorNetwork 1")
	l("DataDirectory %s", n.DataDir)
	l("RunAsDaemon 0")
	l("Nickname %s", n.Nick)
	l("ContactInfo %s@tornet.invalid", n.Nick)
	l("Address 127.0.0.1")
	l("AddressDisableIPv6 1")
	l("ORPort 127.0.0.1:%d", n.ORPort)
	l("DirPort 127.0.0.1:%d", n.DirPort)
	l("ControlPort 127.0.0.1:auto")
	l("ControlPortWriteToFile %s/control_port", n.DataDir)
	l("CookieAuthentication 1")
	l("SocksPort 0")
	l("OutboundBindAddress 127.0.0.1")
	l("UseDefaultFallbackDirs 0")
	for _, g := range noGeoIP {
		l("%s", g)
	}
	l("ServerDNSResolvConfFile %s/resolv.conf", root)
	l("ServerDNSAllowBrokenConfig 1")
	l("Log notice file %s/notice.log", logDir)
	l("Log info file %s/info.log", logDir)
	l("SafeLogging 0")
	l("LogTimeGranularity 1")
	l("ShutdownWaitLength 0")
	l("DisableDebuggerAttachment 0")
	l("AssumeReachable 1")
	l("PathsNeededToBuildCircuits 0.67")
	l("TestingDirAuthVoteHSDir *")
	l("TestingDirAuthVoteGuard *")
	l("TestingMinExitFlagThreshold 0")
	l("V3AuthNIntervalsValid 3")
	for _, a := range auths {
		l("%s", a)
	}
	switch n.Role {
	case Authority:
		vote, dist, initial, initVote, initDist := voteTimes(secondsDuration(interval))
		l("AuthoritativeDirectory 1")
		l("V3AuthoritativeDirectory 1")
		l("V3AuthVotingInterval %d", interval)
		l("V3AuthVoteDelay %d", vote)
		l("V3AuthDistDelay %d", dist)
		l("TestingV3AuthInitialVotingInterval %d", initial)
		l("TestingV3AuthInitialVoteDelay %d", initVote)
		l("TestingV3AuthInitialDistDelay %d", initDist)
		l("TestingV3AuthVotingStartOffset %d", offset)
		l("ExitRelay 0")
		l("ExitPolicy reject *:*")
	case Middle:
		l("ExitRelay 0")
		l("ExitPolicy reject *:*")
	case Exit:
		// Not "accept 127.0.0.0/8:*": microdescriptor policy summaries
		// ignore accepts narrower than /0, so clients would never pick the
		// exit. OutboundBindAddressExit keeps exit traffic on loopback: the
		// kernel refuses a connect from 127.0.0.1 to anything else.
		l("ExitRelay 1")
		l("ExitPolicyRejectPrivate 0")
		l("ExitPolicyRejectLocalInterfaces 0")
		l("ExitPolicy accept *:*")
		l("OutboundBindAddressExit 127.0.0.1")
		l("ServerDNSDetectHijacking 0")
	}
	return b.String()
}

// clientTorrc renders a C tor client configuration (notes section 4).
func clientTorrc(dir string, auths []string, upstream string, extra []string) string {
	var b strings.Builder
	l := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	l("# onionlite testnet C tor client; written by internal/testnet")
	l("TestingTorNetwork 1")
	l("DataDirectory %s", dir)
	l("RunAsDaemon 0")
	l("SocksPort 127.0.0.1:auto")
	l("ControlPort 127.0.0.1:auto")
	l("ControlPortWriteToFile %s/control_port", dir)
	l("CookieAuthentication 1")
	l("UseMicrodescriptors 1")
	l("UseDefaultFallbackDirs 0")
	l("OutboundBindAddress 127.0.0.1")
	l("AddressDisableIPv6 1")
	l("ClientUseIPv6 0")
	for _, g := range noGeoIP {
		l("%s", g)
	}
	l("Log notice file %s/notice.log", dir)
	l("Log info file %s/info.log", dir)
	l("SafeLogging 0")
	l("LogTimeGranularity 1")
	for _, a := range auths {
		l("%s", a)
	}
	if upstream != "" {
		l("Socks5Proxy %s", upstream)
	}
	for _, e := range extra {
		l("%s", e)
	}
	return b.String()
}

package onionlite

import (
	"bufio"
	"net/url"
	"strings"
	"time"

	"github.com/onionlite/onionlite/sdk"
	"github.com/onionlite/onionlite/transport"
)

// Log levels for Config.LogLevel and Logger.Log.
const (
	// LogWarn: things that degrade the client (an unusable data
	// directory, a SOCKS port that stopped).
	LogWarn int64 = 1
	// LogInfo adds lifecycle messages: bootstrap phases, ready, SOCKS
	// ports, stop.
	LogInfo int64 = 2
	// LogDebug adds the SDK's debugging log (addresses and destinations
	// are scrubbed).
	LogDebug int64 = 3
)

// Memory pressure levels for Client.TrimMemory. Map Android's
// onTrimMemory levels (RUNNING_LOW and above) and iOS memory warnings to
// these.
const (
	// TrimModerate drops idle and preemptive circuits and idle relay
	// connections.
	TrimModerate int64 = sdk.TrimModerate
	// TrimCritical also returns freed memory to the operating system.
	TrimCritical int64 = sdk.TrimCritical
)

// MaxRead is the most bytes Stream.Read returns in one call, whatever max
// the caller asks for: larger payloads cross the bridge in pieces.
const MaxRead int64 = 64 << 10

// DefaultDialTimeoutMillis is the dial timeout when
// Config.DialTimeoutMillis is zero. A dial waits for the bootstrap, so it
// is generous.
const DefaultDialTimeoutMillis int64 = 180_000

// Config configures a Client. Create one (Config() in Kotlin, new Config()
// in Java, OnionliteConfig() in Swift, [[OnionliteConfig alloc] init] in
// Objective-C), set its fields, and pass it to NewClient, which copies it:
// changing a Config afterwards does not affect the client. A Config is not
// safe for use from two threads at once.
type Config struct {
	// DataDir holds the directory cache and guard state. Required. Use a
	// directory inside the app sandbox that is not backed up (Android:
	// Context.getNoBackupFilesDir(); iOS: Library/Caches or an App Group
	// container shared with a Network Extension).
	DataDir string
	// Authorities are torrc "DirAuthority ..." lines, one per line (blank
	// lines and lines starting with # are ignored). Empty means the real
	// Tor network; test networks pass theirs.
	Authorities string
	// Bridges are bridge lines ("IP:ORPORT FINGERPRINT"), one per line.
	// When set, the directory is fetched only from them.
	Bridges string
	// Proxy is an upstream proxy through which relays are reached:
	// "socks5://[user:pass@]host:port". Empty means direct connections.
	Proxy string
	// MemoryBudget is the memory budget of the whole process in bytes,
	// passed to sdk.Client.MemoryBudget (see there for what is sized from
	// it). Zero means the platform default. Inside an iOS Network
	// Extension (a 50 MiB limit) pass about 24 MiB.
	MemoryBudget int64
	// TestNetwork relaxes rules that a loopback test network cannot meet.
	// Never set it for the real Tor network.
	TestNetwork bool
	// PreemptiveCircuits is how many circuits are kept built for the next
	// dial. Zero means 1; negative means none (thriftiest on a metered
	// link).
	PreemptiveCircuits int64
	// Conflux builds conflux sets: two circuits through different guards
	// to one exit, which splits downloads between them (faster on a fast
	// link such as Wi-Fi, a second circuit's bytes and battery on a slow
	// or metered one). Off by default on phones; an app may turn it on
	// while on Wi-Fi.
	Conflux bool
	// ThriftyRefresh follows dir-spec's randomised refresh schedule: about
	// half the directory wake-ups and downloads, with a directory up to
	// three hours old. Off means a prompt hourly refresh.
	ThriftyRefresh bool
	// KeepPadding keeps Tor's link padding on (more bytes and battery,
	// more resistance to traffic analysis by netflow logs).
	KeepPadding bool
	// DialTimeoutMillis bounds Client.Dial, including any wait for the
	// bootstrap. Zero means DefaultDialTimeoutMillis.
	DialTimeoutMillis int64
	// Logger receives log messages up to LogLevel. Nil discards them.
	Logger Logger
	// LogLevel is the most verbose level passed to Logger: LogWarn,
	// LogInfo or LogDebug. Zero means LogInfo.
	LogLevel int64
}

// Logger receives log messages. It is called on arbitrary threads, never
// at the same time from two threads, and must not block. An error it
// returns (a Java exception, an NSError) is ignored.
type Logger interface {
	Log(level int64, message string) error
}

// settings is a checked copy of a Config.
type settings struct {
	client      sdk.Client
	logger      Logger
	logLevel    int64
	dialTimeout time.Duration
}

// check validates cfg and turns it into sdk terms.
func (cfg *Config) check() (*settings, error) {
	if cfg == nil {
		return nil, errorf(KindConfig, "no Config")
	}
	if strings.TrimSpace(cfg.DataDir) == "" {
		return nil, errorf(KindConfig, "Config.DataDir is required")
	}
	auths, err := lines("Authorities", cfg.Authorities)
	if err != nil {
		return nil, err
	}
	bridges, err := lines("Bridges", cfg.Bridges)
	if err != nil {
		return nil, err
	}
	s := &settings{logger: cfg.Logger, logLevel: cfg.LogLevel}
	s.client = sdk.Client{
		DataDir:            cfg.DataDir,
		Authorities:        auths,
		Bridges:            bridges,
		MemoryBudget:       cfg.MemoryBudget,
		TestNetwork:        cfg.TestNetwork,
		KeepPadding:        cfg.KeepPadding,
		PreemptiveCircuits: int(cfg.PreemptiveCircuits),
		Conflux:            sdk.ConfluxOff,
	}
	if cfg.Conflux {
		s.client.Conflux = sdk.ConfluxOn
	}
	if cfg.Authorities != "" && s.client.Authorities == nil {
		return nil, errorf(KindConfig, "Config.Authorities has no DirAuthority lines")
	}
	if cfg.ThriftyRefresh {
		s.client.Refresh = sdk.RefreshDirSpec
	}
	if cfg.MemoryBudget < 0 {
		return nil, errorf(KindConfig, "Config.MemoryBudget is negative")
	}
	if cfg.Proxy != "" {
		d, err := parseProxy(cfg.Proxy)
		if err != nil {
			return nil, err
		}
		s.client.Dialer = d
	}
	switch {
	case cfg.LogLevel == 0:
		s.logLevel = LogInfo
	case cfg.LogLevel < LogWarn || cfg.LogLevel > LogDebug:
		return nil, errorf(KindConfig, "Config.LogLevel %d is not LogWarn, LogInfo or LogDebug", cfg.LogLevel)
	}
	switch {
	case cfg.DialTimeoutMillis == 0:
		s.dialTimeout = time.Duration(DefaultDialTimeoutMillis) * time.Millisecond
	case cfg.DialTimeoutMillis < 0:
		return nil, errorf(KindConfig, "Config.DialTimeoutMillis is negative")
	default:
		s.dialTimeout = time.Duration(cfg.DialTimeoutMillis) * time.Millisecond
	}
	return s, nil
}

// lines splits the text of Config.field into its non-empty, non-comment
// lines; nil when there are none.
func lines(field, text string) ([]string, error) {
	var out []string
	sc := bufio.NewScanner(strings.NewReader(text))
	for sc.Scan() {
		if l := strings.TrimSpace(sc.Text()); l != "" && !strings.HasPrefix(l, "#") {
			out = append(out, l)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, errorf(KindConfig, "Config.%s: %v", field, err)
	}
	return out, nil
}

// parseProxy accepts socks5://[user:pass@]host:port (and socks5h://).
func parseProxy(s string) (transport.Dialer, error) {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "socks5" && u.Scheme != "socks5h") || u.Hostname() == "" || u.Port() == "" ||
		(u.Path != "" && u.Path != "/") || u.RawQuery != "" {
		return nil, errorf(KindConfig, "Config.Proxy: want socks5://[user:pass@]host:port")
	}
	d := &transport.SOCKS5{Addr: u.Host}
	if u.User != nil {
		d.Username = u.User.Username()
		d.Password, _ = u.User.Password()
	}
	return d, nil
}

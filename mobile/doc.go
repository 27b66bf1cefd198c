// Package onionlite is the gomobile facade of onionlite: the one Go package
// that Android and iOS apps bind (gomobile allows one Go framework per app).
// It wraps sdk.Client with types gobind can carry across the bridge, so that
// Java/Kotlin sees onionlite.Client, onionlite.Config, ... and
// Objective-C/Swift sees OnionliteClient, OnionliteConfig, ...
//
// The surface:
//
//   - Config: data directory (inside the app sandbox), authority and bridge
//     lines as text, upstream proxy URL, memory budget, log level and Logger.
//   - NewClient(cfg) starts a client; Bootstrap(listener) waits until it can
//     be used and reports progress through a ProgressListener.
//   - StartSOCKS("127.0.0.1:0") serves a loopback SOCKS5 port for OkHttp,
//     URLSession and WebView proxy settings.
//   - Dial(host, port) returns a Stream whose Read returns at most a bounded
//     number of bytes per call, so no large payload crosses the bridge in one
//     piece; Download streams an HTTP GET into a file.
//   - StatsJSON, TrimMemory, SetDormant, NetworkChanged and Stop.
//
// Errors that cross the bridge (Java exceptions, NSError) have messages that
// start with a stable "[kind] " prefix, for example "[timeout] dial: ...";
// ErrorKind extracts it. The rest of the message is not stable.
//
// Only gobind-compatible types appear in the exported API: string, []byte,
// bool, int64, float64, pointers to exported structs, exported interfaces
// for callbacks, and error as the last result. The binding tests in this
// package fail when gobind skips any exported symbol.
//
// Callbacks (ProgressListener, Logger) arrive on arbitrary Go threads, never
// on the app's main thread; hop to the UI thread before touching views.
//
// It is not an API for Go programs (use sdk) and holds no protocol logic:
// everything here translates between the bridge's types and sdk's.
package onionlite

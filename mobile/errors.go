package onionlite

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/onionlite/onionlite/sdk"
)

// Error kinds. Every error returned across the bridge has a message that
// starts with "[" + kind + "] "; ErrorKind extracts the kind. These strings
// are stable. New kinds may be added: treat unknown ones as KindInternal.
const (
	// KindInternal: a bug, or an error without a better kind.
	KindInternal = "internal"
	// KindConfig: the Config (or an argument) is invalid.
	KindConfig = "config"
	// KindClosed: the client was stopped.
	KindClosed = "closed"
	// KindBootstrapRequired: the directory is not ready yet.
	KindBootstrapRequired = "bootstrap_required"
	// KindBootstrapFailed: no usable directory could be obtained.
	KindBootstrapFailed = "bootstrap_failed"
	// KindDirectoryExpired: the directory is too old and could not be
	// refreshed.
	KindDirectoryExpired = "directory_expired"
	// KindClockSkew: the device clock is far from the network's.
	KindClockSkew = "clock_skew"
	// KindNoPath: no circuit can reach the destination.
	KindNoPath = "no_path"
	// KindExitRefused: the exit relay refused or could not reach the
	// destination.
	KindExitRefused = "exit_refused"
	// KindTimeout: an operation ran out of time (a deadline passed, or
	// Config.DialTimeoutMillis).
	KindTimeout = "timeout"
	// KindNetwork: relays could not be reached or a circuit broke.
	KindNetwork = "network"
	// KindMemory: the memory budget reclaimed the stream or circuit.
	KindMemory = "memory"
	// KindStorage: the data directory cannot be used.
	KindStorage = "storage"
	// KindBadAddress: the host or port is malformed.
	KindBadAddress = "bad_address"
	// KindIO: a local file or port could not be used (Download,
	// StartSOCKS).
	KindIO = "io"
	// KindHTTP: the server answered Download with a status other than 200.
	KindHTTP = "http"
	// KindEOF: Stream.Read reached the end of the stream. Not a failure.
	KindEOF = "eof"
)

var knownKinds = map[string]bool{
	KindInternal: true, KindConfig: true, KindClosed: true, KindBootstrapRequired: true,
	KindBootstrapFailed: true, KindDirectoryExpired: true, KindClockSkew: true, KindNoPath: true,
	KindExitRefused: true, KindTimeout: true, KindNetwork: true, KindMemory: true, KindStorage: true,
	KindBadAddress: true, KindIO: true, KindHTTP: true, KindEOF: true,
}

// ErrorKind returns the kind of an error message from this package (a Java
// exception's getMessage(), an NSError's localizedDescription): the word in
// the leading "[kind] ". It returns KindInternal for any other message, and
// "" for an empty one.
func ErrorKind(message string) string {
	if message == "" {
		return ""
	}
	rest, ok := strings.CutPrefix(message, "[")
	if !ok {
		return KindInternal
	}
	kind, _, ok := strings.Cut(rest, "] ")
	if !ok || !knownKinds[kind] {
		return KindInternal
	}
	return kind
}

// facadeError is an error whose message carries its kind.
type facadeError struct {
	kind string
	err  error
}

func (e *facadeError) Error() string { return "[" + e.kind + "] " + e.err.Error() }
func (e *facadeError) Unwrap() error { return e.err }

// errorf makes an error of the given kind.
func errorf(kind, format string, args ...any) error {
	return &facadeError{kind: kind, err: fmt.Errorf(format, args...)}
}

// wrap gives err its kind for the bridge. It returns nil for nil.
func wrap(err error) error {
	if err == nil {
		return nil
	}
	var fe *facadeError
	if errors.As(err, &fe) {
		return err
	}
	return &facadeError{kind: kindOf(err), err: err}
}

func kindOf(err error) string {
	var se *sdk.Error
	if errors.As(err, &se) {
		switch se.Kind {
		case sdk.KindConfig:
			return KindConfig
		case sdk.KindClosed:
			return KindClosed
		case sdk.KindBootstrapRequired:
			return KindBootstrapRequired
		case sdk.KindBootstrapFailed:
			return KindBootstrapFailed
		case sdk.KindDirectoryExpired:
			return KindDirectoryExpired
		case sdk.KindClockSkew:
			return KindClockSkew
		case sdk.KindNoPath:
			return KindNoPath
		case sdk.KindExitRefused:
			return KindExitRefused
		case sdk.KindTimeout:
			return KindTimeout
		case sdk.KindNetwork:
			return KindNetwork
		case sdk.KindMemory:
			return KindMemory
		case sdk.KindStorage:
			return KindStorage
		case sdk.KindBadAddress:
			return KindBadAddress
		}
		return KindInternal
	}
	switch {
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, os.ErrDeadlineExceeded):
		return KindTimeout
	case errors.Is(err, context.Canceled):
		// The facade cancels only when the client stops.
		return KindClosed
	}
	return KindInternal
}

// recoverTo turns a panic in facade code into an error of kind internal:
// a Go panic that reached the bridge would kill the app. Use it as
// "defer recoverTo(&err)".
func recoverTo(err *error) {
	if r := recover(); r != nil {
		*err = errorf(KindInternal, "panic: %v", r)
	}
}

package netdoc

import (
	"errors"
	"fmt"
)

// Sentinel errors. Use errors.Is: the returned errors wrap these and add
// detail.
var (
	// ErrMalformed: the document does not follow its format. The error
	// is a *ParseError carrying the line number.
	ErrMalformed = errors.New("netdoc: malformed document")
	// ErrUnsupported: a well-formed document of a kind this package does
	// not handle (a vote, an ns-flavoured consensus, an unknown certificate
	// version).
	ErrUnsupported = errors.New("netdoc: unsupported document")
	// ErrNotYetValid: the time given is before the document's validity
	// starts (consensus valid-after, certificate published).
	ErrNotYetValid = errors.New("netdoc: not yet valid")
	// ErrExpired: the time given is after the document's validity ends
	// (consensus valid-until, certificate expires).
	ErrExpired = errors.New("netdoc: expired")
	// ErrBadSignature: a signature or key binding did not verify.
	ErrBadSignature = errors.New("netdoc: bad signature")
	// ErrTooFewSignatures: a consensus lacks valid signatures from more
	// than half of the configured authorities. The error is a
	// *SignatureError listing every signature's outcome.
	ErrTooFewSignatures = errors.New("netdoc: too few valid consensus signatures")
	// ErrMissingCerts matches a *SignatureError when at least one
	// signature by a trusted authority had no matching certificate.
	ErrMissingCerts = errors.New("netdoc: authority certificates missing")
	// ErrCertExpired matches a *SignatureError when at least one
	// signature could not count because its certificate was expired or
	// not yet valid at the time of the check.
	ErrCertExpired = errors.New("netdoc: authority certificate outside its lifetime")
	// ErrNoAuthorities: the trusted authority list has no v3 authority.
	ErrNoAuthorities = errors.New("netdoc: no trusted v3 authorities configured")
)

// ParseError reports malformed input. It matches ErrMalformed (or
// ErrUnsupported when Unsupported is set).
type ParseError struct {
	Doc         string // "consensus", "authority certificate", "microdescriptor", ...
	Line        int    // 1-based line number in the input; 0 if not known
	Msg         string
	Unsupported bool
}

func (e *ParseError) Error() string {
	what := "malformed"
	if e.Unsupported {
		what = "unsupported"
	}
	if e.Line > 0 {
		return fmt.Sprintf("netdoc: %s %s: line %d: %s", what, e.Doc, e.Line, e.Msg)
	}
	return fmt.Sprintf("netdoc: %s %s: %s", what, e.Doc, e.Msg)
}

// Is reports whether target is ErrMalformed or, for an unsupported
// document, ErrUnsupported.
func (e *ParseError) Is(target error) bool {
	if e.Unsupported {
		return target == ErrUnsupported
	}
	return target == ErrMalformed
}

func parseErr(doc string, line int, format string, args ...any) *ParseError {
	return &ParseError{Doc: doc, Line: line, Msg: fmt.Sprintf(format, args...)}
}

func unsupportedErr(doc string, line int, format string, args ...any) *ParseError {
	e := parseErr(doc, line, format, args...)
	e.Unsupported = true
	return e
}

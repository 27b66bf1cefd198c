// Package consdiff applies consensus diffs (dir-spec 4.5.1 and Appendix E,
// proposal 140) and computes the two consensus digests they name.
//
// A diff is
//
//	network-status-diff-version 1
//	hash FROM TO
//	<limited ed script>
//
// where FROM is the hex SHA3-256 of the base consensus's signed part (from
// its first byte through the space after the first "directory-signature")
// and TO is the hex SHA3-256 of the entire resulting document. Apply checks
// both and returns either the complete, verified result or an error; it
// never returns a partial document.
//
// The ed script may use exactly these commands, one per line: "Nd", "N,Md",
// "N,$d", "Nc", "N,Mc" and "Na". Line numbers are 1-based and refer to the
// base; every command must lie strictly before (above) the previous one, so
// applying them in the order given never shifts a later command's lines. A
// range "N,M" needs M > N; "$" is allowed only with "d" and only in the
// first command; "a" takes no range ("0a" inserts before the first line).
// "c" and "a" are followed by at least one text line and then a line that
// is exactly ".", which ends the block, so a line consisting of a single
// "." can never be inserted. Every line of the base and of the diff ends
// with a newline. Concatenated diffs (proposal 140 section 4.1) are not
// supported; C tor does not accept them either.
//
// consdiff is pure: no I/O, no clock, no randomness. It is not a consensus
// parser and checks no signatures: the caller still parses and verifies the
// result (internal/netdoc), and it does not generate diffs.
package consdiff

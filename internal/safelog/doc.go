// Package safelog keeps destinations and addresses out of logs: values
// wrapped with Sensitive print as "[scrubbed]" unless safe logging has been
// turned off for the process (a debugging aid, like C tor's SafeLogging 0).
//
// It is not a logger; it only decides how values print.
package safelog

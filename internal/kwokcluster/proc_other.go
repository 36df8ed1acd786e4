//go:build !unix

package kwokcluster

import "context"

// killProcessesMentioning is a no-op where processes cannot be listed;
// kwokctl's own pid files are then the only cleanup.
func killProcessesMentioning(context.Context, string) error { return nil }

// Processes finds nothing where processes cannot be listed.
func Processes(string) []int { return nil }

//go:build !unix

package playground

import "os/exec"

// startReaper does nothing where processes cannot be listed by command
// line: the playground's own cleanup is then the only one.
func startReaper([]string, string) (*exec.Cmd, error) { return nil, nil }

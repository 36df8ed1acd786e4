//go:build unix

package playground

import (
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"syscall"
)

// startReaper starts argv plus "--dir DIR --parent-pid PID" in its own
// session, so that signals meant for the playground (Ctrl-C in its
// terminal, a closed terminal) do not reach it.
func startReaper(argv []string, dir string) (*exec.Cmd, error) {
	args := append(append([]string(nil), argv[1:]...), "--dir", dir, "--parent-pid", strconv.Itoa(os.Getpid()))
	cmd := exec.Command(argv[0], args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("playground: starting the reaper: %w", err)
	}
	return cmd, nil
}

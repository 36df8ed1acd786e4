// Command drover is Drover's command-line interface. Installed (or linked)
// as kubectl-drover on the PATH it is also the kubectl plugin
// `kubectl drover`.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/drover-dev/drover/internal/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	code := cli.Main(ctx, os.Args, cli.StdStreams())
	stop()
	os.Exit(code)
}

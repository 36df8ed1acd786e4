package cli

import (
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/drover-dev/drover/internal/playground"
)

func newPlaygroundCommand(env *cmdEnv) *cobra.Command {
	o := playground.Options{Nodes: playground.DefaultNodes}
	cmd := &cobra.Command{
		Use:   "playground",
		Short: "Run a local simulated cluster with Drover, a demo CloneSet and a live canary release",
		Long: `Start a local Kubernetes control plane with simulated (kwok) nodes, install
Drover's CRDs, run the Drover manager in this process and deploy the demo
CloneSet web-frontend (5 replicas, in-place updates, partition 2), then the
canary demo of examples/rollout.yaml: a CloneSet, a Rollout and an HTTPRoute
behind a real gateway (Traefik, run on this machine) with a demo app
answering for every simulated pod, so a release's traffic split can be
watched with curl. Then print how to use it, and keep running until Ctrl-C,
which deletes everything it started.

The control plane binaries (kube-apiserver, kube-controller-manager,
kube-scheduler, etcd, kwok, kwokctl) are looked up in --bin-dir, else
$DROVER_BIN_DIR, else the repository's bin/ or the directory of this
executable. Inside a checkout, missing binaries are built with
hack/build-tools.sh (about 7 minutes the first time).`,
		Example: env.examples(
			"drover playground",
			"drover playground --nodes 8",
			"# leave the cluster running after Ctrl-C",
			"drover playground --keep",
		),
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			// A closed output (drover playground | head) must not kill the
			// process before it cleans up: writes then just fail.
			signal.Ignore(syscall.SIGPIPE)
			o.Out = env.streams.Out
			o.CLI = guideCLI(env.name)
			if exe, err := os.Executable(); err == nil {
				o.Reaper = []string{exe, reaperCommand}
			}
			return playground.Run(cmd.Context(), o)
		},
	}
	f := cmd.Flags()
	f.IntVar(&o.Nodes, "nodes", o.Nodes, "Number of simulated nodes.")
	f.StringVar(&o.BinDir, "bin-dir", "", "Directory holding kube-apiserver, kube-controller-manager, kube-scheduler, etcd, kwok and kwokctl.")
	f.StringVar(&o.WorkDir, "work-dir", "", "Parent directory of the playground's files (default: the system's temporary directory).")
	f.BoolVar(&o.KeepOnExit, "keep", false, "On exit, stop the manager but leave the cluster running (and print how to delete it).")
	f.BoolVar(&o.NoBuild, "no-build", false, "Never build missing binaries; fail instead.")
	f.DurationVar(&o.ReadyTimeout, "timeout", 5*time.Minute, "How long to wait for the demo CloneSet to become Ready.")
	return cmd
}

// reaperCommand is the hidden command the playground's watchdog runs.
const reaperCommand = "__playground-reaper"

// newReaperCommand is the playground's watchdog (see playground.Reap).
func newReaperCommand() *cobra.Command {
	var dir string
	var parentPID int
	cmd := &cobra.Command{
		Use:    reaperCommand,
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			signal.Ignore(syscall.SIGINT, syscall.SIGHUP, syscall.SIGPIPE)
			return playground.Reap(cmd.Context(), dir, parentPID)
		},
	}
	cmd.Flags().StringVar(&dir, "dir", "", "playground directory")
	cmd.Flags().IntVar(&parentPID, "parent-pid", 0, "pid of the playground process")
	return cmd
}

// guideCLI is how the playground's guide tells the user to call drover:
// as a kubectl plugin when it is one or kubectl-drover is on the PATH.
func guideCLI(displayName string) string {
	if displayName != "drover" {
		return displayName
	}
	if _, err := exec.LookPath("kubectl-drover"); err == nil {
		return "kubectl drover"
	}
	if _, err := exec.LookPath("drover"); err == nil {
		return "drover"
	}
	exe, err := os.Executable()
	if err != nil {
		return "drover"
	}
	if wd, err := os.Getwd(); err == nil {
		if rel, err := filepath.Rel(wd, exe); err == nil && !strings.HasPrefix(rel, "..") {
			return rel
		}
	}
	return exe
}

// Package cli implements the drover command line (also the kubectl plugin
// `kubectl drover`): version, get, status, set image, the rollout actions
// and playground.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/drover-dev/drover/internal/manager"
	"github.com/drover-dev/drover/internal/version"
)

// Streams are the command's standard input, output and error.
type Streams = genericiooptions.IOStreams

// StdStreams returns the process's standard streams.
func StdStreams() Streams {
	return Streams{In: os.Stdin, Out: os.Stdout, ErrOut: os.Stderr}
}

// Factory gives commands what they need to talk to a cluster. The default
// one reads the standard kubeconfig flags; tests substitute their own.
type Factory interface {
	// RESTConfig is the client configuration of the selected context.
	RESTConfig() (*rest.Config, error)
	// Client is a controller-runtime client knowing Drover's types.
	Client() (client.Client, error)
	// Namespace is -n/--namespace, else the context's namespace, else "default".
	Namespace() (string, error)
}

// kubeFactory is the Factory backed by the kubeconfig flags.
type kubeFactory struct {
	flags *genericclioptions.ConfigFlags
}

func (f *kubeFactory) RESTConfig() (*rest.Config, error) {
	cfg, err := f.flags.ToRESTConfig()
	if err != nil {
		return nil, fmt.Errorf("loading kubeconfig: %w", err)
	}
	cfg = rest.CopyConfig(cfg)
	cfg.UserAgent = "drover/" + version.Get()
	return cfg, nil
}

func (f *kubeFactory) Client() (client.Client, error) {
	cfg, err := f.RESTConfig()
	if err != nil {
		return nil, err
	}
	scheme, err := manager.Scheme()
	if err != nil {
		return nil, err
	}
	c, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		return nil, fmt.Errorf("creating client: %w", err)
	}
	return c, nil
}

func (f *kubeFactory) Namespace() (string, error) {
	ns, _, err := f.flags.ToRawKubeConfigLoader().Namespace()
	if err != nil {
		return "", fmt.Errorf("reading the namespace from kubeconfig: %w", err)
	}
	return ns, nil
}

// DisplayName is how the program is invoked: "kubectl drover" when the
// executable is named kubectl-drover (kubectl's plugin convention), else
// "drover".
func DisplayName(arg0 string) string {
	base := strings.TrimSuffix(filepath.Base(arg0), ".exe")
	if strings.HasPrefix(base, "kubectl-") {
		return "kubectl " + strings.ReplaceAll(strings.TrimPrefix(base, "kubectl-"), "_", "-")
	}
	return "drover"
}

// Main runs the command line with args (os.Args) and returns the exit code.
func Main(ctx context.Context, args []string, streams Streams) int {
	name := "drover"
	if len(args) > 0 {
		name = DisplayName(args[0])
	}
	cmd := NewRootCommand(streams, name, nil)
	if len(args) > 0 {
		cmd.SetArgs(args[1:])
	}
	return report(cmd.ExecuteContext(ctx), streams.ErrOut)
}

// report prints a command's error (unless it is an ExitError without a
// message: the command said everything already) and returns the exit code.
func report(err error, errOut io.Writer) int {
	if exit, ok := err.(*ExitError); err != nil && (!ok || exit.Err != nil) {
		fmt.Fprintf(errOut, "error: %v\n", err)
	}
	return ExitCode(err)
}

// ExitError ends the program with a given exit code, as `drover status`
// does to tell a CI pipeline how a rollout went. Err, when not nil, is
// printed as "error: ..." on the standard error; nil means the command
// already said everything on its output.
type ExitError struct {
	Code int
	Err  error
}

func (e *ExitError) Error() string {
	if e.Err == nil {
		return fmt.Sprintf("exit status %d", e.Code)
	}
	return e.Err.Error()
}

func (e *ExitError) Unwrap() error { return e.Err }

// ExitCode is the process exit code for a command's error: 0 for nil, the
// code of an ExitError (anywhere in the chain), else 1.
func ExitCode(err error) int {
	if err == nil {
		return 0
	}
	var exit *ExitError
	if errors.As(err, &exit) {
		return exit.Code
	}
	return 1
}

// NewRootCommand builds the command tree. name is the display name
// ("drover" or "kubectl drover"); factory nil means the kubeconfig flags.
func NewRootCommand(streams Streams, name string, factory Factory) *cobra.Command {
	root := &cobra.Command{
		Use:   "drover",
		Short: "Drover: advanced workloads and progressive delivery for Kubernetes",
		Long: `Drover manages CloneSets and other advanced workloads, updating pods in place,
partition by partition, and releases new revisions progressively with Rollouts
(canary steps, pauses, promote, abort, retry).

Run "` + name + ` playground" to try it on a local simulated cluster.`,
		SilenceUsage:  true,
		SilenceErrors: true,
		Annotations:   map[string]string{cobra.CommandDisplayNameAnnotation: name},
		// Without a subcommand, print help rather than an error.
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	root.SetIn(streams.In)
	root.SetOut(streams.Out)
	root.SetErr(streams.ErrOut)
	root.CompletionOptions.HiddenDefaultCmd = true

	if factory == nil {
		flags := genericclioptions.NewConfigFlags(true).WithDeprecatedPasswordFlag().WithDiscoveryBurst(300).WithDiscoveryQPS(50)
		flags.AddFlags(root.PersistentFlags())
		factory = &kubeFactory{flags: flags}
	}
	env := &cmdEnv{streams: streams, name: name, factory: factory}

	root.AddCommand(
		newVersionCommand(env),
		newGetCommand(env),
		newStatusCommand(env),
		newSetCommand(env),
		newPlaygroundCommand(env),
		newReaperCommand(),
	)
	root.AddCommand(newRolloutActionCommands(env)...)
	root.AddCommand(newUndoRestartCommands(env)...)
	return root
}

// cmdEnv is what every subcommand shares.
type cmdEnv struct {
	streams Streams
	name    string // display name, for examples and hints
	factory Factory
}

// connect returns a client and the namespace the command works in.
func (e *cmdEnv) connect() (client.Client, string, error) {
	c, err := e.factory.Client()
	if err != nil {
		return nil, "", err
	}
	ns, err := e.factory.Namespace()
	if err != nil {
		return nil, "", err
	}
	return c, ns, nil
}

// examples formats example lines, replacing "drover" with the display name.
func (e *cmdEnv) examples(lines ...string) string {
	var b strings.Builder
	for i, l := range lines {
		if i > 0 {
			b.WriteByte('\n')
		}
		if strings.HasPrefix(l, "drover ") {
			l = e.name + strings.TrimPrefix(l, "drover")
		}
		b.WriteString("  " + l)
	}
	return b.String()
}

package cli

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/client-go/discovery"

	appsv1alpha1 "github.com/drover-dev/drover/api/apps/v1alpha1"
	"github.com/drover-dev/drover/internal/version"
)

// serverProbeTimeout bounds how long `version` waits for the API server.
const serverProbeTimeout = 5 * time.Second

func newVersionCommand(env *cmdEnv) *cobra.Command {
	var clientOnly bool
	cmd := &cobra.Command{
		Use:   "version",
		Short: "Print the client version and, when reachable, the server's",
		Long: `Print the drover client version, the Kubernetes server version and whether
Drover's API is installed. An unreachable cluster is reported, not an error.`,
		Example: env.examples("drover version", "drover version --client"),
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			out := env.streams.Out
			fmt.Fprintf(out, "Client Version: %s\n", version.Get())
			if clientOnly {
				return nil
			}
			server, api := serverInfo(env.factory)
			fmt.Fprintf(out, "Server Version: %s\n", server)
			if api != "" {
				fmt.Fprintf(out, "Drover API:     %s\n", api)
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&clientOnly, "client", false, "Print the client version only; do not contact the cluster.")
	return cmd
}

// serverInfo returns the server's version and whether Drover's API group is
// served, or why the server could not be asked. It never fails.
func serverInfo(f Factory) (server, api string) {
	cfg, err := f.RESTConfig()
	if err != nil {
		return fmt.Sprintf("unavailable (%v)", err), ""
	}
	if cfg.Timeout == 0 || cfg.Timeout > serverProbeTimeout {
		cfg.Timeout = serverProbeTimeout
	}
	dc, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		return fmt.Sprintf("unavailable (%v)", err), ""
	}
	info, err := dc.ServerVersion()
	if err != nil {
		return fmt.Sprintf("unavailable (%v)", err), ""
	}
	gv := appsv1alpha1.GroupVersion.String()
	if _, err := dc.ServerResourcesForGroupVersion(gv); err != nil {
		api = gv + " not installed"
	} else {
		api = gv + " installed"
	}
	return info.GitVersion, api
}

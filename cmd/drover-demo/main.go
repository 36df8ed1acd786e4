// Command drover-demo stands in for the containers and for kube-proxy on a
// kwok cluster (see internal/demoapp): it listens on every Running pod's
// loopback IP and every Service's loopback ClusterIP, answering as the pod
// and forwarding to ready pods, and optionally serves Prometheus http_sd
// targets for the pods' /metrics.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/drover-dev/drover/internal/demoapp"
)

func main() {
	var (
		kubeconfig string
		opts       demoapp.Options
	)
	flag.StringVar(&kubeconfig, "kubeconfig", "", "Path of the cluster's kubeconfig (default: $KUBECONFIG, then ~/.kube/config).")
	flag.StringVar(&opts.Namespace, "namespace", "", "Serve the pods and Services of this namespace only (default: all).")
	flag.StringVar(&opts.LabelSelector, "selector", "", "Serve only the pods this label selector matches (default: all).")
	flag.StringVar(&opts.SDAddr, "sd-address", "", `Address of the Prometheus http_sd endpoint /sd, e.g. "127.0.0.1:9099" (default: none).`)
	zapOpts := zap.Options{}
	zapOpts.BindFlags(flag.CommandLine)
	flag.Parse()
	opts.Log = zap.New(zap.UseFlagOptions(&zapOpts)).WithName("drover-demo")

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, kubeconfig, opts); err != nil {
		opts.Log.Error(err, "stopped")
		os.Exit(1)
	}
}

func run(ctx context.Context, kubeconfig string, opts demoapp.Options) error {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	rules.ExplicitPath = kubeconfig
	cfg, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{}).ClientConfig()
	if err != nil {
		return fmt.Errorf("loading kubeconfig: %w", err)
	}
	cfg.QPS, cfg.Burst = 50, 100
	srv, err := demoapp.New(cfg, opts)
	if err != nil {
		return err
	}
	return srv.Run(ctx)
}

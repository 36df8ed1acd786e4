// Command drover-manager runs Drover's controllers. It works in cluster
// (service account) and out of cluster (--kubeconfig or $KUBECONFIG).
package main

import (
	"flag"
	"fmt"
	"os"

	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/drover-dev/drover/internal/manager"
	"github.com/drover-dev/drover/internal/version"
)

func main() {
	gcPercent := tuneGC()
	o := manager.Defaults()
	var qps float64
	var memLimit string
	flag.StringVar(&o.MetricsAddr, "metrics-bind-address", o.MetricsAddr, "Address of the Prometheus /metrics endpoint (0 disables it).")
	flag.StringVar(&o.ProbeAddr, "health-probe-bind-address", o.ProbeAddr, "Address of the /healthz and /readyz endpoints.")
	flag.StringVar(&o.PprofAddr, "pprof-bind-address", "", "Address of the net/http/pprof endpoints (empty disables them).")
	flag.BoolVar(&o.LeaderElect, "leader-elect", false, "Elect a leader so that only one replica reconciles.")
	flag.StringVar(&o.LeaderElectionNS, "leader-election-namespace", "", "Namespace of the leader election lease (default: the pod's namespace).")
	flag.IntVar(&o.Concurrency, "concurrency", o.Concurrency, "Workloads reconciled in parallel per controller.")
	flag.IntVar(&o.PodWriteConcurrency, "pod-write-concurrency", o.PodWriteConcurrency, "Pod writes one reconcile issues in parallel.")
	flag.Float64Var(&qps, "kube-api-qps", float64(o.QPS), "Client-side limit on API requests per second; negative disables it and leaves fairness to the API server's priority and fairness.")
	flag.IntVar(&o.Burst, "kube-api-burst", o.Burst, "Client-side burst when --kube-api-qps is positive.")
	flag.StringVar(&memLimit, "memory-limit", "", fmt.Sprintf("Soft memory limit of the Go runtime, a quantity (e.g. 200Mi); 0 or off: none. Wins over $GOMEMLIMIT, which wins over $%s (the container's limit in bytes, less headroom for the code); without any, %dMi.", containerLimitEnv, defaultMemoryLimit>>20))
	wh := webhookFlags(&o.Webhook)
	showVersion := flag.Bool("version", false, "Print the version and exit.")
	zapOpts := zap.Options{}
	zapOpts.BindFlags(flag.CommandLine)
	flag.Parse()
	if *showVersion {
		fmt.Println(version.Get())
		return
	}
	o.QPS = float32(qps)
	if err := wh.apply(&o.Webhook); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	env, envSet := os.LookupEnv("GOMEMLIMIT")
	limit, err := resolveMemoryLimit(memLimit, env, envSet, os.Getenv(containerLimitEnv), defaultMemoryLimit)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	limitBytes := limit.apply()
	ctrl.SetLogger(zap.New(zap.UseFlagOptions(&zapOpts)))
	ctrl.Log.WithName("setup").Info("memory limit", "bytes", limitBytes, "source", limit.Source, "gcPercent", gcPercent)

	if err := run(o); err != nil {
		ctrl.Log.Error(err, "manager stopped")
		os.Exit(1)
	}
}

func run(o manager.Options) error {
	cfg, err := ctrl.GetConfig()
	if err != nil {
		return fmt.Errorf("loading kubeconfig: %w", err)
	}
	mgr, err := manager.New(cfg, o)
	if err != nil {
		return err
	}
	ctrl.Log.WithName("setup").Info("starting", "version", version.Get(), "concurrency", o.Concurrency, "qps", o.QPS)
	return mgr.Start(ctrl.SetupSignalHandler())
}

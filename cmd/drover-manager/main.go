// Command drover-manager runs Drover's controllers. It works in cluster
// (service account) and out of cluster (--kubeconfig or $KUBECONFIG).
package main

import (
	"flag"
	"fmt"
	"os"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/selection"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	appsv1alpha1 "github.com/drover-dev/drover/api/apps/v1alpha1"
	"github.com/drover-dev/drover/internal/controller/cloneset"
	"github.com/drover-dev/drover/internal/version"
)

type options struct {
	metricsAddr, probeAddr string
	leaderElect            bool
	leaderElectionNS       string
	concurrency            int
	writeConcurrency       int
	qps                    float64
	burst                  int
}

func main() {
	var o options
	flag.StringVar(&o.metricsAddr, "metrics-bind-address", ":8080", "Address of the Prometheus /metrics endpoint (0 disables it).")
	flag.StringVar(&o.probeAddr, "health-probe-bind-address", ":8081", "Address of the /healthz and /readyz endpoints.")
	flag.BoolVar(&o.leaderElect, "leader-elect", false, "Elect a leader so that only one replica reconciles.")
	flag.StringVar(&o.leaderElectionNS, "leader-election-namespace", "", "Namespace of the leader election lease (default: the pod's namespace).")
	flag.IntVar(&o.concurrency, "concurrency", 4, "Workloads reconciled in parallel per controller.")
	flag.IntVar(&o.writeConcurrency, "pod-write-concurrency", 64, "Pod writes one reconcile issues in parallel.")
	flag.Float64Var(&o.qps, "kube-api-qps", -1, "Client-side limit on API requests per second; negative disables it and leaves fairness to the API server's priority and fairness.")
	flag.IntVar(&o.burst, "kube-api-burst", 0, "Client-side burst when --kube-api-qps is positive.")
	zapOpts := zap.Options{}
	zapOpts.BindFlags(flag.CommandLine)
	flag.Parse()
	ctrl.SetLogger(zap.New(zap.UseFlagOptions(&zapOpts)))

	if err := run(o); err != nil {
		ctrl.Log.Error(err, "manager stopped")
		os.Exit(1)
	}
}

func run(o options) error {
	log := ctrl.Log.WithName("setup")
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		return fmt.Errorf("registering client-go types: %w", err)
	}
	if err := appsv1alpha1.AddToScheme(scheme); err != nil {
		return fmt.Errorf("registering apps.drover.dev types: %w", err)
	}

	cfg, err := ctrl.GetConfig()
	if err != nil {
		return fmt.Errorf("loading kubeconfig: %w", err)
	}
	cfg.QPS, cfg.Burst = float32(o.qps), o.burst
	cfg.UserAgent = "drover-manager/" + version.Get()

	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:                  scheme,
		Metrics:                 metricsserver.Options{BindAddress: o.metricsAddr},
		HealthProbeBindAddress:  o.probeAddr,
		LeaderElection:          o.leaderElect,
		LeaderElectionID:        "drover-manager.drover.dev",
		LeaderElectionNamespace: o.leaderElectionNS,
		Cache:                   cacheOptions(),
	})
	if err != nil {
		return fmt.Errorf("creating manager: %w", err)
	}
	if err := cloneset.SetupWithManager(mgr, cloneset.Options{MaxConcurrentReconciles: o.concurrency, WriteConcurrency: o.writeConcurrency}); err != nil {
		return fmt.Errorf("setting up the CloneSet controller: %w", err)
	}
	if err := mgr.AddHealthzCheck("healthz", healthz.Ping); err != nil {
		return fmt.Errorf("adding health check: %w", err)
	}
	if err := mgr.AddReadyzCheck("readyz", healthz.Ping); err != nil {
		return fmt.Errorf("adding ready check: %w", err)
	}
	log.Info("starting", "version", version.Get(), "concurrency", o.concurrency, "qps", o.qps)
	return mgr.Start(ctrl.SetupSignalHandler())
}

// cacheOptions trims the informer cache: managedFields are dropped from
// every object, and pods, claims and revisions are cached only when a
// Drover workload created them (label apps.drover.dev/workload), so pods
// Drover does not own cost it no memory.
func cacheOptions() cache.Options {
	owned, err := labels.NewRequirement(appsv1alpha1.LabelWorkload, selection.Exists, nil)
	if err != nil {
		panic(err) // a constant requirement cannot fail
	}
	sel := labels.NewSelector().Add(*owned)
	return cache.Options{
		DefaultTransform: cache.TransformStripManagedFields(),
		ByObject: map[client.Object]cache.ByObject{
			&corev1.Pod{}:                   {Label: sel},
			&corev1.PersistentVolumeClaim{}: {Label: sel},
			&appsv1.ControllerRevision{}:    {Label: sel},
		},
	}
}

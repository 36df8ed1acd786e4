// Package manager assembles Drover's controller-runtime manager: scheme,
// trimmed cache, health checks and every controller. drover-manager and
// `drover playground` both run it.
package manager

import (
	"context"
	"fmt"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/selection"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	toolscache "k8s.io/client-go/tools/cache"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	appsv1alpha1 "github.com/drover-dev/drover/api/apps/v1alpha1"
	rolloutsv1alpha1 "github.com/drover-dev/drover/api/rollouts/v1alpha1"
	jobprovider "github.com/drover-dev/drover/internal/analysis/provider/job"
	"github.com/drover-dev/drover/internal/controller/analysisrun"
	"github.com/drover-dev/drover/internal/controller/broadcastjob"
	"github.com/drover-dev/drover/internal/controller/cloneset"
	"github.com/drover-dev/drover/internal/controller/daemonset"
	"github.com/drover-dev/drover/internal/controller/rollout"
	"github.com/drover-dev/drover/internal/controller/sidecarset"
	"github.com/drover-dev/drover/internal/controller/statefulset"
	"github.com/drover-dev/drover/internal/ownership"
	"github.com/drover-dev/drover/internal/traffic/routers"
	"github.com/drover-dev/drover/internal/version"
	"github.com/drover-dev/drover/internal/webhook"
)

// Options configure the manager.
type Options struct {
	MetricsAddr, ProbeAddr string
	// PprofAddr serves net/http/pprof when set ("" or "0" disables it).
	PprofAddr        string
	LeaderElect      bool
	LeaderElectionNS string
	// Concurrency is the number of workloads reconciled in parallel per controller.
	Concurrency int
	// PodWriteConcurrency bounds the parallel pod writes of one reconcile.
	PodWriteConcurrency int
	// QPS and Burst are client-side rate limits; QPS < 0 disables them.
	QPS   float32
	Burst int
	// Webhook configures the SidecarSet injection webhook (off unless
	// Webhook.Enabled()).
	Webhook webhook.Options
}

// Defaults are the settings a user gets.
func Defaults() Options {
	return Options{MetricsAddr: ":8080", ProbeAddr: ":8081", Concurrency: 4, PodWriteConcurrency: 64, QPS: -1,
		Webhook: webhook.Options{BindAddress: ":9443", CertRotation: true, ConfigName: webhook.DefaultConfigName}}
}

// Scheme returns the types the manager works with.
func Scheme() (*runtime.Scheme, error) {
	s := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(s); err != nil {
		return nil, fmt.Errorf("registering client-go types: %w", err)
	}
	if err := appsv1alpha1.AddToScheme(s); err != nil {
		return nil, fmt.Errorf("registering apps.drover.dev types: %w", err)
	}
	if err := rolloutsv1alpha1.AddToScheme(s); err != nil {
		return nil, fmt.Errorf("registering rollouts.drover.dev types: %w", err)
	}
	if err := gatewayv1.Install(s); err != nil {
		return nil, fmt.Errorf("registering gateway.networking.k8s.io types: %w", err)
	}
	return s, nil
}

// New builds the manager with every controller registered.
func New(cfg *rest.Config, o Options) (ctrl.Manager, error) {
	scheme, err := Scheme()
	if err != nil {
		return nil, err
	}
	cfg = rest.CopyConfig(cfg)
	cfg.QPS, cfg.Burst = o.QPS, o.Burst
	cfg.UserAgent = "drover-manager/" + version.Get()
	// One interner for every pod cache: pods of both caches share their
	// strings.
	trimPods := newPodTrimmer(newInterner(defaultInternerSize))
	cacheOpts, err := cacheOptions(trimPods)
	if err != nil {
		return nil, err
	}
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:                  scheme,
		Metrics:                 metricsserver.Options{BindAddress: o.MetricsAddr},
		HealthProbeBindAddress:  o.ProbeAddr,
		PprofBindAddress:        o.PprofAddr,
		LeaderElection:          o.LeaderElect,
		LeaderElectionID:        "drover-manager.drover.dev",
		LeaderElectionNamespace: o.LeaderElectionNS,
		Cache:                   cacheOpts,
		// Lists a workload's pods from the cache without copying them.
		NewClient: newIndexedClient,
	})
	if err != nil {
		return nil, fmt.Errorf("creating manager: %w", err)
	}
	if err := ownership.RegisterIndexes(context.Background(), mgr.GetFieldIndexer()); err != nil {
		return nil, err
	}
	if err := cloneset.SetupWithManager(mgr, cloneset.Options{MaxConcurrentReconciles: o.Concurrency, WriteConcurrency: o.PodWriteConcurrency}); err != nil {
		return nil, fmt.Errorf("setting up the CloneSet controller: %w", err)
	}
	if err := statefulset.SetupWithManager(mgr, statefulset.Options{MaxConcurrentReconciles: o.Concurrency, WriteConcurrency: o.PodWriteConcurrency}); err != nil {
		return nil, fmt.Errorf("setting up the StatefulSet controller: %w", err)
	}
	if err := broadcastjob.SetupWithManager(mgr, broadcastjob.Options{MaxConcurrentReconciles: o.Concurrency, WriteConcurrency: o.PodWriteConcurrency}); err != nil {
		return nil, fmt.Errorf("setting up the BroadcastJob controller: %w", err)
	}
	// Pods a SidecarSet injected are cached apart (label
	// apps.drover.dev/sidecarset-injected): whoever owns them, they cost
	// the manager memory only once injected.
	sidecarPods, err := sidecarset.NewPodCache(mgr.GetConfig(), mgr.GetScheme(), mgr.GetRESTMapper(), mgr.GetHTTPClient(), trimPods)
	if err != nil {
		return nil, err
	}
	if err := mgr.Add(sidecarPods); err != nil {
		return nil, fmt.Errorf("adding the injected-pod cache: %w", err)
	}
	if err := sidecarset.SetupWithManager(mgr, sidecarset.Options{Pods: sidecarPods, MaxConcurrentReconciles: o.Concurrency, WriteConcurrency: o.PodWriteConcurrency}); err != nil {
		return nil, fmt.Errorf("setting up the SidecarSet controller: %w", err)
	}
	if err := webhook.Setup(mgr, o.Webhook); err != nil {
		return nil, fmt.Errorf("setting up the SidecarSet injection webhook: %w", err)
	}
	if err := daemonset.SetupWithManager(mgr, daemonset.Options{MaxConcurrentReconciles: o.Concurrency, WriteConcurrency: o.PodWriteConcurrency}); err != nil {
		return nil, fmt.Errorf("setting up the DaemonSet controller: %w", err)
	}
	routerFactory := routers.Factory{Client: mgr.GetClient(), Reader: mgr.GetAPIReader()}
	if err := rollout.SetupWithManager(context.Background(), mgr, rollout.Options{MaxConcurrentReconciles: o.Concurrency, Routers: routerFactory.For}); err != nil {
		return nil, fmt.Errorf("setting up the Rollout controller: %w", err)
	}
	if err := analysisrun.SetupWithManager(mgr, analysisrun.Options{MaxConcurrentReconciles: o.Concurrency}); err != nil {
		return nil, fmt.Errorf("setting up the AnalysisRun controller: %w", err)
	}
	if err := mgr.AddHealthzCheck("healthz", healthz.Ping); err != nil {
		return nil, fmt.Errorf("adding health check: %w", err)
	}
	if err := mgr.AddReadyzCheck("readyz", healthz.Ping); err != nil {
		return nil, fmt.Errorf("adding ready check: %w", err)
	}
	return mgr, nil
}

// cacheOptions trims the informer cache: managedFields are dropped from
// every object, pods keep only the fields the controllers read (trimPods,
// from newPodTrimmer), nodes keep only what decides placement (trimNode),
// and pods, claims and revisions are cached only when a Drover workload
// created them (label apps.drover.dev/workload), so pods Drover does not
// own cost it no memory.
// Deployments and ReplicaSets (a Rollout's Deployment target and its
// canary) are cached whole, without managedFields: a Rollout matches a
// ReplicaSet's template against its Deployment's.
// Jobs are cached only when an AnalysisRun's job metric created them
// (label rollouts.drover.dev/analysis-run-uid), the only Jobs it reads.
// ConfigMaps and Secrets are cached by their metadata only, without
// annotations (trimConfigMetadata): a Rollout with spec.trackConfigs
// watches them and reads their content from the API when it needs it.
func cacheOptions(trimPods toolscache.TransformFunc) (cache.Options, error) {
	owned, err := labels.NewRequirement(appsv1alpha1.LabelWorkload, selection.Exists, nil)
	if err != nil {
		return cache.Options{}, fmt.Errorf("building the cache selector: %w", err)
	}
	sel := labels.NewSelector().Add(*owned)
	analysisJob, err := labels.NewRequirement(jobprovider.LabelRunUID, selection.Exists, nil)
	if err != nil {
		return cache.Options{}, fmt.Errorf("building the analysis job selector: %w", err)
	}
	return cache.Options{
		DefaultTransform: cache.TransformStripManagedFields(),
		ByObject: map[client.Object]cache.ByObject{
			&corev1.Pod{}:                   {Label: sel, Transform: trimPods},
			&corev1.PersistentVolumeClaim{}: {Label: sel},
			&appsv1.ControllerRevision{}:    {Label: sel},
			&corev1.Node{}:                  {Transform: trimNode},
			&corev1.ConfigMap{}:             {Transform: trimConfigMetadata},
			&corev1.Secret{}:                {Transform: trimConfigMetadata},
			&batchv1.Job{}:                  {Label: labels.NewSelector().Add(*analysisJob)},
		},
	}, nil
}

package testenv

import (
	"context"
	"fmt"
	"os"
	"testing"

	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/drover-dev/drover/internal/ownership"
)

// MainWithManager runs a test binary against a started API server with
// controllers running: it starts one, builds a manager (metrics off, the
// controller-UID indexes registered), lets setup add the controllers under
// test, starts it, hands a direct (uncached) client to use, runs the tests
// and stops everything. Use it from TestMain:
//
//	os.Exit(testenv.MainWithManager(m, func(mgr ctrl.Manager) error { ... }, func(c client.Client) { k8s = c }))
func MainWithManager(m *testing.M, setup func(ctrl.Manager) error, use func(client.Client)) int {
	env, err := Start()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer func() { _ = env.Stop() }()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := startManager(ctx, env, setup); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	c, err := client.New(env.Config, client.Options{Scheme: Scheme()})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	use(c)
	return m.Run()
}

func startManager(ctx context.Context, env *Env, setup func(ctrl.Manager) error) error {
	mgr, err := ctrl.NewManager(env.Config, ctrl.Options{Scheme: Scheme(), Metrics: metricsserver.Options{BindAddress: "0"}})
	if err != nil {
		return fmt.Errorf("creating manager: %w", err)
	}
	if err := ownership.RegisterIndexes(ctx, mgr.GetFieldIndexer()); err != nil {
		return err
	}
	if err := setup(mgr); err != nil {
		return fmt.Errorf("setting up controllers: %w", err)
	}
	go func() {
		if err := mgr.Start(ctx); err != nil {
			fmt.Fprintln(os.Stderr, "manager:", err)
		}
	}()
	if !mgr.GetCache().WaitForCacheSync(ctx) {
		return fmt.Errorf("manager cache did not sync")
	}
	return nil
}

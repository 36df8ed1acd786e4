// Package testenv starts a real kube-apiserver and etcd (controller-runtime
// envtest, on the binaries hack/build-tools.sh builds into bin/) with
// Drover's CRDs installed, for integration tests.
package testenv

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	appsv1alpha1 "github.com/drover-dev/drover/api/apps/v1alpha1"
	rolloutsv1alpha1 "github.com/drover-dev/drover/api/rollouts/v1alpha1"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"
)

// Root returns the repository root (the directory holding go.mod).
func Root() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("finding the working directory: %w", err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("no go.mod above the working directory")
		}
		dir = parent
	}
}

// Scheme returns a scheme with client-go's types and Drover's APIs.
func Scheme() *runtime.Scheme {
	s := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(s); err != nil {
		panic(err)
	}
	if err := appsv1alpha1.AddToScheme(s); err != nil {
		panic(err)
	}
	if err := rolloutsv1alpha1.AddToScheme(s); err != nil {
		panic(err)
	}
	if err := gatewayv1.Install(s); err != nil {
		panic(err)
	}
	return s
}

// Env is a running API server.
type Env struct {
	env    *envtest.Environment
	Config *rest.Config
}

// Start runs kube-apiserver and etcd from bin/ (or KUBEBUILDER_ASSETS) with
// Drover's CRDs installed. Stop it with Stop.
func Start() (*Env, error) {
	root, err := Root()
	if err != nil {
		return nil, err
	}
	assets := os.Getenv("KUBEBUILDER_ASSETS")
	if assets == "" {
		assets = filepath.Join(root, "bin")
	}
	if _, err := os.Stat(filepath.Join(assets, "kube-apiserver")); err != nil {
		return nil, fmt.Errorf("kube-apiserver not found in %s: run 'make tools': %w", assets, err)
	}
	env := &envtest.Environment{
		BinaryAssetsDirectory: assets,
		CRDDirectoryPaths:     []string{filepath.Join(root, "config", "crd", "bases")},
		ErrorIfCRDPathMissing: true,
		Scheme:                Scheme(),
	}
	cfg, err := env.Start()
	if err != nil {
		return nil, fmt.Errorf("starting the test API server: %w", err)
	}
	// Tests measure nothing through the client's rate limiter.
	cfg.QPS, cfg.Burst = -1, 0
	return &Env{env: env, Config: cfg}, nil
}

// Stop stops the API server and etcd.
func (e *Env) Stop() error {
	return e.env.Stop()
}

// Main runs a test binary against a started API server: it starts one,
// hands a direct (uncached) client to use, runs the tests and stops it. Use
// it from TestMain: os.Exit(testenv.Main(m, func(c client.Client) { k8s = c })).
func Main(m *testing.M, use func(client.Client)) int {
	env, err := Start()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer func() { _ = env.Stop() }()
	c, err := client.New(env.Config, client.Options{Scheme: Scheme()})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	use(c)
	return m.Run()
}

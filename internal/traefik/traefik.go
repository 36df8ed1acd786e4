// Package traefik runs Traefik as a real Gateway API implementation for
// end-to-end tests: out of cluster, against a test cluster's API server (see
// internal/kwokcluster), with every entry point on a free loopback port.
//
// The binary is built from the Go module proxy by hack/build-traefik.sh
// (make tools) into bin/traefik. Traefik is started with the Kubernetes
// Gateway provider and native load balancing by default, so it routes to a
// Service's ClusterIP — which, with the harness's loopback service range, a
// test process can serve itself. Three entry points:
//
//   - web: HTTP traffic (WebURL). Traefik maps a Gateway listener to the
//     entry point whose address ends in ":<listener port>", so a Gateway's
//     listener must use WebPort as its port (CreateGateway does).
//   - metrics: Prometheus metrics (MetricsURL), with entry point, router and
//     service labels.
//   - traefik: ping (readiness) and the read-only API (APIURL, e.g.
//     /api/http/routers).
//
// InstallGatewayAPI installs the Gateway API standard CRDs, read from the
// sigs.k8s.io/gateway-api module (GatewayAPIVersion) in the Go module cache;
// CreateGateway creates a GatewayClass for ControllerName and a Gateway
// whose listener Traefik serves on the web entry point.
package traefik

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/drover-dev/drover/internal/childprocess"
	"github.com/drover-dev/drover/internal/freeport"
)

const (
	// ControllerName is Traefik's Gateway API controller name, the
	// spec.controllerName of a GatewayClass it serves.
	ControllerName = "traefik.io/gateway-controller"
	// GatewayClassName is the GatewayClass CreateGateway creates.
	GatewayClassName = "traefik"
	// GatewayAPIModule and GatewayAPIVersion name the Go module whose
	// config/crd/standard InstallGatewayAPI applies.
	GatewayAPIModule  = "sigs.k8s.io/gateway-api"
	GatewayAPIVersion = "v1.6.3"

	// WebEntryPoint, MetricsEntryPoint and APIEntryPoint are Traefik's entry
	// point names.
	WebEntryPoint     = "web"
	MetricsEntryPoint = "metrics"
	APIEntryPoint     = "traefik"

	// GatewayGroup is the API group of the Gateway API.
	GatewayGroup = "gateway.networking.k8s.io"

	fieldOwner   = "drover-traefik"
	startTimeout = time.Minute
	stopGrace    = 10 * time.Second
	logTailBytes = 8 << 10
)

// Options configures Start.
type Options struct {
	// BinDir holds the traefik binary (bin/ after make tools).
	BinDir string
	// Kubeconfig is the path of a kubeconfig for the cluster Traefik serves;
	// Traefik reads it through the KUBECONFIG environment variable.
	Kubeconfig string
	// WorkDir receives Traefik's access log (traefik-access.log). Its path
	// is on Traefik's command line, so a watchdog reaping the processes that
	// mention a directory above it (kwokcluster.Reap) also ends Traefik.
	// "" uses a temporary directory that Stop removes.
	WorkDir string
	// Log receives Traefik's own log; nil discards it.
	Log io.Writer
	// LogLevel is Traefik's log level; "" means INFO.
	LogLevel string
	// ExtraArgs are appended to Traefik's command line.
	ExtraArgs []string
}

// Traefik is a running Traefik process. Its methods are safe for concurrent
// use.
type Traefik struct {
	proc        *childprocess.Process
	webPort     int
	metricsPort int
	apiPort     int
	workDir     string
	ownWorkDir  bool
	stopOnce    sync.Once
	stopErr     error
}

// Start starts Traefik and waits until it answers its ping. On error nothing
// is left running.
func Start(ctx context.Context, opts Options) (*Traefik, error) {
	bin, err := filepath.Abs(filepath.Join(opts.BinDir, "traefik"))
	if err != nil {
		return nil, fmt.Errorf("traefik: bin dir: %w", err)
	}
	if _, err := os.Stat(bin); err != nil {
		return nil, fmt.Errorf("traefik: binary missing (run make tools or hack/build-traefik.sh): %w", err)
	}
	if opts.Kubeconfig == "" {
		return nil, errors.New("traefik: Options.Kubeconfig is required")
	}
	kubeconfig, err := filepath.Abs(opts.Kubeconfig)
	if err != nil {
		return nil, fmt.Errorf("traefik: kubeconfig: %w", err)
	}
	if _, err := os.Stat(kubeconfig); err != nil {
		return nil, fmt.Errorf("traefik: kubeconfig: %w", err)
	}

	t := &Traefik{}
	if opts.WorkDir == "" {
		t.workDir, err = os.MkdirTemp("", "drover-traefik-")
		if err != nil {
			return nil, fmt.Errorf("traefik: temp dir: %w", err)
		}
		t.ownWorkDir = true
	} else {
		t.workDir, err = filepath.Abs(opts.WorkDir)
		if err == nil {
			err = os.MkdirAll(t.workDir, 0o755)
		}
		if err != nil {
			return nil, fmt.Errorf("traefik: work dir: %w", err)
		}
	}
	ports, err := freeport.Loopback(3)
	if err != nil {
		t.removeWorkDir()
		return nil, fmt.Errorf("traefik: %w", err)
	}
	t.webPort, t.metricsPort, t.apiPort = ports[0], ports[1], ports[2]

	level := opts.LogLevel
	if level == "" {
		level = "INFO"
	}
	args := []string{
		"--global.checkNewVersion=false",
		"--global.sendAnonymousUsage=false",
		"--log.level=" + level,
		"--log.noColor=true",
		"--accesslog=true",
		"--accesslog.filepath=" + filepath.Join(t.workDir, "traefik-access.log"),
		"--entryPoints." + WebEntryPoint + ".address=" + loopback(t.webPort),
		"--entryPoints." + MetricsEntryPoint + ".address=" + loopback(t.metricsPort),
		"--entryPoints." + APIEntryPoint + ".address=" + loopback(t.apiPort),
		// Stop's SIGTERM should not wait out idle keep-alive connections.
		"--entryPoints." + WebEntryPoint + ".transport.lifeCycle.graceTimeOut=1s",
		"--entryPoints." + MetricsEntryPoint + ".transport.lifeCycle.graceTimeOut=1s",
		"--entryPoints." + APIEntryPoint + ".transport.lifeCycle.graceTimeOut=1s",
		"--ping=true",
		"--ping.entryPoint=" + APIEntryPoint,
		"--api=true",
		"--api.insecure=true",
		"--api.dashboard=false",
		"--metrics.prometheus=true",
		"--metrics.prometheus.entryPoint=" + MetricsEntryPoint,
		"--metrics.prometheus.addEntryPointsLabels=true",
		"--metrics.prometheus.addRoutersLabels=true",
		"--metrics.prometheus.addServicesLabels=true",
		"--providers.kubernetesGateway=true",
		"--providers.kubernetesGateway.nativeLBByDefault=true",
		"--providers.kubernetesGateway.statusAddress.ip=127.0.0.1",
	}
	args = append(args, opts.ExtraArgs...)

	// Out of cluster, Traefik's Gateway provider uses the kubeconfig named by
	// KUBECONFIG (its endpoint/token flags cannot carry client certificates),
	// unless KUBERNETES_SERVICE_HOST/PORT say it runs in a pod: drop those so
	// a test run inside a pod still talks to the test cluster.
	env := []string{"KUBECONFIG=" + kubeconfig}
	for _, kv := range os.Environ() {
		switch strings.SplitN(kv, "=", 2)[0] {
		case "KUBECONFIG", "KUBERNETES_SERVICE_HOST", "KUBERNETES_SERVICE_PORT":
			continue
		}
		env = append(env, kv)
	}

	t.proc, err = childprocess.Start(childprocess.Spec{
		Name: "traefik", Path: bin, Args: args, Env: env, Dir: t.workDir,
		Log: opts.Log, TailBytes: logTailBytes, Grace: stopGrace,
	})
	if err != nil {
		t.removeWorkDir()
		return nil, err
	}
	if err := t.proc.WaitHTTP(ctx, t.APIURL()+"/ping", startTimeout); err != nil {
		if stopErr := t.Stop(); stopErr != nil {
			err = errors.Join(err, stopErr)
		}
		return nil, err
	}
	return t, nil
}

func loopback(port int) string { return "127.0.0.1:" + strconv.Itoa(port) }

// WebPort is the port of the web entry point on 127.0.0.1; a Gateway
// listener must use it as its port to be served there.
func (t *Traefik) WebPort() int { return t.webPort }

// WebURL is the base URL of the web entry point, e.g. http://127.0.0.1:41234.
func (t *Traefik) WebURL() string { return "http://" + loopback(t.webPort) }

// MetricsURL is the URL of the Prometheus metrics.
func (t *Traefik) MetricsURL() string { return "http://" + loopback(t.metricsPort) + "/metrics" }

// APIURL is the base URL of the traefik entry point: /ping and the
// read-only API under /api (e.g. /api/http/routers).
func (t *Traefik) APIURL() string { return "http://" + loopback(t.apiPort) }

// WorkDir is the directory holding the access log.
func (t *Traefik) WorkDir() string { return t.workDir }

// LogTail is the end of Traefik's log (the last few KiB).
func (t *Traefik) LogTail() string { return t.proc.LogTail() }

// Exited is closed when the Traefik process has ended.
func (t *Traefik) Exited() <-chan struct{} { return t.proc.Exited() }

// Stop ends Traefik's process group (SIGTERM, SIGKILL after a grace
// period), waits for the process and removes a temporary work dir. It is
// idempotent.
func (t *Traefik) Stop() error {
	t.stopOnce.Do(func() { t.stopErr = t.stop() })
	return t.stopErr
}

func (t *Traefik) stop() error {
	defer t.removeWorkDir()
	return t.proc.Stop()
}

func (t *Traefik) removeWorkDir() {
	if t.ownWorkDir {
		_ = os.RemoveAll(t.workDir)
	}
}

// GatewayAPICRDDir returns the directory of the Gateway API standard CRDs
// (config/crd/standard of GatewayAPIModule at GatewayAPIVersion), downloading
// the module into the Go module cache if needed. It runs the go command.
func GatewayAPICRDDir(ctx context.Context) (string, error) {
	tmp, err := os.MkdirTemp("", "drover-gateway-api-")
	if err != nil {
		return "", fmt.Errorf("gateway api crds: %w", err)
	}
	defer os.RemoveAll(tmp)
	// Outside any module, so that no go.mod or go.sum is touched.
	cmd := exec.CommandContext(ctx, "go", "mod", "download", "-json", GatewayAPIModule+"@"+GatewayAPIVersion)
	cmd.Dir = tmp
	cmd.Env = append(os.Environ(), "GOFLAGS=", "GOWORK=off")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, runErr := cmd.Output()
	var mod struct {
		Dir   string
		Error string
	}
	if err := json.Unmarshal(out, &mod); err != nil && runErr == nil {
		return "", fmt.Errorf("gateway api crds: go mod download %s@%s: %w", GatewayAPIModule, GatewayAPIVersion, err)
	}
	if runErr != nil || mod.Error != "" || mod.Dir == "" {
		return "", fmt.Errorf("gateway api crds: go mod download %s@%s: %v %s %s",
			GatewayAPIModule, GatewayAPIVersion, runErr, mod.Error, strings.TrimSpace(stderr.String()))
	}
	dir := filepath.Join(mod.Dir, "config", "crd", "standard")
	if _, err := os.Stat(dir); err != nil {
		return "", fmt.Errorf("gateway api crds: %w", err)
	}
	return dir, nil
}

func crdGVK() schema.GroupVersionKind {
	return schema.GroupVersionKind{Group: "apiextensions.k8s.io", Version: "v1", Kind: "CustomResourceDefinition"}
}

// InstallGatewayAPI server-side applies the Gateway API standard CRDs (see
// GatewayAPICRDDir; other documents there, such as admission policies, are
// skipped) and waits until every one is Established.
func InstallGatewayAPI(ctx context.Context, c client.Client) error {
	dir, err := GatewayAPICRDDir(ctx)
	if err != nil {
		return err
	}
	files, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
	if err != nil {
		return fmt.Errorf("gateway api crds: %w", err)
	}
	sort.Strings(files)
	var names []string
	for _, f := range files {
		crds, err := readCRDs(f)
		if err != nil {
			return err
		}
		for _, u := range crds {
			if err := c.Apply(ctx, client.ApplyConfigurationFromUnstructured(u), client.FieldOwner(fieldOwner), client.ForceOwnership); err != nil {
				return fmt.Errorf("gateway api crds: apply %s: %w", u.GetName(), err)
			}
			names = append(names, u.GetName())
		}
	}
	if len(names) == 0 {
		return fmt.Errorf("gateway api crds: no CustomResourceDefinition in %s", dir)
	}
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	for _, name := range names {
		if err := poll(ctx, func() error { return crdEstablished(ctx, c, name) }); err != nil {
			return fmt.Errorf("gateway api crds: %w", err)
		}
	}
	return nil
}

// readCRDs returns the CustomResourceDefinitions of a multi-document YAML file.
func readCRDs(path string) ([]*unstructured.Unstructured, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("gateway api crds: %w", err)
	}
	defer f.Close()
	r := utilyaml.NewYAMLReader(bufio.NewReader(f))
	var crds []*unstructured.Unstructured
	for {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			return crds, nil
		}
		if err != nil {
			return nil, fmt.Errorf("gateway api crds: read %s: %w", path, err)
		}
		u := &unstructured.Unstructured{}
		if err := utilyaml.Unmarshal(doc, &u.Object); err != nil {
			return nil, fmt.Errorf("gateway api crds: parse %s: %w", path, err)
		}
		if len(u.Object) == 0 || u.GroupVersionKind() != crdGVK() {
			continue
		}
		crds = append(crds, u)
	}
}

func crdEstablished(ctx context.Context, c client.Client, name string) error {
	u := &unstructured.Unstructured{}
	u.SetGroupVersionKind(crdGVK())
	if err := c.Get(ctx, client.ObjectKey{Name: name}, u); err != nil {
		return fmt.Errorf("get crd %s: %w", name, err)
	}
	if !conditionTrue(u, "Established") {
		return fmt.Errorf("crd %s not established", name)
	}
	return nil
}

// GatewayGVK returns the GroupVersionKind of a Gateway API kind (Gateway,
// GatewayClass, HTTPRoute, ...) at v1.
func GatewayGVK(kind string) schema.GroupVersionKind {
	return schema.GroupVersionKind{Group: GatewayGroup, Version: "v1", Kind: kind}
}

// CreateGateway makes sure the GatewayClass GatewayClassName exists (for
// ControllerName), creates (or updates) the Gateway namespace/name with one
// HTTP listener named WebEntryPoint on t's web port, accepting routes from
// all namespaces, and waits until Traefik reports the Gateway Programmed.
// HTTPRoutes attach to it with parentRefs [{name: <name>}].
func CreateGateway(ctx context.Context, c client.Client, t *Traefik, namespace, name string) error {
	class := &unstructured.Unstructured{Object: map[string]any{
		"metadata": map[string]any{"name": GatewayClassName},
		"spec":     map[string]any{"controllerName": ControllerName},
	}}
	class.SetGroupVersionKind(GatewayGVK("GatewayClass"))
	if err := c.Create(ctx, class); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("traefik: create GatewayClass %s: %w", GatewayClassName, err)
	}
	gw := &unstructured.Unstructured{Object: map[string]any{
		"metadata": map[string]any{"name": name, "namespace": namespace},
		"spec": map[string]any{
			"gatewayClassName": GatewayClassName,
			"listeners": []any{map[string]any{
				"name":          WebEntryPoint,
				"protocol":      "HTTP",
				"port":          int64(t.WebPort()),
				"allowedRoutes": map[string]any{"namespaces": map[string]any{"from": "All"}},
			}},
		},
	}}
	gw.SetGroupVersionKind(GatewayGVK("Gateway"))
	if err := c.Apply(ctx, client.ApplyConfigurationFromUnstructured(gw), client.FieldOwner(fieldOwner), client.ForceOwnership); err != nil {
		return fmt.Errorf("traefik: apply Gateway %s/%s: %w", namespace, name, err)
	}
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	err := poll(ctx, func() error {
		cur := &unstructured.Unstructured{}
		cur.SetGroupVersionKind(GatewayGVK("Gateway"))
		if err := c.Get(ctx, client.ObjectKey{Namespace: namespace, Name: name}, cur); err != nil {
			return fmt.Errorf("get: %w", err)
		}
		if !conditionTrue(cur, "Programmed") {
			conds, _, _ := unstructured.NestedSlice(cur.Object, "status", "conditions")
			return fmt.Errorf("not Programmed; conditions %v", conds)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("traefik: Gateway %s/%s: %w; end of Traefik's log:\n%s", namespace, name, err, t.LogTail())
	}
	return nil
}

// conditionTrue reports whether u's status has condition typ with status True
// (and, where the condition carries one, for u's current generation).
func conditionTrue(u *unstructured.Unstructured, typ string) bool {
	conds, _, _ := unstructured.NestedSlice(u.Object, "status", "conditions")
	for _, c := range conds {
		m, ok := c.(map[string]any)
		if !ok || m["type"] != typ {
			continue
		}
		if g, ok := m["observedGeneration"].(int64); ok && g != u.GetGeneration() {
			return false
		}
		return strings.EqualFold(fmt.Sprint(m["status"]), "True")
	}
	return false
}

// poll calls f every 100ms until it returns nil or ctx ends; the error then
// carries f's last error.
func poll(ctx context.Context, f func() error) error {
	for {
		err := f()
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w (last: %w)", ctx.Err(), err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// Package kwokcluster starts and stops a real Kubernetes control plane with
// simulated nodes, using kwokctl's binary runtime and locally built binaries
// (kube-apiserver, kube-controller-manager, kube-scheduler, etcd, kwok).
//
// Every port is chosen free at run time, the API server's service range and
// the nodes' pod CIDRs are loopback ranges of the cluster's own (so pod and
// Service IPs can be served on this machine, by one process per address
// even with several clusters running: network.go), and pods behave according to the kwok Stage
// documents embedded from config/kwok unless Options.Stages replaces them.
// Stop deletes the cluster and makes sure no process it started is left.
package kwokcluster

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/drover-dev/drover/internal/freeport"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	kwokstages "github.com/drover-dev/drover/config/kwok"
)

const (
	// NodeIPBase is the InternalIP of the first node; node N gets 127.2.0.(1+N).
	NodeIPBase = "127.2.0.1"
	// MaxNodes is the largest node count whose pod CIDRs stay inside the
	// cluster's 127.<n>.0.0/16 (see network.go).
	MaxNodes = 256

	nodeNamePrefix = "node"
	startTimeout   = 2 * time.Minute
)

// binaries are the executables that must be present in Options.BinDir.
func binaries() []string {
	return []string{"kube-apiserver", "kube-controller-manager", "kube-scheduler", "etcd", "kwok", "kwokctl"}
}

// Options configures Start.
type Options struct {
	// Name is the cluster name; "" picks a unique "drover-<random>" so two
	// runs never collide.
	Name string
	// BinDir holds kube-apiserver, kube-controller-manager, kube-scheduler,
	// etcd, kwok and kwokctl.
	BinDir string
	// WorkDir is the parent directory of the cluster's KWOK_WORKDIR; "" uses a
	// fresh temporary directory that Stop removes.
	WorkDir string
	// Nodes is the number of simulated nodes to create. Node N has the
	// loopback pod CIDR 127.1.N.0/24.
	Nodes int
	// NodeCapacityPods is the pod capacity of each node; 0 keeps kwok's
	// default (110).
	NodeCapacityPods int
	// Stages are kwok Stage YAML documents that replace kwok's defaults; nil
	// uses the ones embedded from config/kwok. They must include node stages.
	Stages []byte
	// Log receives kwokctl's output; nil discards it.
	Log io.Writer
}

// Cluster is a running kwok cluster. Its methods are safe for concurrent use.
type Cluster struct {
	name          string
	binDir        string
	parentDir     string // removed by Stop when ownParentDir
	ownParentDir  bool
	kwokWorkDir   string // KWOK_WORKDIR
	clusterDir    string // kwokctl's directory for this cluster
	kubeconfig    string
	log           io.Writer
	capacityPods  int
	stopOnce      sync.Once
	stopErr       error
	scaleMu       sync.Mutex
	warmed        map[string]bool // nodes whose pod IP pool exists (guarded by scaleMu)
	net           network
	componentPort map[string]int
}

// Start creates and starts a cluster and waits until the API server answers
// and the requested nodes are Ready. On error nothing is left running.
func Start(ctx context.Context, opts Options) (*Cluster, error) {
	if opts.Nodes < 0 || opts.Nodes > MaxNodes {
		return nil, fmt.Errorf("kwokcluster: nodes must be between 0 and %d, got %d", MaxNodes, opts.Nodes)
	}
	binDir, err := filepath.Abs(opts.BinDir)
	if err != nil {
		return nil, fmt.Errorf("kwokcluster: bin dir: %w", err)
	}
	for _, b := range binaries() {
		if _, err := os.Stat(filepath.Join(binDir, b)); err != nil {
			return nil, fmt.Errorf("kwokcluster: binary %s missing in %s (run hack/build-tools.sh): %w", b, binDir, err)
		}
	}
	name := opts.Name
	if name == "" {
		name, err = randomName()
		if err != nil {
			return nil, err
		}
	}

	c := &Cluster{
		name:         name,
		binDir:       binDir,
		log:          opts.Log,
		capacityPods: opts.NodeCapacityPods,
	}
	if c.log == nil {
		c.log = io.Discard
	}
	if opts.WorkDir == "" {
		c.parentDir, err = os.MkdirTemp("", "drover-kwok-")
		if err != nil {
			return nil, fmt.Errorf("kwokcluster: temp dir: %w", err)
		}
		c.ownParentDir = true
	} else {
		c.parentDir, err = filepath.Abs(opts.WorkDir)
		if err != nil {
			return nil, fmt.Errorf("kwokcluster: work dir: %w", err)
		}
	}
	c.kwokWorkDir = filepath.Join(c.parentDir, name)
	c.clusterDir = filepath.Join(c.kwokWorkDir, "clusters", name)
	c.kubeconfig = filepath.Join(c.clusterDir, "kubeconfig.yaml")
	if _, err := os.Stat(c.kwokWorkDir); err == nil {
		if c.ownParentDir {
			_ = os.RemoveAll(c.parentDir)
		}
		return nil, fmt.Errorf("kwokcluster: %s already exists; is a cluster named %q running?", c.kwokWorkDir, name)
	}
	if err := os.MkdirAll(c.kwokWorkDir, 0o755); err != nil {
		return nil, fmt.Errorf("kwokcluster: %w", err)
	}
	if c.net, err = reserveNetwork(); err != nil {
		return nil, err
	}

	if err := c.start(ctx, opts); err != nil {
		stopCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
		defer cancel()
		if stopErr := c.Stop(stopCtx); stopErr != nil {
			err = errors.Join(err, stopErr)
		}
		return nil, err
	}
	return c, nil
}

func (c *Cluster) start(ctx context.Context, opts Options) error {
	ctx, cancel := context.WithTimeout(ctx, startTimeout)
	defer cancel()

	stages := opts.Stages
	if stages == nil {
		stages = kwokstages.Stages()
	}
	ports, err := freeport.Loopback(6)
	if err != nil {
		return err
	}
	c.componentPort = map[string]int{
		"etcd": ports[0], "etcd-peer": ports[1], "kube-apiserver": ports[2],
		"kwok-controller": ports[3], "kube-controller-manager": ports[4], "kube-scheduler": ports[5],
	}
	configPath := filepath.Join(c.kwokWorkDir, "drover-kwokctl.yaml")
	if err := os.WriteFile(configPath, c.config(stages), 0o644); err != nil {
		return fmt.Errorf("kwokcluster: write config: %w", err)
	}
	if err := c.kwokctl(ctx, "--config", configPath, "create", "cluster",
		"--runtime", "binary", "--kubeconfig=", "--wait", "1m", "--timeout", "2m"); err != nil {
		return fmt.Errorf("kwokcluster: create cluster %s: %w", c.name, err)
	}
	if err := c.waitAPI(ctx); err != nil {
		return err
	}
	if err := c.ScaleNodes(ctx, opts.Nodes); err != nil {
		return err
	}
	return nil
}

// Workers of the kwok controller (kwok's defaults are 4 each).
const (
	kwokPodParallelism  = 32
	kwokNodeParallelism = 8
)

// config renders the kwokctl configuration: binaries, ports, loopback
// service range, followed by the Stage documents.
func (c *Cluster) config(stages []byte) []byte {
	bin := func(name string) string { return filepath.Join(c.binDir, name) }
	var b bytes.Buffer
	fmt.Fprintf(&b, `apiVersion: config.kwok.x-k8s.io/v1alpha1
kind: KwokctlConfiguration
options:
  runtime: binary
  bindAddress: 127.0.0.1
  disableQPSLimits: true
  kubeApiserverPort: %d
  etcdPort: %d
  etcdPeerPort: %d
  kwokControllerPort: %d
  kubeControllerManagerPort: %d
  kubeSchedulerPort: %d
  kubeApiserverBinary: %q
  kubeControllerManagerBinary: %q
  kubeSchedulerBinary: %q
  etcdBinary: %q
  kwokControllerBinary: %q
componentsPatches:
- name: kube-apiserver
  extraArgs:
  - key: service-cluster-ip-range
    value: %s
# One replica each: without leader election an overloaded API server (a
# loaded CI machine) cannot make them lose a lease and exit, which kwokctl's
# binary runtime would not restart.
- name: kube-scheduler
  extraArgs:
  - key: leader-elect
    value: "false"
- name: kube-controller-manager
  extraArgs:
  - key: leader-elect
    value: "false"
# kwok plays every node's kubelet in one process, which used about a third of
# the machine's CPU during a 1,000-pod in-place update (CPU a real fleet
# spends on its nodes, not next to its control plane); with Go's default
# GOGC of 100 its collector took a fifth of that. Memory is plentiful here.
- name: kwok-controller
  extraEnvs:
  - name: GOGC
    value: "400"
`, c.componentPort["kube-apiserver"], c.componentPort["etcd"], c.componentPort["etcd-peer"],
		c.componentPort["kwok-controller"], c.componentPort["kube-controller-manager"], c.componentPort["kube-scheduler"],
		bin("kube-apiserver"), bin("kube-controller-manager"), bin("kube-scheduler"), bin("etcd"), bin("kwok"),
		c.net.ServiceCIDR())
	// One kubelet per node works on its pods concurrently; kwok's default of 4
	// workers for the whole cluster would make the simulated kubelets, not the
	// code under test, the bottleneck of any test with many pods.
	fmt.Fprintf(&b, `---
apiVersion: config.kwok.x-k8s.io/v1alpha1
kind: KwokConfiguration
options:
  podPlayStageParallelism: %d
  nodePlayStageParallelism: %d
  nodeLeaseParallelism: %d
`, kwokPodParallelism, kwokNodeParallelism, kwokNodeParallelism)
	for _, doc := range splitYAML(stages) {
		b.WriteString("---\n")
		b.WriteString(doc)
		if !strings.HasSuffix(doc, "\n") {
			b.WriteString("\n")
		}
	}
	return b.Bytes()
}

// Name is the cluster name.
func (c *Cluster) Name() string { return c.name }

// PodCIDRBase is the pod CIDR of the cluster's first node (127.<n>.0.0/24;
// node N gets 127.<n>.N.0/24), ServiceCIDR its Service range
// (127.<m>.0.0/16): loopback ranges no other cluster on the machine uses
// while this one runs.
func (c *Cluster) PodCIDRBase() string { return c.net.PodCIDRBase() }

// ServiceCIDR is the cluster's Service range (see PodCIDRBase).
func (c *Cluster) ServiceCIDR() string { return c.net.ServiceCIDR() }

// KubeconfigPath is the path of an admin kubeconfig for the cluster.
func (c *Cluster) KubeconfigPath() string { return c.kubeconfig }

// Dir is kwokctl's directory for the cluster; component logs are in its
// logs/ subdirectory. It is removed by Stop.
func (c *Cluster) Dir() string { return c.clusterDir }

// RESTConfig returns a client configuration for the cluster's admin user.
func (c *Cluster) RESTConfig() (*rest.Config, error) {
	cfg, err := clientcmd.BuildConfigFromFlags("", c.kubeconfig)
	if err != nil {
		return nil, fmt.Errorf("kwokcluster: load kubeconfig %s: %w", c.kubeconfig, err)
	}
	cfg.QPS = 200
	cfg.Burst = 400
	return cfg, nil
}

// ScaleNodes makes the number of simulated nodes n, adding or removing
// nodes, and waits until every node is Ready.
func (c *Cluster) ScaleNodes(ctx context.Context, n int) error {
	if n < 0 || n > MaxNodes {
		return fmt.Errorf("kwokcluster: nodes must be between 0 and %d, got %d", MaxNodes, n)
	}
	c.scaleMu.Lock()
	defer c.scaleMu.Unlock()
	args := []string{"scale", "node", nodeNamePrefix, "--replicas", strconv.Itoa(n),
		"--param", fmt.Sprintf(".podCIDRs=[%q]", c.net.PodCIDRBase()),
		"--param", fmt.Sprintf(".nodeIPs=[%q]", NodeIPBase),
	}
	if c.capacityPods > 0 {
		args = append(args, "--param", fmt.Sprintf(".allocatable.pods=%d", c.capacityPods))
	}
	if err := c.kwokctl(ctx, args...); err != nil {
		return fmt.Errorf("kwokcluster: scale nodes to %d: %w", n, err)
	}
	if err := c.waitNodes(ctx, n); err != nil {
		return err
	}
	return c.warmIPPools(ctx)
}

// warmIPPools starts one pod on every node that has not run one yet and
// waits for its IP. kwok v0.8.0 creates a node's pod IP pool lazily without
// a lock: two pods started together on a fresh node could both get its
// first address. Once a node's pool exists, addresses are unique.
func (c *Cluster) warmIPPools(ctx context.Context) error {
	cs, err := c.clientset()
	if err != nil {
		return err
	}
	nodes, err := cs.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		return fmt.Errorf("kwokcluster: listing nodes: %w", err)
	}
	if c.warmed == nil {
		c.warmed = map[string]bool{}
	}
	var wg sync.WaitGroup
	errs := make([]error, len(nodes.Items))
	for i := range nodes.Items {
		node := nodes.Items[i].Name
		if c.warmed[node] {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = warmNode(ctx, cs, node)
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	for i := range nodes.Items {
		c.warmed[nodes.Items[i].Name] = true
	}
	return nil
}

func warmNode(ctx context.Context, cs kubernetes.Interface, node string) error {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	pods := cs.CoreV1().Pods(metav1.NamespaceDefault)
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "kwokcluster-warmup-" + node},
		Spec: corev1.PodSpec{NodeName: node, Containers: []corev1.Container{{Name: "warmup", Image: "warmup"}},
			Tolerations: []corev1.Toleration{{Operator: corev1.TolerationOpExists}}},
	}
	if _, err := pods.Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("kwokcluster: warming up node %s: %w", node, err)
	}
	for {
		p, err := pods.Get(ctx, pod.Name, metav1.GetOptions{})
		if err == nil && p.Status.PodIP != "" {
			break
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("kwokcluster: warm-up pod on node %s got no IP: %w", node, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
	if err := pods.Delete(ctx, pod.Name, *metav1.NewDeleteOptions(0)); err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("kwokcluster: deleting the warm-up pod of node %s: %w", node, err)
	}
	for {
		if _, err := pods.Get(ctx, pod.Name, metav1.GetOptions{}); apierrors.IsNotFound(err) {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("kwokcluster: warm-up pod on node %s not deleted: %w", node, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// Stop deletes the cluster, kills every process it started and removes its
// directories. It is idempotent.
func (c *Cluster) Stop(ctx context.Context) error {
	c.stopOnce.Do(func() { c.stopErr = c.stop(ctx) })
	return c.stopErr
}

func (c *Cluster) stop(ctx context.Context) error {
	var errs []error
	if _, err := os.Stat(c.clusterDir); err == nil {
		// kwokctl insists on a kubeconfig to remove the cluster's context
		// from; give it one of its own rather than the user's.
		unused := filepath.Join(c.kwokWorkDir, "unused-kubeconfig.yaml")
		if err := c.kwokctl(ctx, "delete", "cluster", "--kubeconfig="+unused); err != nil {
			errs = append(errs, fmt.Errorf("kwokcluster: delete cluster %s: %w", c.name, err))
		}
	}
	// kwokctl stops components through pid files; anything that escaped
	// (a component that was still starting, a pid file never written) still
	// has the cluster directory on its command line.
	if err := killProcessesMentioning(ctx, c.kwokWorkDir); err != nil {
		errs = append(errs, err)
	}
	dir := c.kwokWorkDir
	if c.ownParentDir {
		dir = c.parentDir
	}
	if err := os.RemoveAll(dir); err != nil {
		errs = append(errs, fmt.Errorf("kwokcluster: remove %s: %w", dir, err))
	}
	c.net.release()
	return errors.Join(errs...)
}

// kwokctl runs kwokctl for this cluster with its own KWOK_WORKDIR.
func (c *Cluster) kwokctl(ctx context.Context, args ...string) error {
	full := append([]string{"--name", c.name}, args...)
	cmd := exec.CommandContext(ctx, filepath.Join(c.binDir, "kwokctl"), full...)
	cmd.Env = append(os.Environ(),
		"KWOK_WORKDIR="+c.kwokWorkDir,
		"PATH="+c.binDir+string(os.PathListSeparator)+os.Getenv("PATH"),
	)
	var out bytes.Buffer
	w := io.MultiWriter(c.log, &out)
	cmd.Stdout = w
	cmd.Stderr = w
	cmd.WaitDelay = 10 * time.Second
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("kwokctl %s: %w\n%s", strings.Join(args, " "), err, tail(out.String(), 4000))
	}
	return nil
}

func (c *Cluster) clientset() (kubernetes.Interface, error) {
	cfg, err := c.RESTConfig()
	if err != nil {
		return nil, err
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("kwokcluster: clientset: %w", err)
	}
	return cs, nil
}

// waitAPI waits until the API server is ready and the default namespace's
// service account exists (pods cannot be created before that).
func (c *Cluster) waitAPI(ctx context.Context) error {
	cs, err := c.clientset()
	if err != nil {
		return err
	}
	var last error
	for {
		last = func() error {
			body, err := cs.Discovery().RESTClient().Get().AbsPath("/readyz").DoRaw(ctx)
			if err != nil {
				return fmt.Errorf("readyz: %w: %s", err, body)
			}
			if _, err := cs.CoreV1().ServiceAccounts(metav1.NamespaceDefault).Get(ctx, "default", metav1.GetOptions{}); err != nil {
				return fmt.Errorf("default service account: %w", err)
			}
			return nil
		}()
		if last == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("kwokcluster: API server of %s not ready: %w (last: %w)", c.name, ctx.Err(), last)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func (c *Cluster) waitNodes(ctx context.Context, n int) error {
	cs, err := c.clientset()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	var last string
	for {
		nodes, err := cs.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
		if err == nil {
			ready := 0
			for i := range nodes.Items {
				if nodes.Items[i].DeletionTimestamp == nil && nodeReady(&nodes.Items[i]) {
					ready++
				}
			}
			if ready == n && len(nodes.Items) == n {
				return nil
			}
			last = fmt.Sprintf("%d nodes, %d ready, want %d", len(nodes.Items), ready, n)
		} else {
			last = err.Error()
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("kwokcluster: waiting for %d ready nodes: %w (%s)", n, ctx.Err(), last)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func nodeReady(n *corev1.Node) bool {
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

func randomName() (string, error) {
	b := make([]byte, 5)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("kwokcluster: random name: %w", err)
	}
	return "drover-" + hex.EncodeToString(b), nil
}

// splitYAML splits a multi-document YAML stream into its non-empty documents.
func splitYAML(data []byte) []string {
	var docs []string
	var cur strings.Builder
	flush := func() {
		s := cur.String()
		if strings.TrimSpace(stripComments(s)) != "" {
			docs = append(docs, s)
		}
		cur.Reset()
	}
	for _, line := range strings.SplitAfter(string(data), "\n") {
		if strings.TrimRight(line, " \t\r\n") == "---" {
			flush()
			continue
		}
		cur.WriteString(line)
	}
	flush()
	return docs
}

func stripComments(s string) string {
	var b strings.Builder
	for _, line := range strings.Split(s, "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), "#") {
			continue
		}
		b.WriteString(line)
		b.WriteString("\n")
	}
	return b.String()
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "..." + s[len(s)-n:]
}

// Reap kills every process whose command line mentions dir — the components
// of any cluster whose WorkDir is (under) dir, and anything else started
// with paths inside it. It is for watchdogs that clean up after a process
// that died without calling Stop.
func Reap(ctx context.Context, dir string) error {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return fmt.Errorf("kwokcluster: reap %s: %w", dir, err)
	}
	home, _ := os.UserHomeDir()
	if abs == "/" || abs == filepath.Clean(os.TempDir()) || abs == home {
		return fmt.Errorf("kwokcluster: refusing to reap processes under %s: too broad", abs)
	}
	return killProcessesMentioning(ctx, abs)
}

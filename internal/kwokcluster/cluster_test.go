package kwokcluster

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/drover-dev/drover/internal/testenv"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// binDir finds the repository's bin/ (built by hack/build-tools.sh). Without
// it the test is skipped, except in CI where it fails.
func binDir(t *testing.T) string {
	t.Helper()
	root, err := testenv.Root()
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(root, "bin")
	for _, b := range binaries() {
		if _, err := os.Stat(filepath.Join(bin, b)); err != nil {
			if os.Getenv("CI") != "" {
				t.Fatalf("%s missing: run hack/build-tools.sh", b)
			}
			t.Skipf("%s missing: run hack/build-tools.sh", b)
		}
	}
	return bin
}

// TestStartStopLeavesNothing starts two clusters at once (unique names, free
// ports), checks they serve and scale, and that Stop leaves no process and
// no directory behind.
func TestStartStopLeavesNothing(t *testing.T) {
	bin := binDir(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	var (
		wg       sync.WaitGroup
		clusters [2]*Cluster
		errs     [2]error
		logs     [2]bytes.Buffer
	)
	for i := range clusters {
		wg.Add(1)
		go func() {
			defer wg.Done()
			clusters[i], errs[i] = Start(ctx, Options{BinDir: bin, Nodes: 1, NodeCapacityPods: 20 * i, Log: &logs[i]})
		}()
	}
	wg.Wait()
	t.Cleanup(func() {
		for _, c := range clusters {
			if c != nil {
				_ = c.Stop(context.Background())
			}
		}
	})
	for i, err := range errs {
		if err != nil {
			t.Fatalf("start cluster %d: %v\n%s", i, err, logs[i].String())
		}
	}
	if clusters[0].Name() == clusters[1].Name() {
		t.Fatalf("both clusters are named %s", clusters[0].Name())
	}

	cs1, err := clusters[1].clientset()
	if err != nil {
		t.Fatal(err)
	}
	nodes1, err := cs1.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(nodes1.Items) != 1 {
		t.Errorf("cluster with 1 node has %d", len(nodes1.Items))
	} else if pods := nodes1.Items[0].Status.Allocatable.Pods().Value(); pods != 20 {
		t.Errorf("NodeCapacityPods 20: allocatable pods %d", pods)
	}

	c := clusters[0]
	if len(Processes(c.Name())) < 5 {
		t.Errorf("expected etcd, kube-apiserver, kube-controller-manager, kube-scheduler and kwok running for %s, found pids %v",
			c.Name(), Processes(c.Name()))
	}
	if err := c.ScaleNodes(ctx, 3); err != nil {
		t.Fatal(err)
	}
	cs, err := c.clientset()
	if err != nil {
		t.Fatal(err)
	}
	nodes, err := cs.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(nodes.Items) != 3 {
		t.Fatalf("got %d nodes, want 3", len(nodes.Items))
	}
	podPrefix := strings.TrimSuffix(c.PodCIDRBase(), "0.0/24")
	for _, n := range nodes.Items {
		if !strings.HasPrefix(n.Spec.PodCIDR, podPrefix) {
			t.Errorf("node %s has pod CIDR %q, want %sN.0/24", n.Name, n.Spec.PodCIDR, podPrefix)
		}
	}
	if clusters[0].PodCIDRBase() == clusters[1].PodCIDRBase() || clusters[0].ServiceCIDR() == clusters[1].ServiceCIDR() {
		t.Errorf("two running clusters share loopback ranges: %s %s / %s %s", clusters[0].PodCIDRBase(), clusters[0].ServiceCIDR(),
			clusters[1].PodCIDRBase(), clusters[1].ServiceCIDR())
	}
	svc, err := cs.CoreV1().Services(metav1.NamespaceDefault).Get(ctx, "kubernetes", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(svc.Spec.ClusterIP, strings.TrimSuffix(c.ServiceCIDR(), "0.0/16")) {
		t.Errorf("kubernetes service ClusterIP %s is not in %s", svc.Spec.ClusterIP, c.ServiceCIDR())
	}

	for _, c := range clusters {
		dir := c.parentDir
		if err := c.Stop(ctx); err != nil {
			t.Errorf("stop %s: %v", c.Name(), err)
		}
		if pids := Processes(c.Name()); len(pids) > 0 {
			t.Errorf("processes of %s still running after Stop: %v", c.Name(), pids)
		}
		if _, err := os.Stat(dir); !os.IsNotExist(err) {
			t.Errorf("%s still exists after Stop (err %v)", dir, err)
		}
		if err := c.Stop(ctx); err != nil {
			t.Errorf("second Stop of %s: %v", c.Name(), err)
		}
	}
}

// Package demoapp_test runs internal/demoapp against a real kwok cluster:
// real HTTP traffic to simulated pods' loopback IPs and through Services'
// loopback ClusterIPs.
package demoapp_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/klog/v2/ktesting"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/drover-dev/drover/internal/demoapp"
	"github.com/drover-dev/drover/test/e2e/framework"
)

const (
	timeout     = 30 * time.Second
	servicePort = 8000 // unprivileged, so that the test needs no root
	podPort     = 8080
)

func TestMain(m *testing.M) {
	os.Exit(framework.Run(m, framework.Options{Nodes: 2, NoManager: true}))
}

func newPod(ns, name, image, track string, env ...corev1.EnvVar) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: map[string]string{"app": "web", "track": track}},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{
			Name:  "app",
			Image: image,
			Env:   env,
			Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: podPort}},
		}}},
	}
}

func create(t *testing.T, obj client.Object) {
	t.Helper()
	if err := framework.Client().Create(context.Background(), obj); err != nil {
		t.Fatalf("create %T %s: %v", obj, obj.GetName(), err)
	}
}

func runningReady(p *corev1.Pod) error {
	if p.Status.Phase != corev1.PodRunning || p.Status.PodIP == "" {
		return fmt.Errorf("phase %q, IP %q", p.Status.Phase, p.Status.PodIP)
	}
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue {
			return nil
		}
	}
	return errors.New("not Ready")
}

// answer is one HTTP answer.
type answer struct {
	code int
	pod  string // X-Pod
	body demoapp.Response
	raw  string
}

type httpClient struct{ c *http.Client }

func newHTTPClient(t *testing.T) *httpClient {
	tr := &http.Transport{MaxIdleConnsPerHost: 8}
	t.Cleanup(tr.CloseIdleConnections)
	return &httpClient{c: &http.Client{Transport: tr, Timeout: 10 * time.Second}}
}

func (h *httpClient) get(url string) (answer, error) {
	resp, err := h.c.Get(url)
	if err != nil {
		return answer{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return answer{}, fmt.Errorf("GET %s: %w", url, err)
	}
	a := answer{code: resp.StatusCode, pod: resp.Header.Get(demoapp.HeaderPod), raw: string(b)}
	if a.pod != "" { // a pod's answer
		if err := json.Unmarshal(b, &a.body); err != nil {
			return a, fmt.Errorf("GET %s: body %q: %w", url, b, err)
		}
		if v := resp.Header.Get(demoapp.HeaderVersion); v != a.body.Version {
			return a, fmt.Errorf("GET %s: header %s %q, body version %q", url, demoapp.HeaderVersion, v, a.body.Version)
		}
	}
	return a, nil
}

func (h *httpClient) mustGet(t *testing.T, url string) answer {
	t.Helper()
	a, err := h.get(url)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// scrape reads a pod's /metrics and sums http_requests_total by code and
// version ("code/version"), plus the histogram's observation count.
func scrape(t *testing.T, h *httpClient, url string) (map[string]float64, uint64) {
	t.Helper()
	resp, err := h.c.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parse %s: %v", url, err)
	}
	label := func(m *dto.Metric, name string) string {
		for _, l := range m.GetLabel() {
			if l.GetName() == name {
				return l.GetValue()
			}
		}
		return ""
	}
	counts := map[string]float64{}
	for _, m := range families["http_requests_total"].GetMetric() {
		counts[label(m, "code")+"/"+label(m, "version")] += m.GetCounter().GetValue()
	}
	var observed uint64
	for _, m := range families["http_request_duration_seconds"].GetMetric() {
		observed += m.GetHistogram().GetSampleCount()
	}
	return counts, observed
}

func refused(addr string) error {
	conn, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		return nil
	}
	_ = conn.Close()
	return fmt.Errorf("%s accepts connections", addr)
}

func TestDemoApp(t *testing.T) {
	ns := framework.Namespace(t)
	stable := newPod(ns, "web-stable", "example.com/web:v1", "stable")
	canary := newPod(ns, "web-canary", "example.com/web:v2", "canary", corev1.EnvVar{Name: demoapp.EnvErrorRate, Value: "0.2"})
	plain := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "plain", Labels: map[string]string{"app": "other"}},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "example.com/plain"}}},
	}
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "web"},
		Spec: corev1.ServiceSpec{
			Selector: map[string]string{"app": "web"},
			Ports:    []corev1.ServicePort{{Name: "http", Port: servicePort, TargetPort: intstr.FromString("http")}},
		},
	}
	// One pod at a time: kwok v0.8.0 creates a node's IP pool lazily without
	// a lock (PodController.ipPool loads, then stores), so the first pods it
	// starts concurrently on a node can get the same IP.
	ips := map[string]string{}
	for _, p := range []*corev1.Pod{stable, canary, plain} {
		create(t, p)
		*p = *framework.WaitFor(t, timeout, p, runningReady)
		if other, dup := ips[p.Status.PodIP]; dup {
			t.Fatalf("pods %s and %s have the same IP %s", other, p.Name, p.Status.PodIP)
		}
		ips[p.Status.PodIP] = p.Name
	}
	create(t, svc)
	if !strings.HasPrefix(svc.Spec.ClusterIP, strings.TrimSuffix(framework.Cluster().ServiceCIDR(), "0.0/16")) {
		t.Fatalf("ClusterIP %q is not in the loopback service range", svc.Spec.ClusterIP)
	}
	podURL := func(p *corev1.Pod, path string) string {
		return "http://" + net.JoinHostPort(p.Status.PodIP, fmt.Sprint(podPort)) + path
	}
	svcAddr := net.JoinHostPort(svc.Spec.ClusterIP, fmt.Sprint(servicePort))
	svcURL := "http://" + svcAddr + "/"

	logger, _ := ktesting.NewTestContext(t)
	srv, err := demoapp.New(framework.Config(), demoapp.Options{Namespace: ns, SDAddr: "127.0.0.1:0", Log: logger})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	runErr := make(chan error, 1)
	start := time.Now()
	go func() { runErr <- srv.Run(ctx) }()
	stopped := false
	stop := func() {
		cancel()
		select {
		case err := <-runErr:
			stopped = true
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(timeout):
			t.Fatalf("Run did not return %s after its context ended", timeout)
		}
	}
	t.Cleanup(func() {
		if !stopped {
			stop()
		}
	})
	select {
	case <-srv.Ready():
	case err := <-runErr:
		t.Fatalf("Run: %v", err)
	case <-time.After(timeout):
		t.Fatalf("not ready after %s", timeout)
	}
	t.Logf("ready after %s: %+v", time.Since(start).Round(time.Millisecond), srv.Stats())
	h := newHTTPClient(t)

	t.Run("direct", func(t *testing.T) {
		for _, tc := range []struct {
			pod     *corev1.Pod
			version string
			image   string
		}{
			{stable, "v1", "example.com/web:v1"},
			{canary, "v2", "example.com/web:v2"},
			{plain, "example.com/plain", "example.com/plain"}, // no port declared: 8080; no tag: the image
		} {
			// The canary's first failure is its fifth request (ERROR_RATE=0.2).
			a := h.mustGet(t, podURL(tc.pod, "/hello"))
			want := demoapp.Response{Pod: tc.pod.Name, Version: tc.version, Image: tc.image}
			if a.code != http.StatusOK || a.pod != tc.pod.Name || a.body != want {
				t.Errorf("%s: %d %s %+v, want 200 %+v", tc.pod.Name, a.code, a.pod, a.body, want)
			}
		}
	})

	// Traffic through the ClusterIP: every request counted per pod and code.
	sent := map[string]map[int]int{} // pod -> code -> requests, ClusterIP and direct
	count := func(a answer) {
		if sent[a.pod] == nil {
			sent[a.pod] = map[int]int{}
		}
		sent[a.pod][a.code]++
	}
	before, _ := scrape(t, h, podURL(canary, "/metrics"))
	beforeStable, _ := scrape(t, h, podURL(stable, "/metrics"))

	t.Run("service round robin", func(t *testing.T) {
		for range 1000 {
			a := h.mustGet(t, svcURL)
			count(a)
		}
		if got := sent[stable.Name][200] + sent[stable.Name][500]; got != 500 {
			t.Errorf("%s answered %d of 1,000, want 500 (round robin over 2 ready pods): %v", stable.Name, got, sent)
		}
		if got := sent[canary.Name][200] + sent[canary.Name][500]; got != 500 {
			t.Errorf("%s answered %d of 1,000, want 500: %v", canary.Name, got, sent)
		}
		if got := sent[canary.Name][500]; got != 100 {
			t.Errorf("%s (ERROR_RATE=0.2) failed %d of its 500, want exactly 100", canary.Name, got)
		}
		if got := sent[stable.Name][500]; got != 0 {
			t.Errorf("%s failed %d requests, want 0", stable.Name, got)
		}
	})

	t.Run("error rate", func(t *testing.T) {
		failed := 0
		for range 1000 {
			a := h.mustGet(t, podURL(canary, "/"))
			count(a)
			if a.code == http.StatusInternalServerError {
				failed++
			} else if a.code != http.StatusOK {
				t.Fatalf("unexpected answer %d %q", a.code, a.raw)
			}
		}
		if failed != 200 {
			t.Errorf("ERROR_RATE=0.2: %d of 1,000 requests failed, want exactly 200", failed)
		}
	})

	t.Run("metrics", func(t *testing.T) {
		for range 2 { // scraping is not counted
			after, observed := scrape(t, h, podURL(canary, "/metrics"))
			ok, fail := after["200/v2"]-before["200/v2"], after["500/v2"]-before["500/v2"]
			if int(ok) != sent[canary.Name][200] || int(fail) != sent[canary.Name][500] {
				t.Errorf("%s /metrics counted %v OK and %v failed, the test sent %v", canary.Name, ok, fail, sent[canary.Name])
			}
			var total float64
			for _, v := range after {
				total += v
			}
			if uint64(total) != observed {
				t.Errorf("histogram observed %d requests, counter %v", observed, total)
			}
			afterStable, _ := scrape(t, h, podURL(stable, "/metrics"))
			if got := afterStable["200/v1"] - beforeStable["200/v1"]; int(got) != sent[stable.Name][200] {
				t.Errorf("%s /metrics counted %v, the test sent %v", stable.Name, got, sent[stable.Name])
			}
		}
	})

	t.Run("service discovery", func(t *testing.T) {
		if srv.SDAddr() == "" {
			t.Fatal("no http_sd address")
		}
		a := h.mustGet(t, "http://"+srv.SDAddr()+"/sd")
		var groups []demoapp.TargetGroup
		if err := json.Unmarshal([]byte(a.raw), &groups); err != nil {
			t.Fatalf("decode %q: %v", a.raw, err)
		}
		byPod := map[string]demoapp.TargetGroup{}
		for _, g := range groups {
			byPod[g.Labels[demoapp.LabelPod]] = g
		}
		for _, p := range []*corev1.Pod{stable, canary, plain} {
			g, ok := byPod[p.Name]
			target := net.JoinHostPort(p.Status.PodIP, fmt.Sprint(podPort))
			if !ok || len(g.Targets) != 1 || g.Targets[0] != target {
				t.Errorf("%s: group %+v, want target %s", p.Name, g, target)
				continue
			}
			if g.Labels[demoapp.LabelNamespace] != ns || g.Labels["app"] != p.Labels["app"] || g.Labels["track"] != p.Labels["track"] {
				t.Errorf("%s: labels %v", p.Name, g.Labels)
			}
		}
		if len(groups) != 3 {
			t.Errorf("%d target groups, want 3: %s", len(groups), a.raw)
		}
	})

	t.Run("in-place image change", func(t *testing.T) {
		framework.Modify(t, stable, func(p *corev1.Pod) { p.Spec.Containers[0].Image = "example.com/web:v3" })
		// The kwok stages restart the container (new status image, restart
		// count 1) on the same IP; the answer follows.
		framework.Eventually(t, timeout, func() error {
			a, err := h.get(podURL(stable, "/"))
			if err != nil {
				return err
			}
			if a.body.Version != "v3" || a.body.Image != "example.com/web:v3" {
				return fmt.Errorf("answer %+v", a.body)
			}
			return nil
		})
		cur := framework.WaitFor(t, timeout, stable, runningReady)
		if cur.Status.PodIP != stable.Status.PodIP || cur.UID != stable.UID {
			t.Errorf("pod IP %s uid %s, was %s %s", cur.Status.PodIP, cur.UID, stable.Status.PodIP, stable.UID)
		}
		if rc := framework.ContainerStatus(cur, "app").RestartCount; rc != 1 {
			t.Errorf("restart count %d, want 1", rc)
		}
		counts, _ := scrape(t, h, podURL(stable, "/metrics"))
		if counts["200/v3"] < 1 || counts["200/v1"] < 500 {
			t.Errorf("metrics by version after the change: %v", counts)
		}
		// Through the Service too, once the restarted container is ready.
		framework.Eventually(t, timeout, func() error {
			for range 4 {
				a, err := h.get(svcURL)
				if err != nil {
					return err
				}
				if a.pod == stable.Name && a.body.Version == "v3" {
					return nil
				}
			}
			return errors.New("no v3 answer through the Service")
		})
	})

	t.Run("selector change", func(t *testing.T) {
		framework.Modify(t, svc, func(v *corev1.Service) { v.Spec.Selector = map[string]string{"app": "web", "track": "canary"} })
		framework.Eventually(t, timeout, func() error {
			for range 10 {
				a, err := h.get(svcURL)
				if err != nil {
					return err
				}
				if a.pod != canary.Name {
					return fmt.Errorf("answered by %q", a.pod)
				}
			}
			return nil
		})
		framework.Modify(t, svc, func(v *corev1.Service) { v.Spec.Selector = map[string]string{"app": "nothing"} })
		framework.Eventually(t, timeout, func() error {
			a, err := h.get(svcURL)
			if err != nil {
				return err
			}
			if a.code != http.StatusServiceUnavailable {
				return fmt.Errorf("answer %d from %q, want 503 with no ready pod", a.code, a.pod)
			}
			return nil
		})
	})

	t.Run("pod deletion closes its listener", func(t *testing.T) {
		if err := framework.Client().Delete(context.Background(), plain); err != nil {
			t.Fatal(err)
		}
		framework.Eventually(t, timeout, func() error {
			return refused(net.JoinHostPort(plain.Status.PodIP, fmt.Sprint(podPort)))
		})
	})

	t.Run("stop closes every listener", func(t *testing.T) {
		st := srv.Stats()
		if st.Pods != 2 || st.Services != 1 || st.PendingBinds != 0 {
			t.Errorf("stats before stop: %+v, want 2 pods, 1 service, nothing pending", st)
		}
		h.c.CloseIdleConnections()
		stop()
		for _, addr := range []string{
			net.JoinHostPort(stable.Status.PodIP, fmt.Sprint(podPort)),
			net.JoinHostPort(canary.Status.PodIP, fmt.Sprint(podPort)),
			svcAddr,
			srv.SDAddr(),
		} {
			if err := refused(addr); err != nil {
				t.Errorf("after Run returned: %v", err)
			}
		}
	})
}

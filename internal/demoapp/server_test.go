package demoapp

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/klog/v2/ktesting"
)

// The unit tests listen on 127.77.0.0/16, outside the ranges kwok clusters
// use (127.1-3.x.x), so they never meet a cluster running on the machine.

func runServer(t *testing.T, objs ...any) (*Server, *fake.Clientset, func()) {
	t.Helper()
	cs := fake.NewClientset()
	ctx := context.Background()
	for _, o := range objs {
		var err error
		switch o := o.(type) {
		case *corev1.Pod:
			_, err = cs.CoreV1().Pods(o.Namespace).Create(ctx, o, metav1.CreateOptions{})
		case *corev1.Service:
			_, err = cs.CoreV1().Services(o.Namespace).Create(ctx, o, metav1.CreateOptions{})
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	logger, _ := ktesting.NewTestContext(t)
	s, err := newServer(cs, Options{Namespace: "ns", SDAddr: "127.0.0.1:0", Log: logger})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	select {
	case <-s.Ready():
	case err := <-done:
		t.Fatalf("Run: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("not ready after 30s")
	}
	stop := func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}
	return s, cs, stop
}

func get(url string) (int, http.Header, string, error) {
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := c.Get(url)
	if err != nil {
		return 0, nil, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(b), err
}

func eventually(t *testing.T, what string, f func() error) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %v", what, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestServerServesPodsAndServices(t *testing.T) {
	a := readyPod("a", "127.77.0.2", map[string]string{"app": "web"}, corev1.ContainerPort{Name: "http", ContainerPort: 8080})
	b := readyPod("b", "127.77.0.3", map[string]string{"app": "web"}, corev1.ContainerPort{Name: "http", ContainerPort: 8080})
	b.Spec.Containers[0].Image = "web:v2"
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "web"},
		Spec: corev1.ServiceSpec{
			ClusterIP: "127.77.3.1",
			Selector:  map[string]string{"app": "web"},
			Ports:     []corev1.ServicePort{{Port: 8081, TargetPort: intstr.FromString("http")}},
		},
	}
	s, cs, stop := runServer(t, a, b, svc)
	stopped := false
	defer func() {
		if !stopped {
			stop()
		}
	}()

	if st := s.Stats(); st.Pods != 2 || st.Services != 1 || st.PendingBinds != 0 {
		t.Fatalf("stats after Ready: %+v", st)
	}
	code, h, body, err := get("http://127.77.0.3:8080/")
	if err != nil || code != 200 || h.Get(HeaderVersion) != "v2" {
		t.Fatalf("pod b: %d %v %q %v", code, h, body, err)
	}
	split := map[string]int{}
	for range 10 {
		code, h, _, err := get("http://127.77.3.1:8081/")
		if err != nil || code != 200 {
			t.Fatalf("service: %d %v", code, err)
		}
		split[h.Get(HeaderPod)]++
	}
	if split["a"] != 5 || split["b"] != 5 {
		t.Errorf("split %v, want 5/5", split)
	}

	// sd lists both.
	_, _, body, err = get("http://" + s.SDAddr() + "/sd")
	if err != nil {
		t.Fatal(err)
	}
	var groups []TargetGroup
	if err := json.Unmarshal([]byte(body), &groups); err != nil || len(groups) != 2 {
		t.Fatalf("sd: %q %v", body, err)
	}

	// Pod a goes away and its IP goes to pod c before the server has seen
	// a's deletion... simulated by holding c's address ourselves.
	held, err := net.Listen("tcp", "127.77.0.4:8080")
	if err != nil {
		t.Fatal(err)
	}
	c := readyPod("c", "127.77.0.4", map[string]string{"app": "web"}, corev1.ContainerPort{Name: "http", ContainerPort: 8080})
	if _, err := cs.CoreV1().Pods("ns").Create(context.Background(), c, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "c pending", func() error {
		if st := s.Stats(); st.PendingBinds != 1 {
			return fmt.Errorf("stats %+v", st)
		}
		return nil
	})
	_ = held.Close()
	eventually(t, "c bound after the address was freed", func() error {
		_, h, _, err := get("http://127.77.0.4:8080/")
		if err != nil {
			return err
		}
		if h.Get(HeaderPod) != "c" {
			return fmt.Errorf("answered by %q", h.Get(HeaderPod))
		}
		return nil
	})

	// Deleting a closes its listener.
	if err := cs.CoreV1().Pods("ns").Delete(context.Background(), "a", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "a closed", func() error {
		if _, _, _, err := get("http://127.77.0.2:8080/"); err == nil {
			return fmt.Errorf("pod a still answers")
		}
		return nil
	})

	stop()
	stopped = true
	for _, addr := range []string{"127.77.0.3:8080", "127.77.0.4:8080", "127.77.3.1:8081", s.SDAddr()} {
		if conn, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			conn.Close()
			t.Errorf("%s still accepts connections after Run returned", addr)
		}
	}
}

package sidecarset

import (
	"context"
	"strings"
	"sync"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"

	"github.com/drover-dev/drover/test/e2e/framework"
)

// watcher sees every pod event of a namespace and checks an invariant on
// the pods as they are after each event: it observes every state the API
// server went through, not samples.
type watcher struct {
	mu         sync.Mutex
	pods       map[string]*corev1.Pod
	check      func(map[string]*corev1.Pod) (int, error)
	peak       int // largest value check returned
	events     int
	violations []string
	stop       func()
}

func watchPods(t *testing.T, ns string, check func(map[string]*corev1.Pod) (int, error)) *watcher {
	t.Helper()
	w := &watcher{pods: map[string]*corev1.Pod{}, check: check}
	ctx, cancel := context.WithCancel(context.Background())
	api := framework.Clientset().CoreV1().Pods(ns)
	list, err := api.List(ctx, metav1.ListOptions{})
	if err != nil {
		cancel()
		t.Fatalf("list pods: %v", err)
	}
	for i := range list.Items {
		w.pods[list.Items[i].Name] = &list.Items[i]
	}
	ww, err := api.Watch(ctx, metav1.ListOptions{ResourceVersion: list.ResourceVersion})
	if err != nil {
		cancel()
		t.Fatalf("watch pods: %v", err)
	}
	done := make(chan struct{})
	var once sync.Once
	w.stop = func() { once.Do(func() { cancel(); ww.Stop(); <-done }) }
	go func() {
		defer close(done)
		for ev := range ww.ResultChan() {
			p, ok := ev.Object.(*corev1.Pod)
			if !ok {
				continue
			}
			w.mu.Lock()
			w.events++
			if ev.Type == watch.Deleted {
				delete(w.pods, p.Name)
			} else {
				w.pods[p.Name] = p
			}
			n, err := w.check(w.pods)
			w.peak = max(w.peak, n)
			if err != nil && len(w.violations) < 20 {
				w.violations = append(w.violations, err.Error())
			}
			w.mu.Unlock()
		}
	}()
	t.Cleanup(w.stop)
	return w
}

// done stops watching and fails the test on any violation; it returns the
// peak value the check reported.
func (w *watcher) done(t *testing.T) int {
	t.Helper()
	w.stop()
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.violations) > 0 {
		t.Fatalf("invariant violated %d times over %d events, first: %s", len(w.violations), w.events, strings.Join(w.violations, "\n"))
	}
	return w.peak
}

package main

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	"k8s.io/utils/ptr"

	appsv1alpha1 "github.com/drover-dev/drover/api/apps/v1alpha1"
)

const (
	containerName = "app"
	imageV1       = "example.com/app:v1"
	gateType      = corev1.PodConditionType(appsv1alpha1.ConditionInPlaceUpdateReady)
)

// podInfo is what the tracker keeps of a pod.
type podInfo struct {
	gate     corev1.ConditionStatus // InPlaceUpdateReady condition
	ready    bool                   // condition Ready is True
	image    string                 // status image of the "app" container
	cready   bool                   // the "app" container is ready
	running  bool
	deleting bool
}

// podTracker watches the pods of a namespace (from an informer, so waiting
// costs the API server no lists) and answers counts.
type podTracker struct {
	mu   sync.Mutex
	pods map[string]podInfo
	stop chan struct{}
}

func trackPods(ctx context.Context, cs kubernetes.Interface, ns, selector string) (*podTracker, error) {
	t := &podTracker{pods: map[string]podInfo{}, stop: make(chan struct{})}
	lw := cache.NewFilteredListWatchFromClient(cs.CoreV1().RESTClient(), "pods", ns, func(o *metav1.ListOptions) {
		o.LabelSelector = selector
	})
	inf := cache.NewSharedIndexInformer(lw, &corev1.Pod{}, 0, cache.Indexers{})
	set := func(obj any) {
		p, ok := obj.(*corev1.Pod)
		if !ok {
			return
		}
		t.mu.Lock()
		t.pods[p.Name] = infoOf(p)
		t.mu.Unlock()
	}
	if _, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    set,
		UpdateFunc: func(_, n any) { set(n) },
		DeleteFunc: func(obj any) {
			if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
				obj = d.Obj
			}
			if p, ok := obj.(*corev1.Pod); ok {
				t.mu.Lock()
				delete(t.pods, p.Name)
				t.mu.Unlock()
			}
		},
	}); err != nil {
		return nil, err
	}
	go inf.Run(t.stop)
	sctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if !cache.WaitForCacheSync(sctx.Done(), inf.HasSynced) {
		close(t.stop)
		return nil, fmt.Errorf("pod informer for %s did not sync", ns)
	}
	return t, nil
}

func infoOf(p *corev1.Pod) podInfo {
	in := podInfo{running: p.Status.Phase == corev1.PodRunning, deleting: p.DeletionTimestamp != nil}
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue {
			in.ready = true
		}
		if c.Type == gateType {
			in.gate = c.Status
		}
	}
	for _, s := range p.Status.ContainerStatuses {
		if s.Name == containerName {
			in.image, in.cready = s.Image, s.Ready
		}
	}
	return in
}

func (t *podTracker) close() { close(t.stop) }

func (t *podTracker) count(f func(podInfo) bool) (match, total int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, p := range t.pods {
		if f(p) {
			match++
		}
	}
	return match, len(t.pods)
}

// waitFor polls cond every 20 ms and returns when it first holds. The
// message of the last failed check is part of a timeout error.
func waitFor(ctx context.Context, timeout time.Duration, what string, cond func() (bool, string)) error {
	return pollFor(ctx, timeout, 20*time.Millisecond, what, cond)
}

// pollFor is waitFor polling every interval.
func pollFor(ctx context.Context, timeout, interval time.Duration, what string, cond func() (bool, string)) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var last string
	for {
		ok, msg := cond()
		if ok {
			return nil
		}
		last = msg
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for %s: %w (last: %s)", what, ctx.Err(), last)
		case <-time.After(interval):
		}
	}
}

// parallel runs f(0..n-1) on workers goroutines and returns the first error.
func parallel(ctx context.Context, n, workers int, f func(ctx context.Context, i int) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var next atomic.Int64
	var once sync.Once
	var first error
	var wg sync.WaitGroup
	for w := 0; w < workers && w < n; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= n || ctx.Err() != nil {
					return
				}
				if err := f(ctx, i); err != nil {
					once.Do(func() { first = err; cancel() })
					return
				}
			}
		}()
	}
	wg.Wait()
	return first
}

// plainPod is a bare pod shaped like the ones a CloneSet creates: one
// container and the InPlaceUpdateReady readiness gate (unless gate is false).
func plainPod(ns, name string, labels map[string]string, gate bool) *corev1.Pod {
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: labels},
		Spec: corev1.PodSpec{
			Containers:                    []corev1.Container{{Name: containerName, Image: imageV1}},
			TerminationGracePeriodSeconds: ptr.To[int64](0),
		},
	}
	if gate {
		p.Spec.ReadinessGates = []corev1.PodReadinessGate{{ConditionType: gateType}}
	}
	return p
}

// gatePatch is the pods/status strategic merge patch Drover's in-place
// engine sends: the gate condition, optionally with the state annotation.
func gatePatch(status corev1.ConditionStatus, reason, annotation string) []byte {
	patch := map[string]any{"status": map[string]any{"conditions": []any{map[string]any{
		"type": string(gateType), "status": string(status), "reason": reason,
		"lastTransitionTime": metav1.Now().Rfc3339Copy(),
	}}}}
	if annotation != "" {
		patch["metadata"] = map[string]any{"annotations": map[string]any{appsv1alpha1.AnnotationInPlaceUpdateState: annotation}}
	}
	b, _ := json.Marshal(patch)
	return b
}

// inPlaceState is an annotation value of the size Drover's engine records.
func inPlaceState(rev, phase string) string {
	b, _ := json.Marshal(map[string]any{
		"revision": rev, "phase": phase,
		"containers": map[string]any{containerName: map[string]any{
			"imageID": "kwok://sha256:8f434346648f6b96df89dda901c5176b10a6d83961dd3c1ac88b59b2dc327aa4", "restartCount": 0,
		}},
		"updateTimestamp": metav1.Now().Rfc3339Copy(),
	})
	return string(b)
}

// createGated creates a pod and opens its readiness gate: the two writes
// Drover issues per pod it creates.
func createGated(ctx context.Context, cs kubernetes.Interface, pod *corev1.Pod) error {
	if _, err := cs.CoreV1().Pods(pod.Namespace).Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("create pod %s: %w", pod.Name, err)
	}
	if _, err := cs.CoreV1().Pods(pod.Namespace).Patch(ctx, pod.Name, types.StrategicMergePatchType,
		gatePatch(corev1.ConditionTrue, "PodCreated", ""), metav1.PatchOptions{}, "status"); err != nil {
		return fmt.Errorf("open gate of pod %s: %w", pod.Name, err)
	}
	return nil
}

// updateInPlace issues the three writes of Drover's in-place update: close
// the gate (with the state annotation), change image and revision label,
// open the gate. Unlike Drover it does not wait for the container to
// restart before opening the gate, so it is a lower bound.
func updateInPlace(ctx context.Context, cs kubernetes.Interface, ns, name, image, rev string) error {
	pods := cs.CoreV1().Pods(ns)
	if _, err := pods.Patch(ctx, name, types.StrategicMergePatchType,
		gatePatch(corev1.ConditionFalse, "StartInPlaceUpdate", inPlaceState(rev, "Updating")), metav1.PatchOptions{}, "status"); err != nil {
		return fmt.Errorf("close gate of %s: %w", name, err)
	}
	spec, _ := json.Marshal(map[string]any{
		"metadata": map[string]any{
			"labels":      map[string]any{"bench.drover.dev/revision": rev},
			"annotations": map[string]any{appsv1alpha1.AnnotationInPlaceUpdateState: inPlaceState(rev, "Restarting")},
		},
		"spec": map[string]any{"containers": []any{map[string]any{"name": containerName, "image": image}}},
	})
	if _, err := pods.Patch(ctx, name, types.StrategicMergePatchType, spec, metav1.PatchOptions{}); err != nil {
		return fmt.Errorf("patch image of %s: %w", name, err)
	}
	if _, err := pods.Patch(ctx, name, types.StrategicMergePatchType,
		gatePatch(corev1.ConditionTrue, "InPlaceUpdated", ""), metav1.PatchOptions{}, "status"); err != nil {
		return fmt.Errorf("open gate of %s: %w", name, err)
	}
	return nil
}

// deleteAllPods deletes the namespace's pods matching selector at once
// (grace period 0) and waits until the tracker sees none.
func deleteAllPods(ctx context.Context, cs kubernetes.Interface, t *podTracker, ns, selector string, timeout time.Duration) error {
	err := cs.CoreV1().Pods(ns).DeleteCollection(ctx, metav1.DeleteOptions{GracePeriodSeconds: ptr.To[int64](0)},
		metav1.ListOptions{LabelSelector: selector})
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("delete pods in %s: %w", ns, err)
	}
	return waitFor(ctx, timeout, "pods deleted in "+ns, func() (bool, string) {
		_, n := t.count(func(podInfo) bool { return true })
		return n == 0, fmt.Sprintf("%d pods left", n)
	})
}

func ensureNamespace(ctx context.Context, cs kubernetes.Interface, ns string) error {
	_, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("create namespace %s: %w", ns, err)
	}
	// Pods cannot be created before the namespace's default service account exists.
	return waitFor(ctx, time.Minute, "service account in "+ns, func() (bool, string) {
		_, err := cs.CoreV1().ServiceAccounts(ns).Get(ctx, "default", metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		return true, ""
	})
}

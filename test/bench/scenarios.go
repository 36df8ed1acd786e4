package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	appsv1alpha1 "github.com/drover-dev/drover/api/apps/v1alpha1"
	rolloutsv1alpha1 "github.com/drover-dev/drover/api/rollouts/v1alpha1"
	"github.com/drover-dev/drover/config/crd"
	"github.com/drover-dev/drover/internal/revision"
)

const (
	// maxRestarts bounds the manager restarts after crashes in one row.
	maxRestarts = 5

	plainNS    = "bench-plain"
	plainSel   = "bench.drover.dev/plain=true"
	droverNS   = "bench-drover"
	foreignNS  = "bench-foreign"
	foreignSel = "bench.drover.dev/foreign=true"
)

func newClient(cfg *rest.Config) (client.Client, error) {
	s := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{clientgoscheme.AddToScheme, appsv1alpha1.AddToScheme, rolloutsv1alpha1.AddToScheme, apiextensionsv1.AddToScheme} {
		if err := add(s); err != nil {
			return nil, err
		}
	}
	return client.New(cfg, client.Options{Scheme: s})
}

// installCRDs server-side applies the embedded CRDs and waits until each
// is Established.
func installCRDs(ctx context.Context, c client.Client) error {
	crds, err := crd.All()
	if err != nil {
		return err
	}
	for _, x := range crds {
		obj, err := runtime.DefaultUnstructuredConverter.ToUnstructured(x)
		if err != nil {
			return err
		}
		u := &unstructured.Unstructured{Object: obj}
		u.SetGroupVersionKind(apiextensionsv1.SchemeGroupVersion.WithKind("CustomResourceDefinition"))
		unstructured.RemoveNestedField(u.Object, "status")
		unstructured.RemoveNestedField(u.Object, "metadata", "creationTimestamp")
		if err := c.Apply(ctx, client.ApplyConfigurationFromUnstructured(u), client.FieldOwner("drover-bench"), client.ForceOwnership); err != nil {
			return fmt.Errorf("apply CRD %s: %w", x.Name, err)
		}
	}
	for _, x := range crds {
		if err := waitFor(ctx, time.Minute, "CRD "+x.Name+" established", func() (bool, string) {
			got := &apiextensionsv1.CustomResourceDefinition{}
			if err := c.Get(ctx, client.ObjectKey{Name: x.Name}, got); err != nil {
				return false, err.Error()
			}
			for _, cond := range got.Status.Conditions {
				if cond.Type == apiextensionsv1.Established && cond.Status == apiextensionsv1.ConditionTrue {
					return true, ""
				}
			}
			return false, "not established"
		}); err != nil {
			return err
		}
	}
	return nil
}

// baseline measures the plain client: N creates (+ gate), then N in-place
// updates (3 writes each), then deletes the pods.
func (b *bench) baseline(ctx context.Context) error {
	n := b.o.pods
	if err := ensureNamespace(ctx, b.cs, plainNS); err != nil {
		return err
	}
	t, err := trackPods(ctx, b.cs, plainNS, plainSel)
	if err != nil {
		return err
	}
	defer t.close()
	labels := map[string]string{"bench.drover.dev/plain": "true", "app": "plain"}

	// Row 1: N creates, each followed by the gate's status patch.
	logf("plain client: creating %d pods, %d at a time", n, b.o.workers)
	m, err := b.begin(ctx)
	if err != nil {
		return err
	}
	if err := parallel(ctx, n, b.o.workers, func(ctx context.Context, i int) error {
		return createGated(ctx, b.cs, plainPod(plainNS, fmt.Sprintf("plain-%05d", i), labels, true))
	}); err != nil {
		return err
	}
	createPhase := time.Since(m.start)
	if err := waitFor(ctx, podTimeout(n), "plain pods ready", func() (bool, string) {
		ready, total := t.count(func(p podInfo) bool { return p.ready })
		return ready == n, fmt.Sprintf("%d/%d ready", ready, total)
	}); err != nil {
		return err
	}
	allReady := time.Since(m.start)
	create := &row{
		scenario:     fmt.Sprintf("baseline: plain client creates %d pods (+ gate patch), %d-way; all Ready after %.2f s", n, b.o.workers, allReady.Seconds()),
		wall:         createPhase,
		clientWrites: 2, plainClient: true,
	}
	if err := m.finish(ctx, create, n); err != nil {
		return err
	}
	create.notes = append(create.notes, fmt.Sprintf("write phase (%d creates + %d status patches) %.2f s; all %d pods Ready %.2f s after the first create", n, n, createPhase.Seconds(), n, allReady.Seconds()))
	b.add(create)
	b.scaleRef, b.scaleReadyRef = createPhase, allReady

	// Row 2: the three writes of an in-place update per pod.
	const image = "example.com/app:v2"
	logf("plain client: updating %d pods in place (3 writes each), %d at a time", n, b.o.workers)
	m, err = b.begin(ctx)
	if err != nil {
		return err
	}
	if err := parallel(ctx, n, b.o.workers, func(ctx context.Context, i int) error {
		return updateInPlace(ctx, b.cs, plainNS, fmt.Sprintf("plain-%05d", i), image, "v2")
	}); err != nil {
		return err
	}
	writePhase := time.Since(m.start)
	if err := waitFor(ctx, podTimeout(n), "plain pods ready on the new image", func() (bool, string) {
		ok, total := t.count(func(p podInfo) bool { return p.ready && p.image == image })
		return ok == n, fmt.Sprintf("%d/%d ready on %s", ok, total, image)
	}); err != nil {
		return err
	}
	allReady = time.Since(m.start)
	update := &row{
		scenario:     fmt.Sprintf("baseline: plain client updates %d pods in place (3 writes each), %d-way; all Ready on the new image after %.2f s", n, b.o.workers, allReady.Seconds()),
		wall:         writePhase,
		clientWrites: 3, plainClient: true,
	}
	if err := m.finish(ctx, update, n); err != nil {
		return err
	}
	update.notes = append(update.notes, fmt.Sprintf("write phase (%d writes) %.2f s; all %d pods Ready on the new image %.2f s after the first write", 3*n, writePhase.Seconds(), n, allReady.Seconds()))
	b.add(update)
	b.updateRef, b.updateReadyRef = writePhase, allReady

	logf("plain client: deleting its pods")
	return deleteAllPods(ctx, b.cs, t, plainNS, plainSel, podTimeout(n))
}

func newCloneSet(name string, replicas int32, image string) *appsv1alpha1.CloneSet {
	all := intstr.FromString("100%")
	return &appsv1alpha1.CloneSet{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: droverNS},
		Spec: appsv1alpha1.CloneSetSpec{
			Replicas: ptr.To(replicas),
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": name}},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": name}},
				Spec: corev1.PodSpec{
					Containers:                    []corev1.Container{{Name: containerName, Image: image}},
					TerminationGracePeriodSeconds: ptr.To[int64](0),
				},
			},
			UpdateStrategy: appsv1alpha1.CloneSetUpdateStrategy{
				Type:           appsv1alpha1.InPlaceIfPossibleCloneSetUpdateStrategyType,
				MaxUnavailable: &all,
			},
		},
	}
}

// cloneSetDone reports whether the CloneSet has observed its generation and
// has want ready, available and updated-ready pods with condition Ready True.
func (b *bench) cloneSetDone(ctx context.Context, name string, want int32) (bool, string) {
	cur := &appsv1alpha1.CloneSet{}
	if err := b.cl.Get(ctx, client.ObjectKey{Namespace: droverNS, Name: name}, cur); err != nil {
		return false, err.Error()
	}
	st := cur.Status
	c := meta.FindStatusCondition(st.Conditions, appsv1alpha1.ConditionReady)
	ok := st.ObservedGeneration == cur.Generation && c != nil && c.Status == metav1.ConditionTrue && c.ObservedGeneration == cur.Generation &&
		st.Replicas == want && st.ReadyReplicas == want && st.AvailableReplicas == want && st.UpdatedReadyReplicas == want
	return ok, fmt.Sprintf("%s: gen %d/%d replicas %d ready %d available %d updatedReady %d", name,
		st.ObservedGeneration, cur.Generation, st.Replicas, st.ReadyReplicas, st.AvailableReplicas, st.UpdatedReadyReplicas)
}

func (b *bench) waitCloneSets(ctx context.Context, names []string, want int32) error {
	var stuck string
	crashed := false
	err := waitFor(ctx, podTimeout(int(want)*len(names)), "CloneSets ready", func() (bool, string) {
		if b.mgr != nil && !b.mgr.running() {
			crashed = true
			return true, ""
		}
		for _, name := range names {
			if ok, msg := b.cloneSetDone(ctx, name, want); !ok {
				stuck = name
				return false, msg
			}
		}
		return true, ""
	})
	if crashed {
		return &crashError{crash: crashSummary(b.mgr.logPath), log: b.mgr.logPath}
	}
	if err != nil && ctx.Err() == nil {
		err = fmt.Errorf("%w\n%s", err, b.describeUnready(ctx, stuck))
	}
	return err
}

// crashError: the manager exited while the bench waited on it.
type crashError struct{ crash, log string }

func (e *crashError) Error() string {
	return fmt.Sprintf("drover-manager exited: %s (log %s)", e.crash, e.log)
}

// crashSummary finds the panic or fatal error in the manager's log and
// the first frame of Drover's code under it: "fatal error: X in
// internal/pkg.(*T).f (internal/pkg/file.go:76)".
func crashSummary(logPath string) string {
	data, err := os.ReadFile(logPath)
	if err != nil {
		return "no log"
	}
	// The log is appended to across restarts: the last crash is the one.
	lines := strings.Split(string(data), "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		l := lines[i]
		if !strings.HasPrefix(l, "panic: ") && !strings.HasPrefix(l, "fatal error: ") {
			continue
		}
		out := l
		for j := i + 1; j+1 < len(lines); j++ {
			fn, ok := strings.CutPrefix(lines[j], "github.com/drover-dev/drover/")
			if !ok {
				continue
			}
			if k := strings.LastIndex(fn, "("); k > 0 && strings.HasSuffix(fn, ")") {
				fn = fn[:k] // drop the arguments
			}
			file := strings.TrimSpace(lines[j+1])
			for _, dir := range []string{"/internal/", "/cmd/", "/api/"} {
				if k := strings.LastIndex(file, dir); k >= 0 {
					file = file[k+1:]
					break
				}
			}
			if k := strings.Index(file, " +0x"); k > 0 {
				file = file[:k]
			}
			out += fmt.Sprintf(" in %s (%s)", fn, file)
			break
		}
		return out
	}
	return "exited without a panic in its log; last lines: " + logTail(logPath, 300)
}

// recoverFromCrash records a crash in r, restarts the manager and waits
// (untimed) until the CloneSet has converged, so the next rows can run.
func (b *bench) recoverFromCrash(ctx context.Context, r *row, ce *crashError, names []string, want int32) error {
	r.crashed = true
	r.checks = append(r.checks, check{"manager crashed: " + ce.crash, false})
	r.notes = append(r.notes, fmt.Sprintf("the manager crashed %.1f s into the row: %s; the row's counters stop at the crash. The bench restarted the manager and waited for the CloneSet before the next row.", r.wall.Seconds(), ce.crash))
	b.crashes = append(b.crashes, fmt.Sprintf("%s: %s", r.scenario, ce.crash))
	for attempt := 1; ; attempt++ {
		logf("manager crashed (%s); restarting it", ce.crash)
		if err := b.startManager(ctx); err != nil {
			return err
		}
		err := b.waitCloneSets(ctx, names, want)
		if !errors.As(err, &ce) || attempt == maxRestarts {
			return err
		}
		b.crashes = append(b.crashes, fmt.Sprintf("recovery after %s (restart %d): %s", r.scenario, attempt, ce.crash))
	}
}

// describeUnready lists the CloneSet's pods that are not Ready or not on
// its update revision, with their conditions, container statuses and
// in-place state, for the report of a timeout.
func (b *bench) describeUnready(ctx context.Context, name string) string {
	cur := &appsv1alpha1.CloneSet{}
	if err := b.cl.Get(ctx, client.ObjectKey{Namespace: droverNS, Name: name}, cur); err != nil {
		return err.Error()
	}
	status, _ := json.MarshalIndent(cur.Status, "", "  ")
	var list corev1.PodList
	if err := b.cl.List(ctx, &list, client.InNamespace(droverNS), client.MatchingLabels{"app": name}); err != nil {
		return err.Error()
	}
	out := fmt.Sprintf("CloneSet %s status:\n%s\n", name, status)
	shown := 0
	for i := range list.Items {
		p := &list.Items[i]
		info := infoOf(p)
		if info.ready && p.Labels[revision.LabelRevisionHash] == cur.Status.UpdateRevision {
			continue
		}
		if shown++; shown > 5 {
			out += "...\n"
			break
		}
		p.ManagedFields = nil
		y, _ := json.MarshalIndent(map[string]any{"metadata": p.ObjectMeta, "spec.containers": p.Spec.Containers, "status": p.Status}, "", "  ")
		out += fmt.Sprintf("pod %s:\n%s\n", p.Name, y)
	}
	return out
}

func (b *bench) patchCloneSet(ctx context.Context, name string, ops ...map[string]any) error {
	body, err := json.Marshal(ops)
	if err != nil {
		return err
	}
	cs := &appsv1alpha1.CloneSet{ObjectMeta: metav1.ObjectMeta{Namespace: droverNS, Name: name}}
	return b.cl.Patch(ctx, cs, client.RawPatch(types.JSONPatchType, body))
}

func (b *bench) rssCheck(r *row) {
	if !math.IsNaN(r.peakRSS) && !r.crashed {
		r.checks = append(r.checks, check{fmt.Sprintf("peak RSS %.1f > %d MiB", r.peakRSS, maxRSS1kMiB), r.peakRSS <= maxRSS1kMiB})
	}
}

func (b *bench) ratioCheck(r *row) {
	if r.crashed {
		return
	}
	ratio := r.ratio()
	r.checks = append(r.checks, check{fmt.Sprintf("ratio %.2f > %.1f", ratio, maxTimeRatio), ratio <= maxTimeRatio})
}

func (b *bench) writesCheck(r *row) {
	if r.crashed {
		return
	}
	r.checks = append(r.checks, check{fmt.Sprintf("%.2f manager writes/pod > %.1f", r.clientWrites, maxWritesPerPod), r.clientWrites <= maxWritesPerPod})
}

// droverRows: one CloneSet scaled 0 → N, then updated in place at
// maxUnavailable 100% and 20%.
func (b *bench) droverRows(ctx context.Context) error {
	n := int32(b.o.pods)
	if err := ensureNamespace(ctx, b.cs, droverNS); err != nil {
		return err
	}
	const name = "bench-0"
	var pods *podTracker
	if b.o.trace {
		var err error
		if pods, err = trackPods(ctx, b.cs, droverNS, "app="+name); err != nil {
			return err
		}
		defer pods.close()
	}
	if err := b.cl.Create(ctx, newCloneSet(name, 0, imageV1)); err != nil {
		return fmt.Errorf("create CloneSet: %w", err)
	}
	if err := b.waitCloneSets(ctx, []string{name}, 0); err != nil {
		return err
	}

	// Scale 0 → N.
	logf("drover: scaling CloneSet %s 0 → %d", name, n)
	m, err := b.begin(ctx)
	if err != nil {
		return err
	}
	tr := b.startTrace(ctx, pods, "")
	if err := b.patchCloneSet(ctx, name, map[string]any{"op": "replace", "path": "/spec/replicas", "value": n}); err != nil {
		return err
	}
	waitErr := b.waitCloneSets(ctx, []string{name}, n)
	scale := &row{
		scenario:     fmt.Sprintf("Drover: scale a CloneSet 0 → %d ready pods", n),
		wall:         time.Since(m.start),
		baseline:     b.scaleRef + startDelay,
		baselineText: fmt.Sprintf("%.2f + %.1f start delay", b.scaleRef.Seconds(), startDelay.Seconds()),
		readyRef:     b.scaleReadyRef,
		target:       fmt.Sprintf("≤ %.1f×; ≤ %d MiB", maxTimeRatio, maxRSS1kMiB),
	}
	tr.finish(scale)
	if err := b.closeRow(ctx, m, scale, int(n), waitErr, []string{name}, n); err != nil {
		return b.giveUp(err, scale, "in-place update rows")
	}
	b.ratioCheck(scale)
	b.rssCheck(scale)
	b.add(scale)

	// In-place update at maxUnavailable 100%, then 20%.
	for _, u := range []struct {
		image, maxUnavailable string
		timed                 bool
	}{{"example.com/app:v2", "100%", true}, {"example.com/app:v3", "20%", false}} {
		logf("drover: updating %d pods in place to %s, maxUnavailable %s", n, u.image, u.maxUnavailable)
		m, err := b.begin(ctx)
		if err != nil {
			return err
		}
		tr := b.startTrace(ctx, pods, u.image)
		if err := b.patchCloneSet(ctx, name,
			map[string]any{"op": "replace", "path": "/spec/updateStrategy/maxUnavailable", "value": u.maxUnavailable},
			map[string]any{"op": "replace", "path": "/spec/template/spec/containers/0/image", "value": u.image},
		); err != nil {
			return err
		}
		waitErr := b.waitCloneSets(ctx, []string{name}, n)
		r := &row{
			scenario: fmt.Sprintf("Drover: in-place update of %d pods, maxUnavailable %s", n, u.maxUnavailable),
			wall:     time.Since(m.start),
		}
		if u.timed {
			r.baseline = b.updateRef + restartDelay
			r.baselineText = fmt.Sprintf("%.2f + %.1f restart delay", b.updateRef.Seconds(), restartDelay.Seconds())
			r.readyRef = b.updateReadyRef
			r.target = fmt.Sprintf("≤ %.1f×; ≤ %.1f writes/pod; ≤ %d MiB", maxTimeRatio, maxWritesPerPod, maxRSS1kMiB)
		} else {
			r.target = fmt.Sprintf("≤ %.1f writes/pod; ≤ %d MiB (no time target)", maxWritesPerPod, maxRSS1kMiB)
		}
		tr.finish(r)
		if err := b.closeRow(ctx, m, r, int(n), waitErr, []string{name}, n); err != nil {
			return b.giveUp(err, r, "later in-place update rows")
		}
		if u.timed {
			b.ratioCheck(r)
		}
		b.writesCheck(r)
		b.rssCheck(r)
		b.add(r)
	}
	return nil
}

// giveUp handles a row whose crash recovery failed (the manager crashed
// again and again): the row is recorded, the CloneSet marked unconverged
// and the rest of the scenario skipped. Other errors are returned.
func (b *bench) giveUp(err error, r *row, skipped string) error {
	var ce *crashError
	if !errors.As(err, &ce) {
		return err
	}
	r.notes = append(r.notes, fmt.Sprintf("after %d restarts the manager still crashed (%s): the %s were not run", maxRestarts, ce.crash, skipped))
	b.add(r)
	b.unconverged = true
	return nil
}

// closeRow finishes a Drover row. When the manager crashed during it, the
// counters are taken up to the crash (the manager's own counters are lost
// with it), the crash is recorded and the manager restarted.
func (b *bench) closeRow(ctx context.Context, m *measurement, r *row, pods int, waitErr error, names []string, want int32) error {
	var ce *crashError
	if !errors.As(waitErr, &ce) {
		if waitErr != nil {
			return waitErr
		}
		return m.finish(ctx, r, pods)
	}
	// The dead manager has no /metrics: only the API server's counters and
	// the last RSS samples remain.
	after, err := scrapeAPIServer(ctx, b.cs)
	if err != nil {
		return err
	}
	d := apiServerWrites(after).minus(m.before.api)
	r.apiPodWrites, r.apiAllWrites = d.Pods/float64(pods), d.Total/float64(pods)
	r.clientWrites, r.cpu = math.NaN(), math.NaN()
	r.peakRSS = mib(b.watch.peakRSS())
	r.notes = append(r.notes, fmt.Sprintf("API server writes up to the crash: %.0f to pods (%s), %.0f in total", d.Pods, d.breakdown(), d.Total))
	return b.recoverFromCrash(ctx, r, ce, names, want)
}

// idleRows: 10 CloneSets × N pods (the first one already exists), then an
// idle window.
func (b *bench) idleRows(ctx context.Context) error {
	n := int32(b.o.pods)
	total := b.o.clonesets*b.o.pods + b.o.foreign
	capacity := 110
	need := int(math.Ceil(float64(total) * 1.1 / float64(capacity)))
	if need > b.o.nodes {
		logf("scaling the cluster to %d nodes (%d pods of capacity %d)", need, total, capacity)
		start := time.Now()
		if err := b.cluster.ScaleNodes(ctx, need); err != nil {
			return err
		}
		b.notes = append(b.notes, fmt.Sprintf("before the %d-CloneSet row the cluster was scaled from %d to %d nodes (kwok's default capacity of %d pods per node) in %.1f s", b.o.clonesets, b.o.nodes, need, capacity, time.Since(start).Seconds()))
	}
	// The CloneSet of the first rows is one of the ten, unless the manager
	// left it unconverged: then it is replaced by a new one.
	names := []string{"bench-0"}
	if b.unconverged {
		if err := b.replaceFirstCloneSet(ctx); err != nil {
			return err
		}
		names = nil
	}
	existing := len(names)
	for i := 1; len(names) < b.o.clonesets; i++ {
		names = append(names, fmt.Sprintf("bench-%d", i))
	}
	fresh := names[existing:]
	logf("drover: creating %d CloneSets of %d pods (%d pods in all)", len(fresh), n, len(names)*int(n))
	m, err := b.begin(ctx)
	if err != nil {
		return err
	}
	for _, name := range fresh {
		if err := b.cl.Create(ctx, newCloneSet(name, n, imageV1)); err != nil {
			return fmt.Errorf("create CloneSet %s: %w", name, err)
		}
	}
	if err := b.waitCloneSets(ctx, names, n); err != nil {
		return err
	}
	created := len(fresh) * int(n)
	grow := &row{
		scenario: fmt.Sprintf("Drover: create %d CloneSets × %d pods (%d pods in %d CloneSets)", len(fresh), n, len(names)*int(n), len(names)),
		wall:     time.Since(m.start),
	}
	if err := m.finish(ctx, grow, created); err != nil {
		return err
	}
	b.add(grow)

	logf("drover: idle for %s with %d pods", b.o.idle, len(names)*int(n))
	m, err = b.begin(ctx)
	if err != nil {
		return err
	}
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(b.o.idle):
	}
	rss := mib(b.watch.rss())
	idle := &row{
		scenario: fmt.Sprintf("Drover: idle %.0f s with %d pods in %d CloneSets", b.o.idle.Seconds(), len(names)*int(n), len(names)),
		wall:     time.Since(m.start),
		target:   fmt.Sprintf("idle RSS ≤ %d MiB", maxIdleRSS10kMiB),
	}
	if err := m.finish(ctx, idle, len(names)*int(n)); err != nil {
		return err
	}
	idle.rssText = fmt.Sprintf("%.1f at end of idle (peak %.1f)", rss, idle.peakRSS)
	idle.checks = append(idle.checks, check{fmt.Sprintf("idle RSS %.1f > %d MiB", rss, maxIdleRSS10kMiB), rss <= maxIdleRSS10kMiB})
	b.add(idle)
	return nil
}

// foreignRow creates pods Drover does not own and compares the manager's
// memory before and after.
func (b *bench) foreignRow(ctx context.Context) error {
	n := b.o.foreign
	if err := ensureNamespace(ctx, b.cs, foreignNS); err != nil {
		return err
	}
	t, err := trackPods(ctx, b.cs, foreignNS, foreignSel)
	if err != nil {
		return err
	}
	defer t.close()
	logf("foreign: creating %d pods Drover does not own", n)
	m, err := b.begin(ctx)
	if err != nil {
		return err
	}
	before := mib(b.watch.rss())
	labels := map[string]string{"bench.drover.dev/foreign": "true", "app": "foreign"}
	if err := parallel(ctx, n, b.o.workers, func(ctx context.Context, i int) error {
		_, err := b.cs.CoreV1().Pods(foreignNS).Create(ctx, plainPod(foreignNS, fmt.Sprintf("foreign-%05d", i), labels, false), metav1.CreateOptions{})
		return err
	}); err != nil {
		return err
	}
	if err := waitFor(ctx, podTimeout(n), "foreign pods ready", func() (bool, string) {
		ready, total := t.count(func(p podInfo) bool { return p.ready })
		return ready == n, fmt.Sprintf("%d/%d ready", ready, total)
	}); err != nil {
		return err
	}
	wall := time.Since(m.start)
	// Let the manager's garbage collector and any (unexpected) informer
	// catch up before reading its memory.
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(10 * time.Second):
	}
	after := mib(b.watch.rss())
	r := &row{
		scenario: fmt.Sprintf("foreign pods: plain client creates %d pods Drover does not own (until all Ready)", n),
		wall:     wall,
		target:   fmt.Sprintf("RSS growth ≤ %d MiB", maxForeignGrowMiB),
	}
	if err := m.finish(ctx, r, n); err != nil {
		return err
	}
	r.rssText = fmt.Sprintf("%.1f → %.1f (peak %.1f)", before, after, r.peakRSS)
	r.checks = append(r.checks, check{fmt.Sprintf("RSS grew %.1f MiB", after-before), after-before <= maxForeignGrowMiB})
	b.add(r)
	return nil
}

// replaceFirstCloneSet deletes the CloneSet the crashing manager left
// unconverged, waits until its pods are gone and makes sure a manager runs.
func (b *bench) replaceFirstCloneSet(ctx context.Context) error {
	if !b.mgr.running() {
		if err := b.startManager(ctx); err != nil {
			return err
		}
	}
	logf("drover: deleting the unconverged CloneSet bench-0")
	cs := &appsv1alpha1.CloneSet{ObjectMeta: metav1.ObjectMeta{Namespace: droverNS, Name: "bench-0"}}
	if err := b.cl.Delete(ctx, cs, client.PropagationPolicy(metav1.DeletePropagationBackground)); err != nil {
		return fmt.Errorf("delete CloneSet bench-0: %w", err)
	}
	b.notes = append(b.notes, "the CloneSet of the first rows was left unconverged by the crashing manager; it was deleted and the idle row uses new CloneSets")
	return waitFor(ctx, podTimeout(b.o.pods), "pods of bench-0 gone", func() (bool, string) {
		var list corev1.PodList
		if err := b.cl.List(ctx, &list, client.InNamespace(droverNS), client.MatchingLabels{"app": "bench-0"}); err != nil {
			return false, err.Error()
		}
		return len(list.Items) == 0, fmt.Sprintf("%d pods left", len(list.Items))
	})
}

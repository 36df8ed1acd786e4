package rollout_test

import (
	"context"
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	appsv1alpha1 "github.com/drover-dev/drover/api/apps/v1alpha1"
	rolloutsv1alpha1 "github.com/drover-dev/drover/api/rollouts/v1alpha1"
	"github.com/drover-dev/drover/internal/demoapp"
	"github.com/drover-dev/drover/internal/podstate"
	"github.com/drover-dev/drover/internal/revision"
	"github.com/drover-dev/drover/internal/target"
	"github.com/drover-dev/drover/test/e2e/framework"
)

// The blue-green stories of docs/rollout.md (Blue-green) on a CloneSet of
// 4 pods with real traffic. The Services are the user's: an active one
// for production and a preview one; the HTTPRoute (also the user's: a
// blue-green Rollout has no traffic router) sends /preview to the preview
// Service and everything else to the active one. The Rollout adds the
// revision label to both Services' selectors, and the demoapp's proxy
// (standing in for kube-proxy behind Traefik) picks the pods a Service
// selects per request: a switch of the active Service's selector is the
// switch of production traffic.

// previewPath is the path prefix the route sends to the preview Service.
const previewPath = "/preview"

// bgStory is a blue-green release of a CloneSet of n pods.
type bgStory struct {
	*story
	active, preview string
	// prev sends requests to the preview route; the env's web client is
	// production.
	prev *webClient
}

// newBlueGreenStory starts an env and creates the CloneSet (n pods of
// demo:v1), the active and preview Services, the HTTPRoute and the
// blue-green Rollout with strategy bg (its Services filled in); then
// waits until the Rollout is Healthy and both routes answer v1.
func newBlueGreenStory(t *testing.T, name string, n int, bg rolloutsv1alpha1.BlueGreenStrategy) *bgStory {
	t.Helper()
	s := &story{env: newEnv(t, name), kind: kindCloneSet, n: n}
	e := s.env
	b := &bgStory{story: s, active: name + "-active", preview: name + "-preview"}
	b.prev = newWebClient(e.tr.WebURL() + previewPath)
	t.Cleanup(b.prev.hc.CloseIdleConnections)
	labels := map[string]string{"app": name}
	e.cs = &appsv1alpha1.CloneSet{
		ObjectMeta: metav1.ObjectMeta{Namespace: e.ns, Name: name},
		Spec: appsv1alpha1.CloneSetSpec{
			Replicas: ptr.To(int32(n)),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{
					Name: "app", Image: imageV1,
					Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: podPort}},
				}}},
			},
			UpdateStrategy: appsv1alpha1.CloneSetUpdateStrategy{
				Type:           appsv1alpha1.InPlaceIfPossibleCloneSetUpdateStrategyType,
				MaxUnavailable: ptr.To(intstr.FromString("50%")),
			},
		},
	}
	s.wl = e.cs
	service := func(svcName string) *corev1.Service {
		return &corev1.Service{
			ObjectMeta: metav1.ObjectMeta{Namespace: e.ns, Name: svcName},
			Spec: corev1.ServiceSpec{
				Selector: labels,
				Ports:    []corev1.ServicePort{{Name: "http", Port: podPort, TargetPort: intstr.FromInt32(podPort)}},
			},
		}
	}
	backend := func(svcName string) []gatewayv1.HTTPBackendRef {
		return []gatewayv1.HTTPBackendRef{{BackendRef: gatewayv1.BackendRef{BackendObjectReference: gatewayv1.BackendObjectReference{
			Name: gatewayv1.ObjectName(svcName), Port: ptr.To(gatewayv1.PortNumber(podPort)),
		}}}}
	}
	e.route = &gatewayv1.HTTPRoute{
		ObjectMeta: metav1.ObjectMeta{Namespace: e.ns, Name: name},
		Spec: gatewayv1.HTTPRouteSpec{
			CommonRouteSpec: gatewayv1.CommonRouteSpec{ParentRefs: []gatewayv1.ParentReference{{Name: gatewayName}}},
			Rules: []gatewayv1.HTTPRouteRule{
				{
					Matches: []gatewayv1.HTTPRouteMatch{{Path: &gatewayv1.HTTPPathMatch{
						Type: ptr.To(gatewayv1.PathMatchPathPrefix), Value: ptr.To(previewPath),
					}}},
					BackendRefs: backend(b.preview),
				},
				{BackendRefs: backend(b.active)},
			},
		},
	}
	bg.ActiveService, bg.PreviewService = b.active, b.preview
	e.ro = &rolloutsv1alpha1.Rollout{
		ObjectMeta: metav1.ObjectMeta{Namespace: e.ns, Name: name},
		Spec: rolloutsv1alpha1.RolloutSpec{
			TargetRef: rolloutsv1alpha1.TargetRef{APIVersion: appsv1alpha1.GroupVersion.String(), Kind: kindCloneSet, Name: name},
			Strategy:  rolloutsv1alpha1.RolloutStrategy{BlueGreen: &bg},
		},
	}
	t.Cleanup(func() {
		if t.Failed() {
			b.dumpServices()
		}
	})
	start := time.Now()
	for _, o := range []client.Object{e.cs, service(b.active), service(b.preview), e.route, e.ro} {
		framework.Create(t, o)
	}
	var rev string
	s.wait("Healthy on the first revision", func(ro *rolloutsv1alpha1.Rollout, w *target.Workload) error {
		rev = w.UpdateRevision
		if err := s.healthy(ro, rev); err != nil {
			return err
		}
		if st := ro.Status; st.StableService != b.active || st.CanaryService != b.preview {
			return fmt.Errorf("status services %q/%q, want %s/%s", st.StableService, st.CanaryService, b.active, b.preview)
		}
		return s.podsOn(rev, imageV1, n)
	})
	e.logf("CloneSet %s with %d pods: blue-green rollout Healthy on revision %s after %s", name, n, rev, time.Since(start).Round(100*time.Millisecond))
	s.served()
	e.waitSplit(0, "v1", "v2")
	e.waitSplitVia(b.prev, 0, "v1", "v2")
	b.serviceSelects(b.active, rev)
	b.serviceSelects(b.preview, rev)
	return b
}

// dumpServices logs the active and preview Services.
func (b *bgStory) dumpServices() {
	for _, name := range []string{b.active, b.preview} {
		var svc corev1.Service
		if err := framework.Client().Get(context.Background(), client.ObjectKey{Namespace: b.ns, Name: name}, &svc); err == nil {
			b.t.Logf("dump: service %s clusterIP %s selector %v", name, svc.Spec.ClusterIP, svc.Spec.Selector)
		} else {
			b.t.Logf("dump: service %s: %v", name, err)
		}
	}
}

// podsBy says why the CloneSet's pods are not exactly want (count by
// revision), each ready and running its revision's image.
func (b *bgStory) podsBy(want map[string]int, images map[string]string) error {
	pods, err := b.pods()
	if err != nil {
		return err
	}
	got := map[string]int{}
	for _, p := range pods {
		rev := p.Labels[revision.LabelRevisionHash]
		if !podstate.IsReady(&p) || framework.ContainerStatus(&p, "app").Image != images[rev] {
			return fmt.Errorf("pod %s of %s is not ready with %s; pods: %s", p.Name, rev, images[rev], describePods(pods))
		}
		got[rev]++
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		return fmt.Errorf("pods by revision %v, want %v; pods: %s", got, want, describePods(pods))
	}
	return nil
}

// uidsOn returns the UIDs, by name, of the CloneSet's pods on rev.
func (b *bgStory) uidsOn(rev string) map[string]string {
	b.t.Helper()
	pods, err := b.pods()
	if err != nil {
		b.t.Fatal(err)
	}
	out := map[string]string{}
	for _, p := range pods {
		if p.Labels[revision.LabelRevisionHash] == rev {
			out[p.Name] = string(p.UID)
		}
	}
	return out
}

// servedAll waits until the demoapp answers on every pod's address as
// that pod (story.served for any number of pods).
func (b *bgStory) servedAll() {
	b.t.Helper()
	hc := &http.Client{Timeout: 5 * time.Second}
	defer hc.CloseIdleConnections()
	err := framework.Poll(b.ctx, trafficTimeout, func() error {
		pods, err := b.pods()
		if err != nil {
			return err
		}
		if st := b.demo.Stats(); st.PendingBinds != 0 || st.Pods != len(pods) {
			return fmt.Errorf("demoapp serves %d pods of %d, %d addresses wait to be bound (held by another process?)", st.Pods, len(pods), st.PendingBinds)
		}
		for _, p := range pods {
			url := fmt.Sprintf("http://%s:%d/", p.Status.PodIP, podPort)
			resp, err := hc.Get(url)
			if err != nil {
				return fmt.Errorf("pod %s: %w", p.Name, err)
			}
			_ = resp.Body.Close()
			if got := resp.Header.Get(demoapp.HeaderPod); got != p.Name {
				return fmt.Errorf("%s answered as pod %q, want %s: another process serves the address", url, got, p.Name)
			}
		}
		return nil
	})
	if err != nil {
		b.t.Fatalf("pods' addresses: %v", err)
	}
}

// deletions records when each pod of the story was first seen terminating
// (or deleted), and the resourceVersion of that change.
type deletions struct {
	mu sync.Mutex
	at map[string]seenAt
}

// seenAt is when a watch saw a change, and the change's resourceVersion.
// The suite's cluster has one kube-apiserver on one etcd: a
// resourceVersion is etcd's revision, which orders every write of the
// cluster, whatever the object (a client must not rely on it in general;
// a test of this cluster may).
type seenAt struct {
	at time.Time
	rv uint64
}

func resourceVersion(o metav1.Object) uint64 {
	rv, _ := strconv.ParseUint(o.GetResourceVersion(), 10, 64)
	return rv
}

func (b *bgStory) recordDeletions() *deletions {
	d := &deletions{at: map[string]seenAt{}}
	framework.RecordPods(b.t, b.ns, nil, func(ev framework.PodEvent) {
		if ev.Index == 0 || ev.Pod.Labels["app"] != b.name || (ev.Type != watch.Deleted && ev.Pod.DeletionTimestamp == nil) {
			return
		}
		d.mu.Lock()
		defer d.mu.Unlock()
		if _, ok := d.at[ev.Pod.Name]; !ok {
			d.at[ev.Pod.Name] = seenAt{at: time.Now(), rv: resourceVersion(ev.Pod)}
		}
	})
	return d
}

// of returns when the pods were seen going, by name (zero: not seen).
func (d *deletions) of(names map[string]string) map[string]seenAt {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := map[string]seenAt{}
	for n := range names {
		out[n] = d.at[n]
	}
	return out
}

// all returns every pod seen going.
func (d *deletions) all() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []string
	for n := range d.at {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// selectorHistory records the revisions a Service's selector went
// through, as a watch saw them.
type selectorHistory struct {
	mu      sync.Mutex
	changes []selectorChange
}

type selectorChange struct {
	seenAt
	rev string
}

// recordSelector watches the Service name until the test ends.
func (b *bgStory) recordSelector(name string) *selectorHistory {
	b.t.Helper()
	h := &selectorHistory{}
	b.watchUntilEnd(&corev1.ServiceList{}, func(ev watch.Event) {
		svc, ok := ev.Object.(*corev1.Service)
		if !ok || svc.Name != name {
			return
		}
		rev := svc.Spec.Selector[revision.LabelRevisionHash]
		h.mu.Lock()
		defer h.mu.Unlock()
		if n := len(h.changes); n == 0 || h.changes[n-1].rev != rev {
			h.changes = append(h.changes, selectorChange{seenAt: seenAt{at: time.Now(), rv: resourceVersion(svc)}, rev: rev})
		}
	})
	return h
}

// firstAfter returns the first change to rev after a change to prev
// (false if none was seen).
func (h *selectorHistory) firstAfter(prev, rev string) (selectorChange, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	seenPrev := false
	for _, c := range h.changes {
		switch {
		case c.rev == prev:
			seenPrev = true
		case c.rev == rev && seenPrev:
			return c, true
		}
	}
	return selectorChange{}, false
}

func (h *selectorHistory) String() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	var parts []string
	for _, c := range h.changes {
		parts = append(parts, fmt.Sprintf("%s (rv %d at %s)", c.rev, c.rv, c.at.Format("15:04:05.000")))
	}
	return strings.Join(parts, " → ")
}

// hasPause reports whether the status carries a pause condition of reason.
func hasPause(st *rolloutsv1alpha1.RolloutStatus, reason rolloutsv1alpha1.PauseReason) bool {
	for _, pc := range st.PauseConditions {
		if pc.Reason == reason {
			return true
		}
	}
	return false
}

// previewReady waits until the release of rev runs its full preview
// beside the stable pods: n pods of each, ready, the Rollout paused for
// the auto-promotion and the Services where they belong.
func (b *bgStory) previewReady(stable, rev string) *rolloutsv1alpha1.Rollout {
	b.t.Helper()
	n := int32(b.n)
	return b.wait("paused with the preview of "+rev+" ready", func(ro *rolloutsv1alpha1.Rollout, _ *target.Workload) error {
		st := ro.Status
		if st.ObservedGeneration != ro.Generation || st.Phase != rolloutsv1alpha1.RolloutPhasePaused || st.StableRevision != stable ||
			st.CanaryRevision != rev || st.CanaryReadyReplicas != n || st.StableReadyReplicas != n ||
			!hasPause(&st, rolloutsv1alpha1.PauseReasonBlueGreenPause) {
			return fmt.Errorf("want Paused (%s) with %d ready pods of %s beside %d of %s; %s",
				rolloutsv1alpha1.PauseReasonBlueGreenPause, n, rev, n, stable, summary(ro))
		}
		return b.podsBy(map[string]int{stable: b.n, rev: b.n}, map[string]string{stable: imageV1, rev: imageV2})
	})
}

// switchedTo waits until the Rollout switched the active Service to rev,
// keeping the pods of old.
func (b *bgStory) switchedTo(old, rev string) *rolloutsv1alpha1.Rollout {
	b.t.Helper()
	return b.wait("switched to "+rev, func(ro *rolloutsv1alpha1.Rollout, _ *target.Workload) error {
		st := ro.Status
		if st.StableRevision != rev || st.ScaleDownRevision != old || st.ScaleDownAt == nil {
			return fmt.Errorf("want %s active with the pods of %s kept; %s (scale down %q at %v)", rev, old, summary(ro), st.ScaleDownRevision, st.ScaleDownAt)
		}
		return nil
	})
}

// TestBlueGreenWithRealTraffic: v2 runs beside v1 (8 pods), answering on
// the preview route while production stays all v1; after
// autoPromotionSeconds (5s) the active Service switches to v2 at once,
// with no failed request across the switch; v1's pods stay for
// scaleDownDelaySeconds (10s), then go, leaving v2's 4 pods, the ones the
// preview ran.
func TestBlueGreenWithRealTraffic(t *testing.T) {
	t.Parallel()
	const autoPromotion, scaleDownDelay = 5 * time.Second, 10 * time.Second
	b := newBlueGreenStory(t, "bg", 4, rolloutsv1alpha1.BlueGreenStrategy{
		AutoPromotionEnabled:  ptr.To(true),
		AutoPromotionSeconds:  ptr.To(int32(autoPromotion / time.Second)),
		ScaleDownDelaySeconds: ptr.To(int32(scaleDownDelay / time.Second)),
	})
	v1 := b.rollout().Status.StableRevision
	v1Pods := b.uidsOn(v1)
	history := b.recordRollout()
	gone := b.recordDeletions()

	active := b.recordSelector(b.active)

	bg := b.startBackground()
	v2 := b.setImage(imageV2)

	// The preview: 4 new pods of v2 beside the 4 of v1, untouched.
	b.previewReady(v1, v2)
	paused := history.waitSeen(t, "the auto-promotion pause", func(st *rolloutsv1alpha1.RolloutStatus) bool {
		return st.CanaryRevision == v2 && hasPause(st, rolloutsv1alpha1.PauseReasonBlueGreenPause)
	})
	b.logf("preview of %s ready, auto-promotion in %s", v2, autoPromotion)
	b.servedAll()
	b.waitSplitVia(b.prev, 100, "v1", "v2")
	b.expectAll(b.prev, 100, "v2", "preview route before the switch")
	b.expectAll(b.web, 100, "v1", "production before the switch")
	checked := time.Now()
	b.serviceSelects(b.active, v1)
	b.serviceSelects(b.preview, v2)
	if got := b.uidsOn(v1); fmt.Sprint(got) != fmt.Sprint(v1Pods) {
		t.Errorf("v1 pods during the preview %v, want the same %v", got, v1Pods)
	}
	v2Pods := b.uidsOn(v2)

	// The switch.
	ro := b.switchedTo(v1, v2)
	switched := history.waitSeen(t, "the switch", func(st *rolloutsv1alpha1.RolloutStatus) bool { return st.StableRevision == v2 })
	b.logf("switched to %s %s after the preview was ready; v1 pods kept until %s", v2,
		switched.Sub(paused).Round(10*time.Millisecond), ro.Status.ScaleDownAt.Format("15:04:05"))
	if switched.Before(checked) {
		t.Fatalf("the switch (%s) came before the checks of the preview were done (%s): the story proves nothing",
			switched.Format("15:04:05.000"), checked.Format("15:04:05.000"))
	}
	// autoPromotionSeconds counts from a start time stored with a
	// precision of a second: the switch comes 4 to 5 s after the preview
	// was ready, plus a reconcile.
	if d := switched.Sub(paused); d < autoPromotion-time.Second-100*time.Millisecond || d > autoPromotion+5*time.Second {
		t.Errorf("switched %s after the preview was ready (seen at %s), want about %s", d, paused.Format("15:04:05.000"), autoPromotion)
	}
	b.waitSplit(100, "v1", "v2")
	b.expectAll(b.web, 200, "v2", "production after the switch")
	b.expectAll(b.prev, 50, "v2", "preview route after the switch")
	b.serviceSelects(b.active, v2)

	// The scale-down: v1's pods stay until scaleDownAt, then go.
	scaleDownAt := ro.Status.ScaleDownAt.Time
	ro = b.healthyOn(v2, imageV2)
	done := time.Now()
	b.assertNoErrors(bg, "the preview, the switch and the scale-down")
	if ro.Status.ScaleDownRevision != "" || ro.Status.ScaleDownAt != nil {
		t.Errorf("Healthy with scale down of %q at %v still recorded", ro.Status.ScaleDownRevision, ro.Status.ScaleDownAt)
	}
	toV2, ok := active.firstAfter(v1, v2)
	if !ok {
		t.Fatalf("the active Service was not seen switching from %s to %s: %s", v1, v2, active)
	}
	for name, seen := range gone.of(v1Pods) {
		at := seen.at
		switch {
		case at.IsZero():
			t.Errorf("v1 pod %s: its deletion was not seen", name)
		case seen.rv < toV2.rv:
			t.Errorf("v1 pod %s was terminating (resourceVersion %d) before the active Service switched to %s (resourceVersion %d)", name, seen.rv, v2, toV2.rv)
		case at.Before(scaleDownAt):
			t.Errorf("v1 pod %s deleted at %s, before scaleDownAt %s", name, at.Format("15:04:05.000"), scaleDownAt.Format("15:04:05.000"))
		case at.Sub(switched) < scaleDownDelay-time.Second:
			t.Errorf("v1 pod %s deleted %s after the switch, want %s", name, at.Sub(switched), scaleDownDelay)
		case at.Sub(scaleDownAt) > 5*time.Second:
			t.Errorf("v1 pod %s deleted at %s, %s after scaleDownAt", name, at.Format("15:04:05.000"), at.Sub(scaleDownAt))
		default:
			b.logf("v1 pod %s deleted %s after the switch", name, at.Sub(switched).Round(10*time.Millisecond))
		}
	}
	if got := gone.all(); len(got) != len(v1Pods) {
		t.Errorf("pods deleted: %v, want only v1's %v", got, v1Pods)
	}
	if got := b.uidsOn(v2); fmt.Sprint(got) != fmt.Sprint(v2Pods) {
		t.Errorf("v2 pods at the end %v, want the preview's %v", got, v2Pods)
	}
	b.logf("Healthy on %s with %d pods %s after the switch", v2, b.n, done.Sub(switched).Round(100*time.Millisecond))
	b.expectAll(b.web, 100, "v2", "production at the end")
	b.waitEvent("Promoted", "active service switched to "+v2)
}

// TestBlueGreenPostPromotionFailureSwitchesBack: after the switch the
// post-promotion analysis (a web metric answering {"ok": false} against
// `result == true`, failureLimit 0) fails; the active Service switches
// straight back to v1's pods, still there, with no failed request; the
// Rollout is Degraded, status.abortMessage naming the run and the metric,
// and v2's pods go.
func TestBlueGreenPostPromotionFailureSwitchesBack(t *testing.T) {
	t.Parallel()
	srv := newMetricServer(t, `{"ok": false}`)
	// The first measurement comes initialDelay after the switch: time for
	// the test to see production answered by v2 before it switches back.
	const initialDelay = 3 * time.Second
	b := newBlueGreenStory(t, "bgpost", 4, rolloutsv1alpha1.BlueGreenStrategy{
		AutoPromotionEnabled:  ptr.To(true),
		AutoPromotionSeconds:  ptr.To[int32](5),
		ScaleDownDelaySeconds: ptr.To[int32](10),
		PostPromotionAnalysis: analysisOf("smoke"),
	})
	metric := webMetric("smoke", srv.url(), "{$.ok}", "result == true", 3)
	metric.FailureLimit = ptr.To[int32](0)
	metric.InitialDelay = &metav1.Duration{Duration: initialDelay}
	b.createTemplate("smoke", metric)
	v1 := b.rollout().Status.StableRevision
	v1Pods := b.uidsOn(v1)
	history := b.recordRollout()
	gone := b.recordDeletions()
	active := b.recordSelector(b.active)

	bg := b.startBackground()
	v2 := b.setImage(imageV2)
	b.previewReady(v1, v2)
	v2Pods := b.uidsOn(v2)
	if runs := b.analysisRuns(); len(runs) != 0 {
		t.Errorf("analysis runs before the switch:%s", describeRuns(runs))
	}

	// The switch: production goes to v2 and the run starts.
	b.switchedTo(v1, v2)
	b.waitSplit(100, "v1", "v2")
	b.logf("production answered by %s after the switch", v2)
	if got := srv.received(); len(got) != 0 {
		t.Errorf("the post-promotion analysis measured before the test saw production on v2 (%v): the story proves less", got)
	}
	switched := history.waitSeen(t, "the switch", func(st *rolloutsv1alpha1.RolloutStatus) bool { return st.StableRevision == v2 })
	runSeen := history.waitSeen(t, "the post-promotion run", func(st *rolloutsv1alpha1.RolloutStatus) bool {
		for _, r := range st.AnalysisRuns {
			if r.Kind == rolloutsv1alpha1.AnalysisKindPostPromotion {
				return true
			}
		}
		return false
	})
	if runSeen.Before(switched) {
		t.Errorf("post-promotion run first in status at %s, the switch at %s: want it started by the switch",
			runSeen.Format("15:04:05.000"), switched.Format("15:04:05.000"))
	}

	// The analysis fails: back to v1.
	ro := b.wait("Degraded, switched back to "+v1, func(ro *rolloutsv1alpha1.Rollout, _ *target.Workload) error {
		st := ro.Status
		if st.Phase != rolloutsv1alpha1.RolloutPhaseDegraded || st.StableRevision != v1 || st.AbortedRevision != v2 || st.ScaleDownRevision != "" {
			return fmt.Errorf("want Degraded with %s active again and %s aborted; %s", v1, v2, summary(ro))
		}
		return nil
	})
	run := b.waitRun(rolloutsv1alpha1.AnalysisKindPostPromotion, v2, "Failed", func(run *rolloutsv1alpha1.AnalysisRun) error {
		return runPhase(run, rolloutsv1alpha1.AnalysisPhaseFailed)
	})
	b.logf("Degraded: %s; analysis run:%s", ro.Status.AbortMessage, describeRuns([]rolloutsv1alpha1.AnalysisRun{*run}))
	if msg := ro.Status.AbortMessage; !strings.Contains(msg, run.Name) || !strings.Contains(msg, "metric smoke") {
		t.Errorf("status.abortMessage %q, want the run %s and the metric smoke", msg, run.Name)
	}
	if m := run.Status.MetricResults[0]; m.Failed != 1 || len(m.Measurements) != 1 || m.Measurements[0].Value != "false" {
		t.Errorf("metric result %+v, want one failed measurement of false", m)
	}
	b.serviceSelects(b.active, v1)
	b.waitSplit(0, "v1", "v2")
	b.expectAll(b.web, 200, "v1", "production after the switch back")

	// v2's pods go; v1's are the ones from before the release.
	b.wait("v2's pods gone", func(ro *rolloutsv1alpha1.Rollout, _ *target.Workload) error {
		if ro.Status.Phase != rolloutsv1alpha1.RolloutPhaseDegraded {
			return fmt.Errorf("want Degraded; %s", summary(ro))
		}
		return b.podsOn(v1, imageV1, b.n)
	})
	b.assertNoErrors(bg, "the switch, the analysis and the switch back")
	// v2's pods went only a moment after the active Service had left
	// them: whatever routes by the Service (here the demoapp's proxy, in
	// a cluster endpoints and kube-proxy) follows its selector
	// asynchronously, and a pod terminating while production is still
	// sent to it is a failed request. (Without that moment the demoapp
	// was seen to find all of v2's pods terminating before the selector's
	// change: a 503.)
	back, ok := active.firstAfter(v2, v1)
	if !ok {
		t.Fatalf("the active Service was not seen switching back from %s to %s: %s", v2, v1, active)
	}
	for name, seen := range gone.of(v2Pods) {
		switch {
		case seen.rv == 0:
			t.Errorf("v2 pod %s: its deletion was not seen", name)
		case seen.rv < back.rv:
			t.Errorf("v2 pod %s was terminating (resourceVersion %d, seen %s) before the active Service switched back to %s (resourceVersion %d, seen %s): production was still sent to it",
				name, seen.rv, seen.at.Format("15:04:05.000"), v1, back.rv, back.at.Format("15:04:05.000"))
		case seen.at.Sub(back.at) < time.Second:
			t.Errorf("v2 pod %s was terminating %s after the active Service switched back to %s: too soon for what routes by the Service to follow",
				name, seen.at.Sub(back.at).Round(time.Millisecond), v1)
		default:
			b.logf("v2 pod %s terminating %s after the active Service switched back", name, seen.at.Sub(back.at).Round(time.Millisecond))
		}
	}
	if got := b.uidsOn(v1); fmt.Sprint(got) != fmt.Sprint(v1Pods) {
		t.Errorf("v1 pods at the end %v, want the same %v", got, v1Pods)
	}
	if got := srv.received(); len(got) != 1 {
		t.Errorf("the metric server got %d requests, want the one failed measurement", len(got))
	}
	b.waitEvent(rolloutsv1alpha1.ReasonAnalysisFailed, run.Name)
}

package rollout_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/klog/v2/ktesting"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	appsv1alpha1 "github.com/drover-dev/drover/api/apps/v1alpha1"
	rolloutsv1alpha1 "github.com/drover-dev/drover/api/rollouts/v1alpha1"
	"github.com/drover-dev/drover/internal/demoapp"
	"github.com/drover-dev/drover/internal/podstate"
	"github.com/drover-dev/drover/internal/revision"
	"github.com/drover-dev/drover/internal/target"
	"github.com/drover-dev/drover/internal/traefik"
	"github.com/drover-dev/drover/test/e2e/framework"
)

const (
	replicas    = 10
	podPort     = 8080
	gatewayName = "gw"
	imageV1     = "demo:v1"
	imageV2     = "demo:v2"

	// rolloutTimeout bounds every wait on the Rollout, the CloneSet and
	// their pods (a step moves pods in place: about a second each under
	// the kwok stages, a few seconds in all).
	rolloutTimeout = 2 * time.Minute
	// trafficTimeout bounds the wait for a route change to reach Traefik's
	// routing (the route status, which verifies a weight, is written when
	// Traefik has built the configuration, up to its providers' throttle
	// of 2s before it routes by it).
	trafficTimeout = 30 * time.Second

	// measured is the number of requests of a measurement.
	measured = 1000
	// splitTolerance is how far from its exact share (weight% of the
	// requests) a version's count may be over measured requests. Traefik's
	// weighted round robin is deterministic (earliest deadline first):
	// over n consecutive requests a backend's count is within one of its
	// exact share, and the demoapp's answer depends only on the backend
	// (the canary Service selects only canary pods). The batches that
	// waited for the weight to take effect shift the round robin's phase
	// by a request or two; ±10 (1% of 1,000) leaves room for that and
	// nothing else.
	splitTolerance = 10
	// probeBatch is the size of the batches that wait for a weight to take
	// effect; a batch passes when its canary count is within
	// probeTolerance of the weight's share of it.
	probeBatch     = 20
	probeTolerance = 2
	// backgroundPace is the pause between two requests of a background
	// client (about 150 requests a second).
	backgroundPace = 5 * time.Millisecond
)

// gatewayAPI is the suite-wide installation of the Gateway API CRDs, done
// once by whichever test needs it first. (The harness warms every node's
// pod IP pool itself: see kwokcluster.)
var gatewayAPI struct {
	once sync.Once
	err  error
}

// installGatewayAPI installs the Gateway API CRDs once for the suite.
func installGatewayAPI(t *testing.T) {
	t.Helper()
	gatewayAPI.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		start := time.Now()
		gatewayAPI.err = traefik.InstallGatewayAPI(ctx, framework.Client())
		t.Logf("Gateway API CRDs installed in %s", time.Since(start).Round(100*time.Millisecond))
	})
	if gatewayAPI.err != nil {
		t.Fatal(gatewayAPI.err)
	}
}

// env is one story's world: a namespace with its own Traefik (watching
// only that namespace), Gateway, demoapp server, CloneSet, HTTPRoute and
// Rollout, all named name.
type env struct {
	t     *testing.T
	ctx   context.Context
	ns    string
	name  string
	tr    *traefik.Traefik
	cs    *appsv1alpha1.CloneSet
	ro    *rolloutsv1alpha1.Rollout
	route *gatewayv1.HTTPRoute
	web   *webClient
	// timeline is what the namespace went through (see watchTimeline).
	timeline *timeline
	demo     *demoapp.Server
	// backgrounds are the background clients started (startBackground);
	// a measurement pauses them (quiet).
	backgrounds []*background
}

func newEnv(t *testing.T, name string) *env {
	t.Helper()
	framework.RequireManager(t)
	installGatewayAPI(t)
	ctx := context.Background()
	e := &env{t: t, ctx: ctx, ns: framework.Namespace(t), name: name, timeline: &timeline{}}
	start := time.Now()
	e.watchTimeline()
	e.tr = e.startTraefik()
	if err := traefik.CreateGateway(ctx, framework.Client(), e.tr, e.ns, gatewayName); err != nil {
		t.Fatal(err)
	}
	e.startDemoApp()
	e.web = newWebClient(e.tr.WebURL())
	t.Cleanup(func() {
		if t.Failed() {
			e.dump()
			t.Logf("timeline of %s:\n%s", e.ns, e.timeline)
		}
	})
	t.Logf("namespace %s: Traefik (web %s), Gateway %s and demoapp up in %s", e.ns, e.tr.WebURL(), gatewayName, time.Since(start).Round(100*time.Millisecond))
	return e
}

func (e *env) startTraefik() *traefik.Traefik {
	t := e.t
	dir := filepath.Join(framework.WorkDir(), "traefik-"+e.ns)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	// Files at the top of the work dir survive a failed run (the watchdog
	// removes its directories); the access log is copied there on failure.
	logFile, err := os.Create(filepath.Join(framework.WorkDir(), "traefik-"+e.ns+".log"))
	if err != nil {
		t.Fatal(err)
	}
	root, err := framework.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	binDir := os.Getenv("DROVER_BIN_DIR")
	if binDir == "" {
		binDir = filepath.Join(root, "bin")
	}
	tr, err := traefik.Start(e.ctx, traefik.Options{
		BinDir:     binDir,
		Kubeconfig: framework.Cluster().KubeconfigPath(),
		WorkDir:    dir,
		Log:        logFile,
		// The stories run in parallel, each with its own Traefik: each
		// must serve (and write the status of) its own Gateway and routes
		// only. Traefik's other defaults stay, on purpose: among them
		// providersThrottleDuration (2s), so a route's status can say a
		// generation is accepted up to 2s before Traefik routes by it, as
		// a Traefik in a cluster does.
		ExtraArgs: []string{"--providers.kubernetesGateway.namespaces=" + e.ns},
	})
	if err != nil {
		_ = logFile.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("end of Traefik's log (%s):\n%s", logFile.Name(), tr.LogTail())
		}
		if err := tr.Stop(); err != nil {
			t.Errorf("stop traefik: %v", err)
		}
		_ = logFile.Close()
		if t.Failed() {
			access := filepath.Join(framework.WorkDir(), "traefik-"+e.ns+"-access.log")
			if b, err := os.ReadFile(filepath.Join(dir, "traefik-access.log")); err == nil && os.WriteFile(access, b, 0o644) == nil {
				t.Logf("Traefik's access log: %s", access)
			}
		}
	})
	return tr
}

// startDemoApp runs a demoapp server for the namespace until the test ends.
func (e *env) startDemoApp() {
	t := e.t
	logger, _ := ktesting.NewTestContext(t)
	// The /sd endpoint lists the pods for a story's Prometheus.
	srv, err := demoapp.New(framework.Config(), demoapp.Options{Namespace: e.ns, Log: logger, SDAddr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	e.demo = srv
	ctx, cancel := context.WithCancel(e.ctx)
	runErr := make(chan error, 1)
	go func() { runErr <- srv.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-runErr:
			if err != nil {
				t.Errorf("demoapp: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Errorf("demoapp did not stop within 30s")
		}
	})
	select {
	case <-srv.Ready():
	case err := <-runErr:
		t.Fatalf("demoapp: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("demoapp not ready after 30s")
	}
}

// createRelease creates the CloneSet (replicas pods of demo:v1, updated in
// place), the HTTPRoute on the Gateway sending everything to the stable
// Service, and the Rollout with steps, routing through that HTTPRoute;
// then waits until the Rollout is Healthy with weight 0 verified.
func (e *env) createRelease(steps ...rolloutsv1alpha1.CanaryStep) {
	t := e.t
	e.cs = &appsv1alpha1.CloneSet{
		ObjectMeta: metav1.ObjectMeta{Namespace: e.ns, Name: e.name},
		Spec: appsv1alpha1.CloneSetSpec{
			Replicas: ptr.To[int32](replicas),
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": e.name}},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": e.name}},
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
	e.route = &gatewayv1.HTTPRoute{
		ObjectMeta: metav1.ObjectMeta{Namespace: e.ns, Name: e.name},
		Spec: gatewayv1.HTTPRouteSpec{
			CommonRouteSpec: gatewayv1.CommonRouteSpec{ParentRefs: []gatewayv1.ParentReference{{Name: gatewayName}}},
			Rules: []gatewayv1.HTTPRouteRule{{BackendRefs: []gatewayv1.HTTPBackendRef{{BackendRef: gatewayv1.BackendRef{
				BackendObjectReference: gatewayv1.BackendObjectReference{
					Name: gatewayv1.ObjectName(e.stableService()),
					Port: ptr.To(gatewayv1.PortNumber(podPort)),
				},
			}}}}},
		},
	}
	e.ro = &rolloutsv1alpha1.Rollout{
		ObjectMeta: metav1.ObjectMeta{Namespace: e.ns, Name: e.name},
		Spec: rolloutsv1alpha1.RolloutSpec{
			TargetRef: rolloutsv1alpha1.TargetRef{APIVersion: appsv1alpha1.GroupVersion.String(), Kind: "CloneSet", Name: e.name},
			Strategy: rolloutsv1alpha1.RolloutStrategy{Canary: &rolloutsv1alpha1.CanaryStrategy{
				Steps: steps,
				TrafficRouting: &rolloutsv1alpha1.TrafficRouting{GatewayAPI: &rolloutsv1alpha1.GatewayAPIRouting{
					HTTPRoutes: []rolloutsv1alpha1.RouteRef{{Name: e.name}},
				}},
			}},
		},
	}
	start := time.Now()
	for _, o := range []client.Object{e.cs, e.route, e.ro} {
		framework.Create(t, o)
	}
	var rev string
	e.waitRollout("Healthy on the first revision with weight 0 verified", func(ro *rolloutsv1alpha1.Rollout, cs *appsv1alpha1.CloneSet) error {
		rev = cs.Status.UpdateRevision
		if err := healthy(ro, rev); err != nil {
			return err
		}
		return e.podsOn(rev, imageV1, replicas)
	})
	e.logf("rollout %s Healthy on revision %s after %s", e.name, rev, time.Since(start).Round(100*time.Millisecond))
	e.waitPodsServed()
}

// waitPodsServed waits until this test's demoapp server answers on every
// pod's address as that pod. The harness gives every kwok cluster the same
// loopback pod CIDRs, so another e2e run on the machine may hold a pod's
// address: its pod would then get no traffic from the Services (503s) or
// answer in its place.
func (e *env) waitPodsServed() {
	e.t.Helper()
	e.servedPods(replicas)
}

// servedPods waits until the demoapp serves n pods and answers on each
// of the env's pods' addresses as that pod.
func (e *env) servedPods(n int) {
	e.t.Helper()
	hc := &http.Client{Timeout: 5 * time.Second}
	defer hc.CloseIdleConnections()
	err := framework.Poll(e.ctx, trafficTimeout, func() error {
		if st := e.demo.Stats(); st.PendingBinds != 0 || st.Pods != n {
			return fmt.Errorf("demoapp serves %d pods, %d addresses wait to be bound (held by another process?)", st.Pods, st.PendingBinds)
		}
		pods, err := e.pods()
		if err != nil {
			return err
		}
		for _, p := range pods {
			url := fmt.Sprintf("http://%s:%d/", p.Status.PodIP, podPort)
			resp, err := hc.Get(url)
			if err != nil {
				return fmt.Errorf("pod %s: %w", p.Name, err)
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			_ = resp.Body.Close()
			if got := resp.Header.Get(demoapp.HeaderPod); got != p.Name {
				return fmt.Errorf("%s answered as pod %q, want %s: another process serves the address", url, got, p.Name)
			}
		}
		return nil
	})
	if err != nil {
		e.t.Fatalf("pods' addresses: %v", err)
	}
}

// logf logs with the wall-clock time, to compare with the manager's log
// and the Rollout's events.
func (e *env) logf(format string, args ...any) {
	e.t.Helper()
	e.timeline.add("test: "+format, args...)
	e.t.Logf("%s "+format, append([]any{time.Now().Format("15:04:05.000")}, args...)...)
}

func (e *env) stableService() string { return e.name + "-stable" }
func (e *env) canaryService() string { return e.name + "-canary" }

func setWeight(w int32) rolloutsv1alpha1.CanaryStep {
	return rolloutsv1alpha1.CanaryStep{SetWeight: ptr.To(w)}
}

func pauseUntilPromoted() rolloutsv1alpha1.CanaryStep {
	return rolloutsv1alpha1.CanaryStep{Pause: &rolloutsv1alpha1.PauseStep{}}
}

// healthy says why the Rollout is not Healthy on revision rev with no
// release under way and weight 0 verified; nil if it is.
func healthy(ro *rolloutsv1alpha1.Rollout, rev string) error {
	st := ro.Status
	if st.ObservedGeneration != ro.Generation || st.Phase != rolloutsv1alpha1.RolloutPhaseHealthy ||
		st.StableRevision != rev || st.CanaryRevision != "" || ptr.Deref(st.VerifiedWeight, -1) != 0 ||
		st.StableReadyReplicas != replicas {
		return fmt.Errorf("want Healthy on %s with weight 0 verified and %d stable pods ready; %s", rev, replicas, summary(ro))
	}
	return nil
}

// paused says why the Rollout is not paused at step on revision rev with
// weight verified and canary canary pods ready, its last action handled;
// nil if it is.
func paused(ro *rolloutsv1alpha1.Rollout, step, weight, canary int32, rev string) error {
	st := ro.Status
	if st.ObservedGeneration != ro.Generation || st.Phase != rolloutsv1alpha1.RolloutPhasePaused ||
		ptr.Deref(st.CurrentStepIndex, -1) != step || st.CanaryRevision != rev ||
		st.DesiredWeight != weight || ptr.Deref(st.VerifiedWeight, -1) != weight ||
		st.CanaryReadyReplicas != canary || st.StableReadyReplicas != replicas-canary ||
		ro.Annotations[rolloutsv1alpha1.AnnotationAction] != "" {
		return fmt.Errorf("want Paused at step %d on %s, weight %d verified, %d canary pods ready, no pending action; %s",
			step, rev, weight, canary, summary(ro))
	}
	return nil
}

// summary is the Rollout's state in one line.
func summary(ro *rolloutsv1alpha1.Rollout) string {
	st := ro.Status
	verified := "nil"
	if st.VerifiedWeight != nil {
		verified = fmt.Sprint(*st.VerifiedWeight)
	}
	step := "nil"
	if st.CurrentStepIndex != nil {
		step = fmt.Sprint(*st.CurrentStepIndex)
	}
	return fmt.Sprintf("phase %q step %s stable %q canary %q aborted %q weight desired %d verified %s, pods canary %d/%d stable %d/%d, generation %d/%d, action %q, message %q",
		st.Phase, step, st.StableRevision, st.CanaryRevision, st.AbortedRevision, st.DesiredWeight, verified,
		st.CanaryReadyReplicas, st.CanaryReplicas, st.StableReadyReplicas, st.StableReplicas,
		st.ObservedGeneration, ro.Generation, ro.Annotations[rolloutsv1alpha1.AnnotationAction], st.Message)
}

// waitRollout polls the Rollout and its CloneSet (caught up with its
// spec) until ok accepts them, and fails the test with ok's last error
// after rolloutTimeout.
func (e *env) waitRollout(what string, ok func(*rolloutsv1alpha1.Rollout, *appsv1alpha1.CloneSet) error) *rolloutsv1alpha1.Rollout {
	e.t.Helper()
	var ro *rolloutsv1alpha1.Rollout
	err := framework.Poll(e.ctx, rolloutTimeout, func() error {
		ro = &rolloutsv1alpha1.Rollout{}
		if err := framework.Client().Get(e.ctx, client.ObjectKeyFromObject(e.ro), ro); err != nil {
			return err
		}
		cs := &appsv1alpha1.CloneSet{}
		if err := framework.Client().Get(e.ctx, client.ObjectKeyFromObject(e.cs), cs); err != nil {
			return err
		}
		if cs.Status.ObservedGeneration != cs.Generation {
			return fmt.Errorf("CloneSet %s has not observed generation %d yet", cs.Name, cs.Generation)
		}
		return ok(ro, cs)
	})
	if err != nil {
		e.t.Fatalf("waiting for rollout %s to be %s: %v", e.name, what, err)
	}
	return ro
}

// action asks the Rollout to carry out an action.
func (e *env) action(a rolloutsv1alpha1.Action) {
	e.t.Helper()
	patch := fmt.Sprintf(`{"metadata":{"annotations":{%q:%q}}}`, rolloutsv1alpha1.AnnotationAction, a)
	ro := &rolloutsv1alpha1.Rollout{ObjectMeta: metav1.ObjectMeta{Namespace: e.ns, Name: e.name}}
	if err := framework.Client().Patch(e.ctx, ro, client.RawPatch(types.MergePatchType, []byte(patch))); err != nil {
		e.t.Fatalf("annotate rollout %s with %s: %v", e.name, a, err)
	}
	e.logf("rollout %s: action %s", e.name, a)
}

// setImage changes the CloneSet's image and returns the revision it makes.
func (e *env) setImage(image string) string {
	e.t.Helper()
	framework.Modify(e.t, e.cs, func(cs *appsv1alpha1.CloneSet) { cs.Spec.Template.Spec.Containers[0].Image = image })
	var rev string
	e.waitRollout("aware of the new revision", func(_ *rolloutsv1alpha1.Rollout, cs *appsv1alpha1.CloneSet) error {
		if cs.Spec.Template.Spec.Containers[0].Image != image || cs.Status.UpdateRevision == cs.Status.CurrentRevision {
			return fmt.Errorf("CloneSet update revision %q, current %q", cs.Status.UpdateRevision, cs.Status.CurrentRevision)
		}
		rev = cs.Status.UpdateRevision
		return nil
	})
	e.logf("CloneSet %s: image %s is revision %s", e.name, image, rev)
	return rev
}

// pods returns the CloneSet's pods that are not terminating, by name.
func (e *env) pods() ([]corev1.Pod, error) {
	var list corev1.PodList
	if err := framework.Client().List(e.ctx, &list, client.InNamespace(e.ns), client.MatchingLabels{"app": e.name}); err != nil {
		return nil, err
	}
	var out []corev1.Pod
	for _, p := range list.Items {
		if p.DeletionTimestamp == nil {
			out = append(out, p)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// podsOn says why not exactly n of the CloneSet's pods run image on
// revision rev, ready, and the others are ready too; nil if so.
func (e *env) podsOn(rev, image string, n int) error {
	pods, err := e.pods()
	if err != nil {
		return err
	}
	on, ready := 0, 0
	for _, p := range pods {
		if podstate.IsReady(&p) {
			ready++
		}
		if p.Labels[revision.LabelRevisionHash] == rev && framework.ContainerStatus(&p, "app").Image == image && podstate.IsReady(&p) {
			on++
		}
	}
	if len(pods) != replicas || ready != replicas || on != n {
		return fmt.Errorf("want %d pods, all ready, %d of them ready on %s with %s; pods: %s", replicas, n, rev, image, describePods(pods))
	}
	return nil
}

func describePods(pods []corev1.Pod) string {
	var b strings.Builder
	for _, p := range pods {
		fmt.Fprintf(&b, "\n  %s uid %s ip %s rev %s image %s (spec %s) ready %t restarts %d",
			p.Name, p.UID, p.Status.PodIP, p.Labels[revision.LabelRevisionHash], framework.ContainerStatus(&p, "app").Image,
			p.Spec.Containers[0].Image, podstate.IsReady(&p), framework.ContainerStatus(&p, "app").RestartCount)
	}
	return b.String()
}

// describePodsInDetail adds, for every pod that is not ready, its
// conditions and in-place update state.
func describePodsInDetail(pods []corev1.Pod) string {
	var b strings.Builder
	b.WriteString(describePods(pods))
	for _, p := range pods {
		if podstate.IsReady(&p) {
			continue
		}
		fmt.Fprintf(&b, "\n  %s is not ready: in-place state %s", p.Name, p.Annotations[appsv1alpha1.AnnotationInPlaceUpdateState])
		for _, c := range p.Status.Conditions {
			fmt.Fprintf(&b, "\n    %s=%s %s %s (since %s)", c.Type, c.Status, c.Reason, c.Message, c.LastTransitionTime.Format("15:04:05"))
		}
		cs := framework.ContainerStatus(&p, "app")
		fmt.Fprintf(&b, "\n    container ready %t started %v image %s imageID %s state %+v", cs.Ready, ptr.Deref(cs.Started, false), cs.Image, cs.ImageID, cs.State)
	}
	return b.String()
}

// podUIDs returns the CloneSet's pods' UIDs by name.
func (e *env) podUIDs() map[string]string {
	e.t.Helper()
	pods, err := e.pods()
	if err != nil {
		e.t.Fatal(err)
	}
	return framework.UIDs(pods)
}

// assertSamePods fails the test unless the CloneSet runs exactly the pods
// of want (name and UID).
func (e *env) assertSamePods(want map[string]string, when string) {
	e.t.Helper()
	got := e.podUIDs()
	if len(got) != len(want) {
		e.t.Errorf("%s: pods %v, want the same %d pods %v", when, got, len(want), want)
		return
	}
	for name, uid := range want {
		if got[name] != uid {
			e.t.Errorf("%s: pod %s has uid %q, want %q (recreated?)", when, name, got[name], uid)
		}
	}
}

// podHistory watches the namespace's pods: any pod created or deleted
// after the watch started is a violation (every update is in place), and
// it keeps the largest number of pods seen at once on a revision other
// than the stable one.
type podHistory struct {
	*framework.PodRecorder
	stable    string
	maxCanary int
}

func (e *env) recordPods(stable string) *podHistory {
	h := &podHistory{stable: stable}
	h.PodRecorder = framework.RecordPods(e.t, e.ns, func(ev framework.PodEvent, pods map[string]*corev1.Pod) error {
		n := 0
		for _, p := range pods {
			if p.Labels["app"] == e.name && p.Labels[revision.LabelRevisionHash] != h.stable {
				n++
			}
		}
		h.maxCanary = max(h.maxCanary, n)
		switch ev.Type {
		case watch.Added:
			return fmt.Errorf("pod %s created (uid %s)", ev.Pod.Name, ev.Pod.UID)
		case watch.Deleted:
			return fmt.Errorf("pod %s deleted (uid %s)", ev.Pod.Name, ev.Pod.UID)
		}
		return nil
	})
	return h
}

// takeMaxCanary returns the largest number of pods seen at once off the
// stable revision since the last call, and starts counting again.
func (h *podHistory) takeMaxCanary() int {
	var n int
	h.Locked(func() { n, h.maxCanary = h.maxCanary, 0 })
	return n
}

// serviceSelects fails the test unless the Service selects revision rev.
func (e *env) serviceSelects(name, rev string) {
	e.t.Helper()
	var svc corev1.Service
	if err := framework.Client().Get(e.ctx, client.ObjectKey{Namespace: e.ns, Name: name}, &svc); err != nil {
		e.t.Fatal(err)
	}
	if got := svc.Spec.Selector[revision.LabelRevisionHash]; got != rev || svc.Spec.Selector["app"] != e.name {
		e.t.Errorf("service %s selects %v, want app=%s and %s=%s", name, svc.Spec.Selector, e.name, revision.LabelRevisionHash, rev)
	}
}

// dump logs what a failure needs: the Rollout, the CloneSet, the pods, the
// Services, the route, the Rollout's events and the manager's log lines
// about the namespace.
func (e *env) dump() {
	t, c, ctx := e.t, framework.Client(), context.Background()
	if e.ro != nil {
		ro := &rolloutsv1alpha1.Rollout{}
		if err := c.Get(ctx, client.ObjectKeyFromObject(e.ro), ro); err == nil {
			t.Logf("dump: rollout %s: %s", ro.Name, summary(ro))
			for _, cond := range ro.Status.Conditions {
				t.Logf("dump:   condition %s=%s reason %s: %s", cond.Type, cond.Status, cond.Reason, cond.Message)
			}
		}
	}
	if e.cs != nil {
		cs := &appsv1alpha1.CloneSet{}
		if err := c.Get(ctx, client.ObjectKeyFromObject(e.cs), cs); err == nil {
			st := cs.Status
			t.Logf("dump: cloneset %s: generation %d/%d replicas %d ready %d updated %d updatedReady %d current %s update %s; annotations %v",
				cs.Name, st.ObservedGeneration, cs.Generation, st.Replicas, st.ReadyReplicas, st.UpdatedReplicas, st.UpdatedReadyReplicas,
				st.CurrentRevision, st.UpdateRevision, cs.Annotations)
		}
	}
	if pods, err := e.pods(); err == nil {
		t.Logf("dump: pods:%s", describePodsInDetail(pods))
	}
	for _, name := range []string{e.stableService(), e.canaryService()} {
		var svc corev1.Service
		if err := c.Get(ctx, client.ObjectKey{Namespace: e.ns, Name: name}, &svc); err == nil {
			t.Logf("dump: service %s clusterIP %s selector %v", name, svc.Spec.ClusterIP, svc.Spec.Selector)
		} else {
			t.Logf("dump: service %s: %v", name, err)
		}
	}
	if e.route != nil {
		var hr gatewayv1.HTTPRoute
		if err := c.Get(ctx, client.ObjectKeyFromObject(e.route), &hr); err == nil {
			for i, r := range hr.Spec.Rules {
				for _, b := range r.BackendRefs {
					t.Logf("dump: route %s generation %d rule %d backend %s weight %d", hr.Name, hr.Generation, i, b.Name, ptr.Deref(b.Weight, 1))
				}
			}
			for _, p := range hr.Status.Parents {
				for _, cond := range p.Conditions {
					t.Logf("dump: route %s parent %s: %s=%s gen %d %s", hr.Name, p.ParentRef.Name, cond.Type, cond.Status, cond.ObservedGeneration, cond.Message)
				}
			}
		}
	}
	var events corev1.EventList
	if err := c.List(ctx, &events, client.InNamespace(e.ns)); err == nil {
		sort.Slice(events.Items, func(i, j int) bool {
			return eventTime(&events.Items[i]).Before(eventTime(&events.Items[j]))
		})
		for _, ev := range events.Items {
			if ev.InvolvedObject.Kind == "Rollout" {
				t.Logf("dump: event %s %s %s: %s", eventTime(&ev).Format("15:04:05.000"), ev.Type, ev.Reason, ev.Message)
			}
		}
	}
	if lines := managerLines(e.ns, 60); len(lines) > 0 {
		t.Logf("dump: last manager log lines about %s (%s):\n%s", e.ns, framework.Manager().LogPath(), strings.Join(lines, "\n"))
	}
}

func eventTime(ev *corev1.Event) time.Time {
	switch {
	case !ev.EventTime.IsZero():
		return ev.EventTime.Time
	case !ev.LastTimestamp.IsZero():
		return ev.LastTimestamp.Time
	}
	return ev.CreationTimestamp.Time
}

// managerLines returns the last n lines of the manager's log that mention
// s.
func managerLines(s string, n int) []string {
	f, err := os.Open(framework.Manager().LogPath())
	if err != nil {
		return nil
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if strings.Contains(sc.Text(), s) {
			out = append(out, sc.Text())
			if len(out) > n {
				out = out[1:]
			}
		}
	}
	return out
}

// webClient sends requests through Traefik's web entry point.
type webClient struct {
	url string
	hc  *http.Client
}

func newWebClient(url string) *webClient {
	return &webClient{url: url + "/", hc: &http.Client{
		Transport: &http.Transport{MaxIdleConnsPerHost: 4},
		Timeout:   10 * time.Second,
	}}
}

// get sends one request and returns the answering version; a transport
// error and an answer that is not 2xx are errors.
func (w *webClient) get(ctx context.Context) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, w.url, nil)
	if err != nil {
		return "", err
	}
	resp, err := w.hc.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", fmt.Errorf("%s: reading the body: %w", resp.Status, err)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return "", fmt.Errorf("%s: %q", resp.Status, truncate(string(body), 200))
	}
	var r demoapp.Response
	if err := json.Unmarshal(body, &r); err != nil {
		return "", fmt.Errorf("%s: body %q: %w", resp.Status, truncate(string(body), 200), err)
	}
	if v := resp.Header.Get(demoapp.HeaderVersion); v != r.Version || v == "" {
		return "", fmt.Errorf("%s: header %s %q, body version %q", resp.Status, demoapp.HeaderVersion, v, r.Version)
	}
	return r.Version, nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

// tally counts answers by version, and errors.
type tally struct {
	total    int
	versions map[string]int
	errors   int
	samples  []string // the first few errors
	// lastError is when the last error was seen.
	lastError time.Time
}

func (t *tally) add(version string, err error) {
	if t.versions == nil {
		t.versions = map[string]int{}
	}
	t.total++
	if err != nil {
		t.errors++
		t.lastError = time.Now()
		if len(t.samples) < 5 {
			t.samples = append(t.samples, time.Now().Format("15:04:05.000")+" "+err.Error())
		}
		return
	}
	t.versions[version]++
}

func (t *tally) String() string {
	keys := make([]string, 0, len(t.versions))
	for k := range t.versions {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := []string{fmt.Sprintf("%d requests", t.total)}
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s %d (%.1f%%)", k, t.versions[k], 100*float64(t.versions[k])/float64(max(1, t.total))))
	}
	parts = append(parts, fmt.Sprintf("errors %d", t.errors))
	s := strings.Join(parts, ", ")
	if len(t.samples) > 0 {
		s += "; first errors: " + strings.Join(t.samples, "; ")
	}
	return s
}

// send sends n requests one after another.
func (w *webClient) send(ctx context.Context, n int) *tally {
	t := &tally{}
	for range n {
		t.add(w.get(ctx))
	}
	return t
}

// waitShare sends batches of probeBatch requests until a batch has no
// error and only v1 and v2 answers, v2 within probeTolerance of weight% of
// the batch: the route's weight took effect in Traefik.
func (e *env) waitShare(weight int) {
	e.t.Helper()
	want := probeBatch * weight / 100
	start := time.Now()
	batches := 0
	err := framework.Poll(e.ctx, trafficTimeout, func() error {
		batches++
		b := e.web.send(e.ctx, probeBatch)
		if b.errors > 0 || b.versions["v1"]+b.versions["v2"] != probeBatch || abs(b.versions["v2"]-want) > probeTolerance {
			return fmt.Errorf("batch of %d: %s; want v2 %d±%d", probeBatch, b, want, probeTolerance)
		}
		return nil
	})
	if err != nil {
		e.t.Fatalf("waiting for weight %d%% to take effect in Traefik: %v", weight, err)
	}
	e.logf("weight %d%% serving after %d batch(es) of %d (%s)", weight, batches, probeBatch, time.Since(start).Round(10*time.Millisecond))
}

// measure sends measured requests and checks that none failed, all were
// answered by v1 or v2, and v2's count is weight% of them ± tolerance.
func (e *env) measure(weight, tolerance int) *tally {
	e.t.Helper()
	e.waitPodsServed() // direct requests: Traefik's round robin is not moved
	defer e.quiet()()
	start := time.Now()
	got := e.web.send(e.ctx, measured)
	e.logf("weight %d%%: %s (in %s)", weight, got, time.Since(start).Round(10*time.Millisecond))
	want := measured * weight / 100
	if got.errors != 0 {
		e.t.Errorf("weight %d%%: %d of %d requests failed: %s", weight, got.errors, measured, got)
	}
	for v, n := range got.versions {
		if v != "v1" && v != "v2" {
			e.t.Errorf("weight %d%%: %d answers from version %q", weight, n, v)
		}
	}
	if d := got.versions["v2"] - want; abs(d) > tolerance {
		e.t.Errorf("weight %d%%: v2 answered %d of %d requests, want %d±%d: %s", weight, got.versions["v2"], measured, want, tolerance, got)
	}
	if d := got.versions["v1"] - (measured - want); abs(d) > tolerance {
		e.t.Errorf("weight %d%%: v1 answered %d of %d requests, want %d±%d: %s", weight, got.versions["v1"], measured, measured-want, tolerance, got)
	}
	return got
}

func abs(n int) int {
	if n < 0 {
		return -n
	}
	return n
}

// background is a client sending requests through Traefik, one after
// another with backgroundPace between them, until stopped. It has its own
// connections. Traefik's round robin is shared by every client, so a
// measurement pauses the background clients (quiet): a request of theirs
// in the middle of it would shift the measured share.
type background struct {
	// mu is held while a request is in flight, and by quiet.
	mu       sync.Mutex
	cancel   context.CancelFunc
	done     chan struct{}
	once     sync.Once
	t        *tally
	reported bool // assertNoErrors saw the tally
}

func (e *env) startBackground() *background {
	ctx, cancel := context.WithCancel(e.ctx)
	w := newWebClient(e.tr.WebURL())
	b := &background{cancel: cancel, done: make(chan struct{}), t: &tally{}}
	e.backgrounds = append(e.backgrounds, b)
	go func() {
		defer close(b.done)
		defer w.hc.CloseIdleConnections()
		for {
			b.mu.Lock()
			v, err := w.get(ctx)
			b.mu.Unlock()
			if ctx.Err() != nil {
				return // the request was cut short by stop: not an answer
			}
			b.t.add(v, err)
			if err != nil {
				e.timeline.add("traffic: background request failed: %v", err)
			}
			select {
			case <-ctx.Done():
				return
			case <-time.After(backgroundPace):
			}
		}
	}()
	e.t.Cleanup(func() {
		got := b.stop()
		if !b.reported {
			e.t.Logf("background client stopped by the end of the test: %s", got)
			if got.errors != 0 {
				e.t.Errorf("the background client saw %d failed requests of %d", got.errors, got.total)
			}
		}
	})
	return b
}

// quiet pauses every background client once its request in flight is
// answered, and returns what resumes them.
func (e *env) quiet() (resume func()) {
	for _, b := range e.backgrounds {
		b.mu.Lock()
	}
	return func() {
		for _, b := range e.backgrounds {
			b.mu.Unlock()
		}
	}
}

// stop stops the client and returns what it saw.
func (b *background) stop() *tally {
	b.once.Do(func() {
		b.cancel()
		<-b.done
	})
	return b.t
}

// assertNoErrors stops the client and fails the test if any of its
// requests failed.
func (e *env) assertNoErrors(b *background, during string) *tally {
	e.t.Helper()
	got := b.stop()
	b.reported = true
	e.logf("background client during %s: %s", during, got)
	if got.errors != 0 {
		e.t.Errorf("during %s, %d of %d requests failed: %s", during, got.errors, got.total, got)
	}
	if got.total == 0 {
		e.t.Errorf("during %s the background client sent no request", during)
	}
	return got
}

// ---------------------------------------------------------------------
// Stories on any workload kind and size (stories_test.go,
// workloads_test.go): the helpers above assume a CloneSet of replicas
// pods; these take the kind and the pod count of the story.
// ---------------------------------------------------------------------

// Workload kinds a story releases.
const (
	kindCloneSet    = "CloneSet"
	kindStatefulSet = "StatefulSet"
	kindDaemonSet   = "DaemonSet"
)

const imageV3 = "demo:v3"

// story is a release of a workload of kind with n pods (a DaemonSet: one
// on each of the suite's n nodes), labelled app=<name>, behind the env's
// Traefik.
type story struct {
	*env
	kind string
	n    int
	wl   client.Object
}

// newStory starts an env and creates the workload (n pods of demo:v1,
// updated in place), the HTTPRoute sending everything to the stable
// Service and the Rollout with steps (tweak changes it before it is
// created); then waits until the Rollout is Healthy with weight 0
// verified and every pod answers.
func newStory(t *testing.T, name, kind string, n int, steps []rolloutsv1alpha1.CanaryStep, tweak ...func(*rolloutsv1alpha1.Rollout)) *story {
	t.Helper()
	s := &story{env: newEnv(t, name), kind: kind, n: n}
	e := s.env
	selector := &metav1.LabelSelector{MatchLabels: map[string]string{"app": name}}
	template := corev1.PodTemplateSpec{
		ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": name}},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{
			Name: "app", Image: imageV1,
			Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: podPort}},
		}}},
	}
	half := ptr.To(intstr.FromString("50%"))
	objMeta := metav1.ObjectMeta{Namespace: e.ns, Name: name}
	switch kind {
	case kindCloneSet:
		e.cs = &appsv1alpha1.CloneSet{ObjectMeta: objMeta, Spec: appsv1alpha1.CloneSetSpec{
			Replicas: ptr.To(int32(n)), Selector: selector, Template: template,
			UpdateStrategy: appsv1alpha1.CloneSetUpdateStrategy{
				Type: appsv1alpha1.InPlaceIfPossibleCloneSetUpdateStrategyType, MaxUnavailable: half,
			},
		}}
		s.wl = e.cs
	case kindStatefulSet:
		s.wl = &appsv1alpha1.StatefulSet{ObjectMeta: objMeta, Spec: appsv1alpha1.StatefulSetSpec{
			Replicas: ptr.To(int32(n)), Selector: selector, Template: template,
			PodManagementPolicy: appsv1alpha1.ParallelPodManagement,
			UpdateStrategy: appsv1alpha1.StatefulSetUpdateStrategy{
				Type: appsv1alpha1.RollingUpdateStatefulSetStrategyType,
				RollingUpdate: &appsv1alpha1.RollingUpdateStatefulSetStrategy{
					PodUpdatePolicy: appsv1alpha1.InPlaceIfPossibleStatefulSetPodUpdatePolicy, MaxUnavailable: half,
				},
			},
		}}
	case kindDaemonSet:
		var nodes corev1.NodeList
		if err := framework.Client().List(e.ctx, &nodes); err != nil {
			t.Fatal(err)
		}
		if len(nodes.Items) != n {
			t.Fatalf("a DaemonSet story of %d pods needs %d nodes; the suite has %d", n, n, len(nodes.Items))
		}
		s.wl = &appsv1alpha1.DaemonSet{ObjectMeta: objMeta, Spec: appsv1alpha1.DaemonSetSpec{
			Selector: selector, Template: template,
			UpdateStrategy: appsv1alpha1.DaemonSetUpdateStrategy{
				Type: appsv1alpha1.RollingUpdateDaemonSetStrategyType,
				RollingUpdate: &appsv1alpha1.RollingUpdateDaemonSet{
					Type: appsv1alpha1.InPlaceIfPossibleRollingUpdateType, MaxUnavailable: half,
				},
			},
		}}
	default:
		t.Fatalf("unknown workload kind %q", kind)
	}
	e.route = &gatewayv1.HTTPRoute{
		ObjectMeta: metav1.ObjectMeta{Namespace: e.ns, Name: name},
		Spec: gatewayv1.HTTPRouteSpec{
			CommonRouteSpec: gatewayv1.CommonRouteSpec{ParentRefs: []gatewayv1.ParentReference{{Name: gatewayName}}},
			Rules: []gatewayv1.HTTPRouteRule{{BackendRefs: []gatewayv1.HTTPBackendRef{{BackendRef: gatewayv1.BackendRef{
				BackendObjectReference: gatewayv1.BackendObjectReference{
					Name: gatewayv1.ObjectName(e.stableService()),
					Port: ptr.To(gatewayv1.PortNumber(podPort)),
				},
			}}}}},
		},
	}
	e.ro = &rolloutsv1alpha1.Rollout{
		ObjectMeta: metav1.ObjectMeta{Namespace: e.ns, Name: name},
		Spec: rolloutsv1alpha1.RolloutSpec{
			TargetRef: rolloutsv1alpha1.TargetRef{APIVersion: appsv1alpha1.GroupVersion.String(), Kind: kind, Name: name},
			Strategy: rolloutsv1alpha1.RolloutStrategy{Canary: &rolloutsv1alpha1.CanaryStrategy{
				Steps: steps,
				TrafficRouting: &rolloutsv1alpha1.TrafficRouting{GatewayAPI: &rolloutsv1alpha1.GatewayAPIRouting{
					HTTPRoutes: []rolloutsv1alpha1.RouteRef{{Name: name}},
				}},
			}},
		},
	}
	for _, f := range tweak {
		f(e.ro)
	}
	t.Cleanup(func() {
		if t.Failed() && kind != kindCloneSet {
			if w, err := s.workload(); err == nil {
				t.Logf("dump: %s %s: caught up %t, replicas %d, current %s update %s, counts %+v, annotations %v",
					kind, name, w.CaughtUp, w.Replicas, w.CurrentRevision, w.UpdateRevision, w.Counts, w.Object.GetAnnotations())
			}
		}
	})
	start := time.Now()
	for _, o := range []client.Object{s.wl, e.route, e.ro} {
		framework.Create(t, o)
	}
	var rev string
	s.wait("Healthy on the first revision with weight 0 verified", func(ro *rolloutsv1alpha1.Rollout, w *target.Workload) error {
		rev = w.UpdateRevision
		if err := s.healthy(ro, rev); err != nil {
			return err
		}
		return s.podsOn(rev, imageV1, n)
	})
	e.logf("%s %s with %d pods: rollout Healthy on revision %s after %s", kind, name, n, rev, time.Since(start).Round(100*time.Millisecond))
	s.served()
	// The route's status may say Accepted up to Traefik's throttle (2s)
	// before Traefik routes by it: wait until it serves v1.
	e.waitSplit(0, "v1", "v2")
	return s
}

// workload reads the story's workload as the Rollout does.
func (s *story) workload() (*target.Workload, error) {
	return target.Get(s.ctx, framework.Client(), s.ns, s.ro.Spec.TargetRef)
}

// wait polls the Rollout and its workload (caught up with its spec) until
// ok accepts them, and fails the test with ok's last error after
// rolloutTimeout.
func (s *story) wait(what string, ok func(*rolloutsv1alpha1.Rollout, *target.Workload) error) *rolloutsv1alpha1.Rollout {
	s.t.Helper()
	return s.waitFor(rolloutTimeout, what, ok)
}

func (s *story) waitFor(timeout time.Duration, what string, ok func(*rolloutsv1alpha1.Rollout, *target.Workload) error) *rolloutsv1alpha1.Rollout {
	s.t.Helper()
	var ro *rolloutsv1alpha1.Rollout
	err := framework.Poll(s.ctx, timeout, func() error {
		ro = s.rollout()
		w, err := s.workload()
		if err != nil {
			return err
		}
		if !w.CaughtUp {
			return fmt.Errorf("%s %s has not observed its generation yet", s.kind, s.name)
		}
		return ok(ro, w)
	})
	if err != nil {
		s.t.Fatalf("waiting for rollout %s to be %s: %v", s.name, what, err)
	}
	return ro
}

// rollout reads the Rollout (an empty one if it cannot).
func (e *env) rollout() *rolloutsv1alpha1.Rollout {
	ro := &rolloutsv1alpha1.Rollout{}
	if err := framework.Client().Get(e.ctx, client.ObjectKeyFromObject(e.ro), ro); err != nil {
		e.t.Logf("reading rollout %s: %v", e.ro.Name, err)
	}
	return ro
}

// healthy says why the Rollout is not Healthy on revision rev with no
// release under way, weight 0 verified and the story's n pods ready.
func (s *story) healthy(ro *rolloutsv1alpha1.Rollout, rev string) error {
	st := ro.Status
	if st.ObservedGeneration != ro.Generation || st.Phase != rolloutsv1alpha1.RolloutPhaseHealthy ||
		st.StableRevision != rev || st.CanaryRevision != "" || ptr.Deref(st.VerifiedWeight, -1) != 0 ||
		st.StableReadyReplicas != int32(s.n) || ro.Annotations[rolloutsv1alpha1.AnnotationAction] != "" {
		return fmt.Errorf("want Healthy on %s with weight 0 verified, %d stable pods ready, no pending action; %s", rev, s.n, summary(ro))
	}
	return nil
}

// paused says why the Rollout is not paused at step on revision rev with
// weight verified and canary of the story's n pods ready on it, its last
// action handled.
func (s *story) paused(ro *rolloutsv1alpha1.Rollout, step, weight, canary int32, rev string) error {
	st := ro.Status
	if st.ObservedGeneration != ro.Generation || st.Phase != rolloutsv1alpha1.RolloutPhasePaused ||
		ptr.Deref(st.CurrentStepIndex, -1) != step || st.CanaryRevision != rev ||
		st.DesiredWeight != weight || ptr.Deref(st.VerifiedWeight, -1) != weight ||
		st.CanaryReadyReplicas != canary || st.StableReadyReplicas != int32(s.n)-canary ||
		ro.Annotations[rolloutsv1alpha1.AnnotationAction] != "" {
		return fmt.Errorf("want Paused at step %d on %s, weight %d verified, %d canary pods ready, no pending action; %s",
			step, rev, weight, canary, summary(ro))
	}
	return nil
}

// podsOn says why not exactly k of the story's n pods run image on
// revision rev, ready, with every other pod ready too.
func (s *story) podsOn(rev, image string, k int) error {
	pods, err := s.pods()
	if err != nil {
		return err
	}
	on, ready := 0, 0
	for _, p := range pods {
		if podstate.IsReady(&p) {
			ready++
		}
		if p.Labels[revision.LabelRevisionHash] == rev && framework.ContainerStatus(&p, "app").Image == image && podstate.IsReady(&p) {
			on++
		}
	}
	if len(pods) != s.n || ready != s.n || on != k {
		return fmt.Errorf("want %d pods, all ready, %d of them ready on %s with %s; pods: %s", s.n, k, rev, image, describePods(pods))
	}
	return nil
}

// served waits until the env's demoapp answers on every one of the
// story's pods' addresses as that pod (see waitPodsServed).
func (s *story) served() {
	s.t.Helper()
	s.servedPods(s.n)
}

// setTemplate changes the workload's pod template and returns the
// revision it makes.
func (s *story) setTemplate(what string, f func(*corev1.PodTemplateSpec)) string {
	s.t.Helper()
	w, err := s.workload()
	if err != nil {
		s.t.Fatal(err)
	}
	before := w.UpdateRevision
	switch o := s.wl.(type) {
	case *appsv1alpha1.CloneSet:
		framework.Modify(s.t, o, func(cs *appsv1alpha1.CloneSet) { f(&cs.Spec.Template) })
	case *appsv1alpha1.StatefulSet:
		framework.Modify(s.t, o, func(set *appsv1alpha1.StatefulSet) { f(&set.Spec.Template) })
	case *appsv1alpha1.DaemonSet:
		framework.Modify(s.t, o, func(ds *appsv1alpha1.DaemonSet) { f(&ds.Spec.Template) })
	}
	rev := s.waitRevisionAfter(before)
	s.logf("%s %s: %s is revision %s", s.kind, s.name, what, rev)
	return rev
}

// setImage changes the workload's image and returns the revision it makes.
func (s *story) setImage(image string) string {
	s.t.Helper()
	return s.setTemplate("image "+image, func(t *corev1.PodTemplateSpec) { t.Spec.Containers[0].Image = image })
}

// waitRevisionAfter waits until the workload, caught up with its spec,
// has an update revision other than before, and returns it.
func (s *story) waitRevisionAfter(before string) string {
	s.t.Helper()
	var rev string
	s.wait("aware of the new revision", func(_ *rolloutsv1alpha1.Rollout, w *target.Workload) error {
		if w.UpdateRevision == before {
			return fmt.Errorf("%s update revision still %s", s.kind, before)
		}
		rev = w.UpdateRevision
		return nil
	})
	return rev
}

// waitSplit sends batches of probeBatch requests until a batch has no
// error, only stable and canary answers, and canary within probeTolerance
// of weight% of the batch: the route's weight took effect in Traefik.
func (e *env) waitSplit(weight int, stable, canary string) {
	e.t.Helper()
	e.waitSplitVia(e.web, weight, stable, canary)
}

func (e *env) waitSplitVia(w *webClient, weight int, stable, canary string) {
	e.t.Helper()
	want := probeBatch * weight / 100
	start := time.Now()
	batches := 0
	err := framework.Poll(e.ctx, trafficTimeout, func() error {
		batches++
		b := w.send(e.ctx, probeBatch)
		if b.errors > 0 || b.versions[stable]+b.versions[canary] != probeBatch || abs(b.versions[canary]-want) > probeTolerance {
			return fmt.Errorf("batch of %d: %s; want %s %d±%d, the rest %s", probeBatch, b, canary, want, probeTolerance, stable)
		}
		return nil
	})
	if err != nil {
		e.t.Fatalf("waiting for %s %d%% / %s to take effect in Traefik: %v", canary, weight, stable, err)
	}
	e.logf("%s %d%% / %s serving after %d batch(es) of %d (%s)", canary, weight, stable, batches, probeBatch, time.Since(start).Round(10*time.Millisecond))
}

// measureSplit sends measured requests and checks that none failed, all
// were answered by stable or canary, and canary's count is weight% of
// them ± tolerance.
func (s *story) measureSplit(weight, tolerance int, stable, canary string) *tally {
	s.t.Helper()
	s.served() // direct requests: Traefik's round robin is not moved
	defer s.quiet()()
	start := time.Now()
	got := s.web.send(s.ctx, measured)
	s.logf("%s %d%% / %s: %s (in %s)", canary, weight, stable, got, time.Since(start).Round(10*time.Millisecond))
	want := measured * weight / 100
	if got.errors != 0 {
		s.t.Errorf("%s %d%%: %d of %d requests failed: %s", canary, weight, got.errors, measured, got)
	}
	for v, n := range got.versions {
		if v != stable && v != canary {
			s.t.Errorf("%s %d%%: %d answers from version %q", canary, weight, n, v)
		}
	}
	if d := got.versions[canary] - want; abs(d) > tolerance {
		s.t.Errorf("%s %d%%: %s answered %d of %d requests, want %d±%d: %s", canary, weight, canary, got.versions[canary], measured, want, tolerance, got)
	}
	if d := got.versions[stable] - (measured - want); abs(d) > tolerance {
		s.t.Errorf("%s %d%%: %s answered %d of %d requests, want %d±%d: %s", canary, weight, stable, got.versions[stable], measured, measured-want, tolerance, got)
	}
	return got
}

// expectAll sends n requests through w and fails the test unless every
// one was answered by version.
func (e *env) expectAll(w *webClient, n int, version, what string) {
	e.t.Helper()
	got := w.send(e.ctx, n)
	e.logf("%s: %s", what, got)
	if got.errors != 0 || got.versions[version] != n {
		e.t.Errorf("%s: want all %d requests answered by %s: %s", what, n, version, got)
	}
}

// webWithHeader is a client like e.web whose requests carry the header.
func (e *env) webWithHeader(name, value string) *webClient {
	w := newWebClient(e.tr.WebURL())
	w.hc.Transport = headerTransport{next: w.hc.Transport, name: name, value: value}
	e.t.Cleanup(w.hc.CloseIdleConnections)
	return w
}

type headerTransport struct {
	next        http.RoundTripper
	name, value string
}

func (h headerTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set(h.name, h.value)
	return h.next.RoundTrip(r)
}

// setPaused sets the Rollout's spec.paused.
func (e *env) setPaused(p bool) {
	e.t.Helper()
	framework.Modify(e.t, e.ro, func(ro *rolloutsv1alpha1.Rollout) { ro.Spec.Paused = p })
	e.logf("rollout %s: spec.paused=%t", e.name, p)
}

// httpRoute reads the story's HTTPRoute.
func (e *env) httpRoute() *gatewayv1.HTTPRoute {
	e.t.Helper()
	return framework.Get(e.t, e.route)
}

// ruleNames are the names of the route's rules ("" for unnamed ones).
func ruleNames(hr *gatewayv1.HTTPRoute) []string {
	out := make([]string, len(hr.Spec.Rules))
	for i, r := range hr.Spec.Rules {
		out[i] = string(ptr.Deref(r.Name, ""))
	}
	return out
}

// rolloutEvents returns the Rollout's events, oldest first.
func (e *env) rolloutEvents() []corev1.Event {
	e.t.Helper()
	var list corev1.EventList
	if err := framework.Client().List(e.ctx, &list, client.InNamespace(e.ns)); err != nil {
		e.t.Fatal(err)
	}
	var out []corev1.Event
	for _, ev := range list.Items {
		if ev.InvolvedObject.Kind == "Rollout" && ev.InvolvedObject.Name == e.name {
			out = append(out, ev)
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return eventTime(&out[i]).Before(eventTime(&out[j])) })
	return out
}

// countEvents counts the Rollout's events of reason.
func (e *env) countEvents(reason string) int {
	e.t.Helper()
	n := 0
	for _, ev := range e.rolloutEvents() {
		if ev.Reason == reason {
			n++
		}
	}
	return n
}

// rolloutHistory is every status of the Rollout a watch saw, in order.
type rolloutHistory struct {
	mu   sync.Mutex
	seen []rolloutsv1alpha1.RolloutStatus
	at   []time.Time // when each status was seen
}

// recordRollout watches the Rollout until the test ends.
func (e *env) recordRollout() *rolloutHistory {
	e.t.Helper()
	h := &rolloutHistory{}
	e.watchUntilEnd(&rolloutsv1alpha1.RolloutList{}, func(ev watch.Event) {
		if ro, ok := ev.Object.(*rolloutsv1alpha1.Rollout); ok && ro.Name == e.name {
			h.mu.Lock()
			h.seen = append(h.seen, *ro.Status.DeepCopy())
			h.at = append(h.at, time.Now())
			h.mu.Unlock()
		}
	})
	return h
}

// watchUntilEnd watches the objects of list's kind in the env's
// namespace until the test ends, handing on every event (errors and
// bookmarks included) in order, from one goroutine.
func (e *env) watchUntilEnd(list client.ObjectList, on func(watch.Event)) {
	t := e.t
	t.Helper()
	wc, err := client.NewWithWatch(framework.Config(), client.Options{Scheme: framework.Scheme()})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(e.ctx)
	w, err := wc.Watch(ctx, list, client.InNamespace(e.ns))
	if err != nil {
		cancel()
		t.Fatalf("watch %T: %v", list, err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ev := range w.ResultChan() {
			on(ev)
		}
	}()
	t.Cleanup(func() { cancel(); w.Stop(); <-done })
}

// firstSeen is when the first status satisfying f was seen (zero if
// none was).
func (h *rolloutHistory) firstSeen(f func(*rolloutsv1alpha1.RolloutStatus) bool) time.Time {
	h.mu.Lock()
	defer h.mu.Unlock()
	for i := range h.seen {
		if f(&h.seen[i]) {
			return h.at[i]
		}
	}
	return time.Time{}
}

// any reports whether a status seen so far satisfies f.
func (h *rolloutHistory) any(f func(*rolloutsv1alpha1.RolloutStatus) bool) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	for i := range h.seen {
		if f(&h.seen[i]) {
			return true
		}
	}
	return false
}

// steps lists the (revision, step index) pairs seen, consecutive repeats
// collapsed, for failure messages.
func (h *rolloutHistory) steps() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []string
	for _, st := range h.seen {
		s := fmt.Sprintf("%s/%s@%d", st.Phase, st.CanaryRevision, ptr.Deref(st.CurrentStepIndex, -1))
		if len(out) == 0 || out[len(out)-1] != s {
			out = append(out, s)
		}
	}
	return strings.Join(out, " → ")
}

// waitEvent waits (events are sent asynchronously) until the Rollout has
// an event of reason whose message contains substr.
func (e *env) waitEvent(reason, substr string) {
	e.t.Helper()
	err := framework.Poll(e.ctx, 10*time.Second, func() error {
		for _, ev := range e.rolloutEvents() {
			if ev.Reason == reason && strings.Contains(ev.Message, substr) {
				return nil
			}
		}
		return fmt.Errorf("no %s event with %q", reason, substr)
	})
	if err != nil {
		e.t.Error(err)
	}
}

package rollout_test

import (
	"fmt"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	rolloutsv1alpha1 "github.com/drover-dev/drover/api/rollouts/v1alpha1"
	"github.com/drover-dev/drover/internal/podstate"
	"github.com/drover-dev/drover/internal/revision"
	"github.com/drover-dev/drover/test/e2e/framework"
)

// timeline records, with wall-clock times, every change of the Rollout's
// status, the HTTPRoute's weights and status, and the pods' revision and
// readiness, as watches see them, plus what the test does. A failing test
// prints it: the order of a weight change, its verification and the pods'
// moves is what a traffic failure needs explaining with.
type timeline struct {
	mu      sync.Mutex
	entries []string
}

// maxTimeline bounds the entries kept (the first ones are dropped).
const maxTimeline = 400

func (tl *timeline) add(format string, args ...any) {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	tl.entries = append(tl.entries, time.Now().Format("15:04:05.000")+" "+fmt.Sprintf(format, args...))
	if len(tl.entries) > maxTimeline {
		tl.entries = tl.entries[len(tl.entries)-maxTimeline:]
	}
}

func (tl *timeline) String() string {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	return strings.Join(tl.entries, "\n")
}

// watchTimeline starts the namespace's watches until the test ends.
func (e *env) watchTimeline() {
	start := func(list client.ObjectList, describe func(obj any) (key, state string)) {
		last := map[string]string{}
		e.watchUntilEnd(list, func(ev watch.Event) {
			if ev.Type == watch.Error || ev.Type == watch.Bookmark {
				return
			}
			key, state := describe(ev.Object)
			if ev.Type == watch.Deleted {
				state = "deleted"
			}
			if key == "" || last[key] == state {
				return
			}
			last[key] = state
			e.timeline.add("%s: %s", key, state)
		})
	}
	start(&rolloutsv1alpha1.RolloutList{}, func(obj any) (string, string) {
		ro, ok := obj.(*rolloutsv1alpha1.Rollout)
		if !ok {
			return "", ""
		}
		return "rollout " + ro.Name, summary(ro)
	})
	start(&gatewayv1.HTTPRouteList{}, func(obj any) (string, string) {
		hr, ok := obj.(*gatewayv1.HTTPRoute)
		if !ok {
			return "", ""
		}
		var b strings.Builder
		fmt.Fprintf(&b, "generation %d, backends", hr.Generation)
		for _, r := range hr.Spec.Rules {
			for _, ref := range r.BackendRefs {
				fmt.Fprintf(&b, " %s=%d", ref.Name, ptr.Deref(ref.Weight, 1))
			}
		}
		for _, p := range hr.Status.Parents {
			for _, typ := range []string{string(gatewayv1.RouteConditionAccepted), string(gatewayv1.RouteConditionResolvedRefs)} {
				if c := meta.FindStatusCondition(p.Conditions, typ); c != nil {
					fmt.Fprintf(&b, "; %s %s=%s for generation %d", p.ParentRef.Name, typ, c.Status, c.ObservedGeneration)
				}
			}
		}
		return "route " + hr.Name, b.String()
	})
	start(&corev1.PodList{}, func(obj any) (string, string) {
		p, ok := obj.(*corev1.Pod)
		if !ok || p.Labels["app"] != e.name {
			return "", ""
		}
		return "pod " + p.Name, fmt.Sprintf("rev %s, image %s (spec %s), ready %t",
			p.Labels[revision.LabelRevisionHash], framework.ContainerStatus(p, "app").Image, p.Spec.Containers[0].Image, podstate.IsReady(p))
	})
	start(&corev1.ServiceList{}, func(obj any) (string, string) {
		s, ok := obj.(*corev1.Service)
		if !ok {
			return "", ""
		}
		return "service " + s.Name, fmt.Sprintf("selects %s", s.Spec.Selector[revision.LabelRevisionHash])
	})
}

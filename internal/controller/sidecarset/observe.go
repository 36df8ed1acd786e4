package sidecarset

import (
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/controller-runtime/pkg/client"

	appsv1alpha1 "github.com/drover-dev/drover/api/apps/v1alpha1"
	"github.com/drover-dev/drover/internal/expectations"
	"github.com/drover-dev/drover/internal/inplace"
	"github.com/drover-dev/drover/internal/podcontrol"
	"github.com/drover-dev/drover/internal/podstate"
	"github.com/drover-dev/drover/internal/webhook/injection"
)

// observed is what the caches show of a SidecarSet's pods. Pods are the
// cache's own objects: read only.
type observed struct {
	rev injection.Revisions
	// views are the matched pods: injected by this SidecarSet, still
	// selected by it, active (not terminating, not finished).
	views  []*podView
	byName map[string]*corev1.Pod // every recorded pod, by namespace/name
	// blocked counts matched pods that were injected with a revision that
	// differs in more than images (they are upgraded when recreated).
	blocked int
	// partition, maxUnavailable resolved against the matched pods.
	partition, maxUnavailable int
}

// Lookup finds the recorded pods by namespace/name, for expectations.
func (o *observed) Lookup(name string) expectations.Observed {
	p, ok := o.byName[name]
	if !ok {
		return expectations.Observed{}
	}
	return expectations.Observed{Exists: true, UID: p.UID, ResourceVersion: p.ResourceVersion, Terminating: p.DeletionTimestamp != nil}
}

func podKey(p *corev1.Pod) string { return p.Namespace + "/" + p.Name }

func (r *Reconciler) observe(ctx context.Context, ss *appsv1alpha1.SidecarSet) (*observed, error) {
	sel, err := metav1.LabelSelectorAsSelector(ss.Spec.Selector)
	if err != nil {
		return nil, fmt.Errorf("parsing spec.selector: %w", err)
	}
	nsSel := labels.Everything()
	if ss.Spec.NamespaceSelector != nil {
		if nsSel, err = metav1.LabelSelectorAsSelector(ss.Spec.NamespaceSelector); err != nil {
			return nil, fmt.Errorf("parsing spec.namespaceSelector: %w", err)
		}
	}
	scope := labels.Everything()
	if us := ss.Spec.UpdateStrategy.Selector; us != nil {
		if scope, err = metav1.LabelSelectorAsSelector(us); err != nil {
			return nil, fmt.Errorf("parsing spec.updateStrategy.selector: %w", err)
		}
	}
	var list corev1.PodList
	if err := r.Injected.List(ctx, &list, client.MatchingFields{indexSidecarSets: ss.Name}, client.UnsafeDisableDeepCopy); err != nil {
		return nil, fmt.Errorf("listing injected pods: %w", err)
	}
	o := &observed{rev: injection.Revision(&ss.Spec), byName: make(map[string]*corev1.Pod, len(list.Items))}
	nsMatch := map[string]bool{}
	var matched []*corev1.Pod
	for i := range list.Items {
		pod := &list.Items[i]
		o.byName[podKey(pod)] = pod
		if !podstate.IsActive(pod) || !sel.Matches(labels.Set(pod.Labels)) {
			continue
		}
		in, seen := nsMatch[pod.Namespace]
		if !seen {
			if in, err = r.namespaceMatches(ctx, nsSel, pod.Namespace); err != nil {
				return nil, err
			}
			nsMatch[pod.Namespace] = in
		}
		if in {
			matched = append(matched, pod)
		}
	}
	// The engine states of both tracks, decoded only when they changed.
	sidecar := r.States.States(ss.Name, matched)
	workloads := r.workloadStates.States(ss.Name, matched)
	for i, pod := range matched {
		o.views = append(o.views, view(pod, ss, o.rev, scope, sidecar[i], workloads[i]))
	}
	for _, v := range o.views {
		if !v.upgradable {
			o.blocked++
		}
	}
	total := len(o.views)
	us := ss.Spec.UpdateStrategy
	o.partition = min(scaled(us.Partition, total, true, 0), total)
	o.maxUnavailable = max(1, scaled(us.MaxUnavailable, total, false, 1))
	return o, nil
}

func (r *Reconciler) namespaceMatches(ctx context.Context, sel labels.Selector, ns string) (bool, error) {
	if sel.Empty() {
		return true, nil
	}
	obj := &metav1.PartialObjectMetadata{}
	obj.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("Namespace"))
	if err := r.Client.Get(ctx, client.ObjectKey{Name: ns}, obj); err != nil {
		return false, fmt.Errorf("reading namespace %s: %w", ns, err)
	}
	return sel.Matches(labels.Set(obj.Labels)), nil
}

// view classifies one matched pod, given its sidecar-track and
// workload-track engine states.
func view(pod *corev1.Pod, ss *appsv1alpha1.SidecarSet, rev injection.Revisions, scope labels.Selector, sidecar, workloadState podcontrol.ParsedState) *podView {
	v := &podView{pod: pod, ready: podstate.IsReady(pod), inScope: scope.Matches(labels.Set(pod.Labels)), state: sidecar}
	records := injection.RecordsOf(pod)
	v.next, v.upgradable = nextStep(pod, ss, rev, records)
	state := sidecar.State
	mine := sidecar.OK && ownerOfRevision(state.Revision) == ss.Name
	switch {
	case mine && state.Phase != inplace.PhaseDone:
		// An engine run of ours is under way (possibly for an older
		// revision: it restarts toward the latest).
		v.inFlight = true
	case v.next.kind == stepRetire:
		// Upgraded, with a HotUpgrade slot still to empty.
		v.inFlight = true
	}
	if v.inFlight {
		v.changing = changing(ss, state, mine && state.Phase != inplace.PhaseDone, v.next)
	}
	v.updated = v.upgradable && v.next.kind == stepNone && !v.inFlight
	if !v.upgradable {
		// Counted updated if it happens to run the latest revision.
		v.updated = records[ss.Name].Hash == rev.Hash
	}
	v.blocked = otherUpdateInFlight(workloadState, sidecar, ss.Name)
	return v
}

// gracePeriod is how long a pod drains before a ColdUpgrade restart. The
// API has no knob for it yet; the gate still drains endpoints first.
const gracePeriod = time.Duration(0)

// changing returns the sidecars an in-flight pod's run changes: those the
// engine recorded once the run's spec is written (slots map back to their
// sidecar), else those of the step about to be written.
func changing(ss *appsv1alpha1.SidecarSet, state inplace.State, running bool, next step) []string {
	if !running || len(state.Containers) == 0 {
		return next.containers
	}
	names := map[string]bool{}
	for i := range ss.Spec.Containers {
		sc := &ss.Spec.Containers[i]
		a, b := injection.HotSlots(sc.Name)
		for _, n := range []string{sc.Name, a, b} {
			if _, ok := state.Containers[n]; ok && (n == sc.Name || injection.IsHot(sc)) {
				names[sc.Name] = true
			}
		}
	}
	for i := range ss.Spec.InitContainers {
		if _, ok := state.Containers[ss.Spec.InitContainers[i].Name]; ok {
			names[ss.Spec.InitContainers[i].Name] = true
		}
	}
	out := make([]string, 0, len(names))
	for n := range names {
		out = append(out, n)
	}
	return out
}

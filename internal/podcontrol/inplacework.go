package podcontrol

import (
	"context"
	"time"

	corev1 "k8s.io/api/core/v1"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	appsv1alpha1 "github.com/drover-dev/drover/api/apps/v1alpha1"
	"github.com/drover-dev/drover/internal/inplace"
)

// InPlaceWork gathers one reconcile's in-place work, for UpdateInPlace:
// the pods the plan picked, then every other pod that still needs the
// engine or the hook (NeedsInPlaceWork), each pod once. Pods move toward
// the update revision, or toward another revision of the history when a
// rollout sends them back to its stable revision (PlanTo).
type InPlaceWork struct {
	templates *Templates
	grace     time.Duration
	hook      *appsv1alpha1.LifecycleHook
	items     []InPlaceItem
	planned   map[*corev1.Pod]bool
}

// NewInPlaceWork starts the work toward t's update revision. grace is
// inPlaceUpdate.gracePeriodSeconds and hook the workload's inPlaceUpdate
// hook (may be nil).
func NewInPlaceWork(t *Templates, grace time.Duration, hook *appsv1alpha1.LifecycleHook) *InPlaceWork {
	return &InPlaceWork{templates: t, grace: grace, hook: hook}
}

// Plan adds a pod the plan picked for an update. state is its parsed
// in-place state (nil: none) and revision its revision.
func (w *InPlaceWork) Plan(pod *corev1.Pod, state *inplace.State, revision string) {
	w.PlanTo(pod, state, revision, w.templates.Update().Name)
}

// PlanTo adds a pod the plan picked to move from revision to target.
func (w *InPlaceWork) PlanTo(pod *corev1.Pod, state *inplace.State, revision, target string) {
	if w.planned == nil {
		w.planned = map[*corev1.Pod]bool{}
	}
	w.planned[pod] = true
	w.add(pod, state, revision, target)
}

// Continue adds a pod the plan did not pick when it still needs work: its
// update to the update revision is in flight (updating), or the hook left
// it Updated. Pods added with Plan are not added again.
func (w *InPlaceWork) Continue(pod *corev1.Pod, state *inplace.State, revision string, updating bool) {
	if !w.planned[pod] && NeedsInPlaceWork(pod, updating, w.hook) {
		w.add(pod, state, revision, w.templates.Update().Name)
	}
}

// ContinueTo is Continue for a pod whose in-flight update goes to target,
// which need not be the update revision.
func (w *InPlaceWork) ContinueTo(pod *corev1.Pod, state *inplace.State, revision, target string) {
	if !w.planned[pod] && NeedsInPlaceWork(pod, true, w.hook) {
		w.add(pod, state, revision, target)
	}
}

func (w *InPlaceWork) add(pod *corev1.Pod, state *inplace.State, revision, target string) {
	w.items = append(w.items, InPlaceItem{Pod: pod, State: state, Revision: target,
		Change: w.templates.Change(revision, target), GracePeriod: w.grace})
}

// Items returns the work in the order it was added.
func (w *InPlaceWork) Items() []InPlaceItem { return w.items }

// UpdateInPlace takes every pod of w a step further (InPlaceAll), logs how
// many updates it started and returns the soonest a reconcile must come
// back (0: on the pods' next events).
func (c *Control) UpdateInPlace(ctx context.Context, key string, w *InPlaceWork) (time.Duration, error) {
	started, wait, err := c.InPlaceAll(ctx, key, w.items, w.hook)
	if started > 0 {
		// Waves are logged; controllers record one event an update.
		logf.FromContext(ctx).Info("started in-place updates", "count", started, "revision", w.templates.Update().Name)
	}
	return wait, err
}

// Package podcontrol is what every workload controller does to its pods:
// create them (readiness gate opened, expectations recorded), delete them
// behind the preDelete hook, take them through the in-place engine behind
// the inPlaceUpdate hook, repair pods left half-way by an interrupted
// reconcile, and prune revision history. Controllers decide *which* pods
// (their plans); this package decides *how*, once for all of them.
package podcontrol

import (
	"context"
	"fmt"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/utils/clock"
	"sigs.k8s.io/controller-runtime/pkg/client"

	appsv1alpha1 "github.com/drover-dev/drover/api/apps/v1alpha1"
	"github.com/drover-dev/drover/internal/expectations"
	"github.com/drover-dev/drover/internal/inplace"
	"github.com/drover-dev/drover/internal/lifecycle"
	"github.com/drover-dev/drover/internal/revision"
)

// DefaultWriteConcurrency bounds the parallel pod writes of one reconcile
// when the controller does not say.
const DefaultWriteConcurrency = 64

// Control writes pods for one workload controller. Every write records an
// expectation under the workload's key, so the next reconcile waits until
// the cache shows it.
type Control struct {
	Client       client.Client
	Clock        clock.PassiveClock
	Expectations *expectations.Store
	Engine       *inplace.Engine
	// WriteConcurrency bounds the parallel pod writes of one reconcile.
	WriteConcurrency int
}

// New returns a Control with its in-place engine and expectations.
func New(c client.Client, clk clock.PassiveClock, writeConcurrency int) *Control {
	if writeConcurrency <= 0 {
		writeConcurrency = DefaultWriteConcurrency
	}
	return &Control{
		Client:           c,
		Clock:            clk,
		Expectations:     expectations.New(clk, expectations.DefaultTimeout),
		Engine:           &inplace.Engine{Client: c, Clock: clk},
		WriteConcurrency: writeConcurrency,
	}
}

// Create creates pod and, when it carries the InPlaceUpdateReady readiness
// gate, opens the gate: a gate's condition can only be written once the
// pod exists.
func (c *Control) Create(ctx context.Context, key string, pod *corev1.Pod) error {
	c.Expectations.ExpectCreate(key, pod.Name)
	if err := c.Client.Create(ctx, pod); err != nil {
		c.Expectations.Forget(key, pod.Name)
		return fmt.Errorf("creating pod %s: %w", pod.Name, err)
	}
	if !inplace.HasGate(pod) {
		return nil
	}
	rv, err := inplace.SetGate(ctx, c.Client, pod, corev1.ConditionTrue, "PodCreated", nil, c.Clock.Now(), nil)
	if err != nil {
		return err
	}
	c.Expectations.ExpectUpdate(key, pod.Name, rv)
	return nil
}

// Delete deletes pod once hook (the workload's preDelete hook, may be nil)
// releases it: the first call moves the pod to PreparingDelete, and the
// delete is issued when no hook holds it. It reports whether the delete was
// issued. pod is the cache's object and is only read.
func (c *Control) Delete(ctx context.Context, key string, pod *corev1.Pod, hook *appsv1alpha1.LifecycleHook) (bool, error) {
	if hook != nil && lifecycle.StateOf(pod) != appsv1alpha1.LifecycleStatePreparingDelete {
		return false, c.SetLifecycle(ctx, key, pod, appsv1alpha1.LifecycleStatePreparingDelete, hook.MarkPodNotReady)
	}
	if lifecycle.Hooked(hook, pod) {
		return false, nil // waiting for the hook's owner to release the pod
	}
	c.Expectations.ExpectDelete(key, pod.Name, pod.UID)
	if err := c.Client.Delete(ctx, pod.DeepCopy(), client.Preconditions{UID: &pod.UID}); err != nil {
		c.Expectations.Forget(key, pod.Name)
		if apierrors.IsNotFound(err) {
			return false, nil
		}
		return false, fmt.Errorf("deleting pod %s: %w", pod.Name, err)
	}
	return true, nil
}

// InPlaceItem is one pod to take (further) through an in-place update.
type InPlaceItem struct {
	// Pod is the cache's object; it is only read.
	Pod *corev1.Pod
	// State is the pod's parsed in-place state, nil when it has none.
	State *inplace.State
	// Revision is the revision the pod moves to (the update revision, or
	// a rollout's stable revision) and Change the change from the pod's
	// revision to it (Templates.Change).
	Revision string
	Change   inplace.Change
	// GracePeriod is inPlaceUpdate.gracePeriodSeconds: how long the gate
	// stays False before the spec changes.
	GracePeriod time.Duration
}

// Updating reports whether the pod is already being updated to Revision.
func (it InPlaceItem) Updating() bool {
	return it.State != nil && it.State.Phase != inplace.PhaseDone && it.State.Revision == it.Revision
}

// InPlaceResult is what one step of an in-place update did.
type InPlaceResult struct {
	// Started is true when this call began the pod's update.
	Started bool
	// RequeueAfter is when the update can move on (grace period).
	RequeueAfter time.Duration
}

// NeedsInPlaceWork reports whether a pod that was not planned for an update
// still needs InPlace: its update is in flight, or the inPlaceUpdate hook
// left it in Updated and it must go back to Normal.
func NeedsInPlaceWork(pod *corev1.Pod, updating bool, hook *appsv1alpha1.LifecycleHook) bool {
	if updating && pod.DeletionTimestamp == nil {
		return true
	}
	return hook != nil && lifecycle.StateOf(pod) == appsv1alpha1.LifecycleStateUpdated &&
		(lifecycle.Hooked(hook, pod) || pod.DeletionTimestamp != nil)
}

// InPlace moves one pod a step through its in-place update, behind hook
// (the workload's inPlaceUpdate hook, may be nil): Normal -> PreparingUpdate
// (held while the hook holds it) -> Updating -> the engine's gate/patch/
// gate steps -> Updated -> Normal once the hook's owner takes the pod back.
func (c *Control) InPlace(ctx context.Context, key string, it InPlaceItem, hook *appsv1alpha1.LifecycleHook) (InPlaceResult, error) {
	var out InPlaceResult
	pod := it.Pod
	updating := it.Updating()
	if hook != nil {
		state := lifecycle.StateOf(pod)
		switch {
		case state == appsv1alpha1.LifecycleStateUpdated:
			return out, c.SetLifecycle(ctx, key, pod, appsv1alpha1.LifecycleStateNormal, false)
		case !updating && state != appsv1alpha1.LifecycleStatePreparingUpdate:
			return out, c.SetLifecycle(ctx, key, pod, appsv1alpha1.LifecycleStatePreparingUpdate, hook.MarkPodNotReady)
		case state == appsv1alpha1.LifecycleStatePreparingUpdate && lifecycle.Hooked(hook, pod):
			return out, nil // held by the hook
		case state == appsv1alpha1.LifecycleStatePreparingUpdate:
			if err := c.SetLifecycle(ctx, key, pod, appsv1alpha1.LifecycleStateUpdating, false); err != nil {
				return out, err
			}
		}
	}
	out.Started = !updating
	res, err := c.Engine.Update(ctx, inplace.Request{
		Pod: pod, State: it.State, Revision: it.Revision, Change: it.Change, GracePeriod: it.GracePeriod,
	})
	if res.ResourceVersion != "" {
		c.Expectations.ExpectUpdate(key, pod.Name, res.ResourceVersion)
	}
	if err != nil {
		return out, err
	}
	out.RequeueAfter = res.RequeueAfter
	if res.Done && hook != nil {
		return out, c.SetLifecycle(ctx, key, pod, appsv1alpha1.LifecycleStateUpdated, false)
	}
	return out, nil
}

// SetLifecycle labels pod with a lifecycle state (and closes its gate with
// notReady) and records the write.
func (c *Control) SetLifecycle(ctx context.Context, key string, pod *corev1.Pod, s appsv1alpha1.LifecycleState, notReady bool) error {
	rv, err := lifecycle.SetState(ctx, c.Client, pod, s, notReady, c.Clock.Now())
	if err != nil {
		return err
	}
	c.Expectations.ExpectUpdate(key, pod.Name, rv)
	return nil
}

// NeedsRepair reports whether a pod was left half-way: created without its
// readiness gate set (the manager stopped between the two writes), or
// waiting in PreparingUpdate for an update that is no longer needed (the
// template went back to the pod's revision). updated is whether the pod
// is on the update revision, inFlight whether an in-place update is in
// flight on it. Pods being updated to the update revision are the engine's
// business: callers skip them.
func NeedsRepair(pod *corev1.Pod, updated, inFlight bool) bool {
	if pod.DeletionTimestamp != nil {
		return false
	}
	missingGate := inplace.HasGate(pod) && inplace.GateStatus(pod) == ""
	staleHold := updated && !inFlight && lifecycle.StateOf(pod) == appsv1alpha1.LifecycleStatePreparingUpdate
	return missingGate || staleHold
}

// Repair opens the pod's gate and takes it out of a stale PreparingUpdate.
func (c *Control) Repair(ctx context.Context, key string, pod *corev1.Pod) error {
	var labels map[string]any
	if lifecycle.StateOf(pod) == appsv1alpha1.LifecycleStatePreparingUpdate {
		labels = map[string]any{appsv1alpha1.LabelLifecycleState: string(appsv1alpha1.LifecycleStateNormal)}
	}
	rv, err := inplace.SetGate(ctx, c.Client, pod, corev1.ConditionTrue, "Repaired", nil, c.Clock.Now(), labels)
	if err != nil {
		return client.IgnoreNotFound(err)
	}
	c.Expectations.ExpectUpdate(key, pod.Name, rv)
	return nil
}

// PruneHistory deletes revisions beyond limit that no live pod uses; live
// names the revisions in use (the current and update revisions and every
// pod's).
func (c *Control) PruneHistory(ctx context.Context, history []*appsv1.ControllerRevision, live map[string]bool, limit int) error {
	for _, h := range revision.Prunable(history, live, limit) {
		if err := c.Client.Delete(ctx, h.DeepCopy()); err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("pruning revision %s: %w", h.Name, err)
		}
	}
	return nil
}

package podcontrol

import (
	"context"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"

	appsv1alpha1 "github.com/drover-dev/drover/api/apps/v1alpha1"
)

// The batch forms of Create, Delete, InPlace and Repair: one call per
// reconcile step, the pods written in parallel within WriteConcurrency.

// SlowStart runs fn over items in batches of 1, 2, 4, ... (each batch in
// parallel within limit) and stops after the first batch with a failure,
// so that a write that keeps failing (a quota, an admission webhook)
// fails a few times rather than once per item. Once a batch as large as
// limit has succeeded, the rest run in one go. It returns how many items
// were handed to fn.
func SlowStart[T any](ctx context.Context, limit int, items []T, fn func(context.Context, T) error) (int, error) {
	done := 0
	for batch := 1; done < len(items); batch *= 2 {
		n := min(batch, len(items)-done)
		if batch > limit {
			n = len(items) - done
		}
		err := Parallel(ctx, limit, items[done:done+n], fn)
		done += n
		if err != nil {
			return done, err
		}
	}
	return done, nil
}

// DeleteAll deletes pods, each behind hook (see Delete), and returns how
// many deletes were issued.
func (c *Control) DeleteAll(ctx context.Context, key string, pods []*corev1.Pod, hook *appsv1alpha1.LifecycleHook) (int, error) {
	return c.DeleteAllThen(ctx, key, pods, hook, nil)
}

// DeleteAllThen is DeleteAll that also runs then (when not nil) for each
// pod whose delete was issued, in the same worker right after the delete:
// what goes with the pod (a CloneSet's claims). then's errors are returned
// with the deletes'.
func (c *Control) DeleteAllThen(ctx context.Context, key string, pods []*corev1.Pod, hook *appsv1alpha1.LifecycleHook,
	then func(context.Context, *corev1.Pod) error) (int, error) {
	var issued atomic.Int32
	err := Parallel(ctx, c.WriteConcurrency, pods, func(ctx context.Context, p *corev1.Pod) error {
		ok, err := c.Delete(ctx, key, p, hook)
		if err != nil || !ok {
			return err
		}
		issued.Add(1)
		if then != nil {
			return then(ctx, p)
		}
		return nil
	})
	return int(issued.Load()), err
}

// InPlaceAll takes every item a step further through its in-place update
// (see InPlace) and returns how many updates this call started and the
// soonest a reconcile must come back (0: on the pods' next events).
func (c *Control) InPlaceAll(ctx context.Context, key string, items []InPlaceItem, hook *appsv1alpha1.LifecycleHook) (int, time.Duration, error) {
	var started atomic.Int32
	var wait MinWait
	err := Parallel(ctx, c.WriteConcurrency, items, func(ctx context.Context, it InPlaceItem) error {
		res, err := c.InPlace(ctx, key, it, hook)
		if res.Started {
			started.Add(1)
		}
		wait.Observe(res.RequeueAfter)
		return err
	})
	return int(started.Load()), wait.Get(), err
}

// RepairAll repairs pods (see Repair).
func (c *Control) RepairAll(ctx context.Context, key string, pods []*corev1.Pod) error {
	return Parallel(ctx, c.WriteConcurrency, pods, func(ctx context.Context, p *corev1.Pod) error {
		return c.Repair(ctx, key, p)
	})
}

package revision

import (
	"context"
	"fmt"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// Owner describes the workload whose history is synchronised.
type Owner struct {
	Object metav1.Object
	GVK    schema.GroupVersionKind
	// Labels are put on every revision (they let the manager's cache select
	// only Drover's revisions).
	Labels map[string]string
}

// Result of Sync.
type Result struct {
	// Update is the revision of the current template.
	Update *appsv1.ControllerRevision
	// CollisionCount is the collision count to record in status.
	CollisionCount int32
	// History is the history including Update, sorted oldest first.
	History []*appsv1.ControllerRevision
}

// Sync makes sure a revision exists for template and is the newest one.
// A template equal to an earlier revision reuses that revision (its number
// is raised), so returning to a previous template restarts no pod that
// already runs it. history is what the cache holds for the owner.
func Sync(ctx context.Context, c client.Client, owner Owner, template *corev1.PodTemplateSpec, history []*appsv1.ControllerRevision, collisionCount *int32) (Result, error) {
	var count int32
	if collisionCount != nil {
		count = *collisionCount
	}
	Sort(history)
	next := Next(history)
	rev, err := New(owner.Object, owner.GVK, owner.Labels, template, next, &count)
	if err != nil {
		return Result{}, err
	}

	if equal := FindEqual(history, rev); len(equal) > 0 {
		found := equal[len(equal)-1]
		if found.Revision != next-1 {
			patch := fmt.Appendf(nil, `{"revision":%d}`, next)
			found = found.DeepCopy()
			if err := c.Patch(ctx, found, client.RawPatch(types.MergePatchType, patch)); err != nil {
				return Result{}, fmt.Errorf("raising revision %s to %d: %w", found.Name, next, err)
			}
			history = replace(history, found)
			Sort(history)
		}
		return Result{Update: found, CollisionCount: count, History: history}, nil
	}

	for {
		err := c.Create(ctx, rev)
		if err == nil {
			history = append(history, rev)
			Sort(history)
			return Result{Update: rev, CollisionCount: count, History: history}, nil
		}
		if !apierrors.IsAlreadyExists(err) {
			return Result{}, fmt.Errorf("creating revision %s: %w", rev.Name, err)
		}
		// The name exists: either our cache is stale and it holds the same
		// template, or the hash collides with another template.
		existing := &appsv1.ControllerRevision{}
		if err := c.Get(ctx, client.ObjectKeyFromObject(rev), existing); err != nil {
			return Result{}, fmt.Errorf("reading revision %s after a name clash: %w", rev.Name, err)
		}
		if metav1.IsControlledBy(existing, owner.Object) && Equal(existing, rev) {
			history = append(history, existing)
			Sort(history)
			return Result{Update: existing, CollisionCount: count, History: history}, nil
		}
		count++
		if rev, err = New(owner.Object, owner.GVK, owner.Labels, template, next, &count); err != nil {
			return Result{}, err
		}
	}
}

func replace(history []*appsv1.ControllerRevision, rev *appsv1.ControllerRevision) []*appsv1.ControllerRevision {
	out := make([]*appsv1.ControllerRevision, 0, len(history))
	for _, h := range history {
		if h.Name == rev.Name {
			out = append(out, rev)
			continue
		}
		out = append(out, h)
	}
	return out
}

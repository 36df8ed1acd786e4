// Package ownership finds the objects a workload controls through a cache
// index on the controller's UID, adopts matching orphans and releases
// objects whose labels stopped matching, like the native controllers'
// ControllerRefManager.
package ownership

import (
	"context"
	"encoding/json"
	"fmt"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// IndexController is the cache index holding the UID of an object's
// controller, or "" for an object without one (an orphan).
const IndexController = "metadata.ownerReferences.controller.uid"

// ControllerUID is the index function for IndexController.
func ControllerUID(obj client.Object) []string {
	if ref := metav1.GetControllerOf(obj); ref != nil {
		return []string{string(ref.UID)}
	}
	return []string{""}
}

// Owner is the controlling workload.
type Owner struct {
	Object   client.Object
	GVK      schema.GroupVersionKind
	Selector labels.Selector
}

// Claim adopts orphans that match the owner's selector and releases owned
// objects that no longer match. owned and orphans come from the cache (the
// index above) and are not modified; it returns the objects the owner
// controls afterwards.
func Claim[T client.Object](ctx context.Context, c client.Client, owner Owner, owned, orphans []T) ([]T, error) {
	out := make([]T, 0, len(owned))
	for _, o := range owned {
		if owner.Selector.Matches(labels.Set(o.GetLabels())) {
			out = append(out, o)
			continue
		}
		if err := release(ctx, c, owner, o.DeepCopyObject().(client.Object)); err != nil {
			return nil, err
		}
	}
	if owner.Object.GetDeletionTimestamp() != nil {
		return out, nil
	}
	for _, o := range orphans {
		if o.GetDeletionTimestamp() != nil || !owner.Selector.Matches(labels.Set(o.GetLabels())) {
			continue
		}
		adopted := o.DeepCopyObject().(T)
		if err := adopt(ctx, c, owner, adopted); err != nil {
			return nil, err
		}
		out = append(out, adopted)
	}
	return out, nil
}

func adopt(ctx context.Context, c client.Client, owner Owner, o client.Object) error {
	ref := metav1.NewControllerRef(owner.Object, owner.GVK)
	patch, err := json.Marshal(map[string]any{"metadata": map[string]any{
		"ownerReferences": []any{ref},
		"uid":             o.GetUID(),
	}})
	if err != nil {
		return fmt.Errorf("encoding adoption patch: %w", err)
	}
	if err := c.Patch(ctx, o, client.RawPatch(types.StrategicMergePatchType, patch)); err != nil {
		return fmt.Errorf("adopting %s: %w", o.GetName(), err)
	}
	return nil
}

func release(ctx context.Context, c client.Client, owner Owner, o client.Object) error {
	patch := fmt.Appendf(nil, `{"metadata":{"ownerReferences":[{"$patch":"delete","uid":%q}],"uid":%q}}`, owner.Object.GetUID(), o.GetUID())
	if err := c.Patch(ctx, o, client.RawPatch(types.StrategicMergePatchType, patch)); err != nil {
		return fmt.Errorf("releasing %s: %w", o.GetName(), err)
	}
	return nil
}

// RegisterIndexes adds IndexController for the objects workloads own (pods,
// claims, revisions) to a manager's cache. The manager calls it once,
// before any controller is set up; a test that sets up controllers on its
// own manager calls it too.
func RegisterIndexes(ctx context.Context, idx client.FieldIndexer) error {
	for _, obj := range []client.Object{&corev1.Pod{}, &corev1.PersistentVolumeClaim{}, &appsv1.ControllerRevision{}} {
		if err := idx.IndexField(ctx, obj, IndexController, ControllerUID); err != nil {
			return fmt.Errorf("indexing %T by controller: %w", obj, err)
		}
	}
	return nil
}

// PodIndexer is a reader that lists a controller's pods straight from
// the cache's index, without copying them (the manager's client is one).
type PodIndexer interface {
	PodsByController(ctx context.Context, namespace, controllerUID string) ([]*corev1.Pod, error)
}

// Pods lists, from the cache, the pods in namespace whose controller has
// the given UID ("" for orphans). The pods are the cache's own objects, or
// shallow copies of them: callers must not modify them. A reader that is a
// PodIndexer lists them without copying.
func Pods(ctx context.Context, c client.Reader, namespace, controllerUID string) ([]*corev1.Pod, error) {
	if pi, ok := c.(PodIndexer); ok {
		return pi.PodsByController(ctx, namespace, controllerUID)
	}
	return ListPods(ctx, c, namespace, controllerUID)
}

// ListPods is Pods through c.List, which copies every pod's struct into
// the list (about 1 KiB a pod).
func ListPods(ctx context.Context, c client.Reader, namespace, controllerUID string) ([]*corev1.Pod, error) {
	var list corev1.PodList
	if err := c.List(ctx, &list, client.InNamespace(namespace), client.MatchingFields{IndexController: controllerUID}, client.UnsafeDisableDeepCopy); err != nil {
		return nil, fmt.Errorf("listing pods: %w", err)
	}
	out := make([]*corev1.Pod, len(list.Items))
	for i := range list.Items {
		out[i] = &list.Items[i]
	}
	return out, nil
}

// ClaimPods returns the pods owner controls after adopting matching orphans
// and releasing owned pods that stopped matching (Claim over Pods).
func ClaimPods(ctx context.Context, c client.Client, owner Owner) ([]*corev1.Pod, error) {
	ns, uid := owner.Object.GetNamespace(), string(owner.Object.GetUID())
	owned, err := Pods(ctx, c, ns, uid)
	if err != nil {
		return nil, err
	}
	orphans, err := Pods(ctx, c, ns, "")
	if err != nil {
		return nil, err
	}
	return Claim(ctx, c, owner, owned, orphans)
}

// Revisions lists, from the cache, the ControllerRevisions owner controls.
func Revisions(ctx context.Context, c client.Reader, owner client.Object) ([]*appsv1.ControllerRevision, error) {
	var revs appsv1.ControllerRevisionList
	if err := c.List(ctx, &revs, client.InNamespace(owner.GetNamespace()), client.MatchingFields{IndexController: string(owner.GetUID())}); err != nil {
		return nil, fmt.Errorf("listing revisions: %w", err)
	}
	out := make([]*appsv1.ControllerRevision, len(revs.Items))
	for i := range revs.Items {
		out[i] = &revs.Items[i]
	}
	return out, nil
}

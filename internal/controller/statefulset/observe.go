package statefulset

import (
	"context"
	"fmt"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/controller-runtime/pkg/client"

	appsv1alpha1 "github.com/drover-dev/drover/api/apps/v1alpha1"
	"github.com/drover-dev/drover/internal/expectations"
	"github.com/drover-dev/drover/internal/ownership"
)

// observed is what the cache shows of a set's objects. The objects are the
// cache's own (listed without copying): copy one before writing it.
type observed struct {
	selector labels.Selector
	// members are the controlled pods named <set>-<ordinal>, terminating
	// ones included, by ordinal. Controlled pods named otherwise (adopted
	// through a user selector) are left alone, as the native controller
	// does.
	members map[int32]*corev1.Pod
	// lookup finds the controlled pods by name, for expectations.
	lookup expectations.Lookup
	// claims are the set's claims (label apps.drover.dev/statefulset), by name.
	claims  map[string]*corev1.PersistentVolumeClaim
	history []*appsv1.ControllerRevision
}

// selectorOf returns the set's selector: spec.selector, or the label
// Drover puts on every pod of the set when spec.selector is omitted.
func selectorOf(set *appsv1alpha1.StatefulSet) (labels.Selector, error) {
	if set.Spec.Selector == nil {
		return labels.SelectorFromSet(labels.Set{appsv1alpha1.LabelStatefulSet: set.Name}), nil
	}
	sel, err := metav1.LabelSelectorAsSelector(set.Spec.Selector)
	if err != nil {
		return nil, fmt.Errorf("parsing spec.selector: %w", err)
	}
	return sel, nil
}

// Lookup finds the controlled pods by name, for expectations.
func (o *observed) Lookup(name string) expectations.Observed { return o.lookup(name) }

func (r *Reconciler) observe(ctx context.Context, set *appsv1alpha1.StatefulSet) (*observed, error) {
	sel, err := selectorOf(set)
	if err != nil {
		return nil, err
	}
	o := &observed{selector: sel, members: map[int32]*corev1.Pod{}, claims: map[string]*corev1.PersistentVolumeClaim{}}

	var owned, orphans corev1.PodList
	for uid, list := range map[string]*corev1.PodList{string(set.UID): &owned, "": &orphans} {
		if err := r.Client.List(ctx, list, client.InNamespace(set.Namespace),
			client.MatchingFields{ownership.IndexController: uid}, client.UnsafeDisableDeepCopy); err != nil {
			return nil, fmt.Errorf("listing pods: %w", err)
		}
	}
	pods, err := ownership.Claim(ctx, r.Client, ownership.Owner{Object: set, GVK: gvk(), Selector: sel},
		pointers(owned.Items), pointers(orphans.Items))
	if err != nil {
		return nil, err
	}
	o.lookup = expectations.ByName(pods)
	for _, p := range pods {
		if ord, ok := podOrdinal(set.Name, p.Name); ok {
			o.members[ord] = p
		}
	}

	var claims corev1.PersistentVolumeClaimList
	if err := r.Client.List(ctx, &claims, client.InNamespace(set.Namespace),
		client.MatchingLabels{appsv1alpha1.LabelStatefulSet: set.Name}, client.UnsafeDisableDeepCopy); err != nil {
		return nil, fmt.Errorf("listing claims: %w", err)
	}
	for i := range claims.Items {
		o.claims[claims.Items[i].Name] = &claims.Items[i]
	}

	var revs appsv1.ControllerRevisionList
	if err := r.Client.List(ctx, &revs, client.InNamespace(set.Namespace),
		client.MatchingFields{ownership.IndexController: string(set.UID)}); err != nil {
		return nil, fmt.Errorf("listing revisions: %w", err)
	}
	for i := range revs.Items {
		o.history = append(o.history, &revs.Items[i])
	}
	return o, nil
}

func pointers[T any](items []T) []*T {
	out := make([]*T, len(items))
	for i := range items {
		out[i] = &items[i]
	}
	return out
}

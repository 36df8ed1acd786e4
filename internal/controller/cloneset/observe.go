package cloneset

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

// observed is what the cache shows of a CloneSet's objects. The objects are
// the cache's own (listed without copying): copy one before writing it.
type observed struct {
	selector labels.Selector
	pods     []*corev1.Pod // controlled pods, terminating ones included
	// lookup finds the controlled pods by name, for expectations.
	lookup  expectations.Lookup
	claims  []*corev1.PersistentVolumeClaim
	history []*appsv1.ControllerRevision
}

// Lookup finds the controlled pods by name, for expectations.
func (o *observed) Lookup(name string) expectations.Observed { return o.lookup(name) }

func (r *Reconciler) observe(ctx context.Context, cs *appsv1alpha1.CloneSet) (*observed, error) {
	sel, err := metav1.LabelSelectorAsSelector(cs.Spec.Selector)
	if err != nil {
		return nil, fmt.Errorf("parsing spec.selector: %w", err)
	}
	o := &observed{selector: sel}

	o.pods, err = ownership.ClaimPods(ctx, r.Client, ownership.Owner{Object: cs, GVK: gvk(), Selector: sel})
	if err != nil {
		return nil, err
	}
	o.lookup = expectations.ByName(o.pods)

	var claims corev1.PersistentVolumeClaimList
	if err := r.Client.List(ctx, &claims, client.InNamespace(cs.Namespace), client.MatchingFields{ownership.IndexController: string(cs.UID)}, client.UnsafeDisableDeepCopy); err != nil {
		return nil, fmt.Errorf("listing claims: %w", err)
	}
	for i := range claims.Items {
		o.claims = append(o.claims, &claims.Items[i])
	}

	o.history, err = ownership.Revisions(ctx, r.Client, cs)
	if err != nil {
		return nil, err
	}
	return o, nil
}

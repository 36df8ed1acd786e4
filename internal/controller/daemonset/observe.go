package daemonset

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

// observed is what the cache shows of a DaemonSet's objects and of the
// nodes. The objects are the cache's own (listed without copying): copy one
// before writing it.
type observed struct {
	pods    []*corev1.Pod // controlled pods, terminating ones included
	lookup  expectations.Lookup
	history []*appsv1.ControllerRevision
	nodes   []*corev1.Node
}

// Lookup finds the controlled pods by name, for expectations.
func (o *observed) Lookup(name string) expectations.Observed { return o.lookup(name) }

func (r *Reconciler) observe(ctx context.Context, ds *appsv1alpha1.DaemonSet) (*observed, error) {
	sel, err := metav1.LabelSelectorAsSelector(ds.Spec.Selector)
	if err != nil {
		return nil, fmt.Errorf("parsing spec.selector: %w", err)
	}
	o := &observed{}
	o.pods, err = ownership.ClaimPods(ctx, r.Client, ownership.Owner{Object: ds, GVK: gvk(), Selector: sel})
	if err != nil {
		return nil, err
	}
	o.lookup = expectations.ByName(o.pods)
	if o.history, err = ownership.Revisions(ctx, r.Client, ds); err != nil {
		return nil, err
	}

	var nodes corev1.NodeList
	if err := r.Client.List(ctx, &nodes, client.UnsafeDisableDeepCopy); err != nil {
		return nil, fmt.Errorf("listing nodes: %w", err)
	}
	o.nodes = make([]*corev1.Node, len(nodes.Items))
	for i := range nodes.Items {
		o.nodes[i] = &nodes.Items[i]
	}
	return o, nil
}

// nodeSelector parses rollingUpdate.selector (nil: every node).
func nodeSelector(ds *appsv1alpha1.DaemonSet) (labels.Selector, error) {
	ru := ds.Spec.UpdateStrategy.RollingUpdate
	if ru == nil || ru.Selector == nil {
		return labels.Everything(), nil
	}
	sel, err := metav1.LabelSelectorAsSelector(ru.Selector)
	if err != nil {
		return nil, fmt.Errorf("parsing spec.updateStrategy.rollingUpdate.selector: %w", err)
	}
	return sel, nil
}

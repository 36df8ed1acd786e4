package rollout

import (
	"context"

	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	rolloutsv1alpha1 "github.com/drover-dev/drover/api/rollouts/v1alpha1"
	"github.com/drover-dev/drover/internal/target"
)

// forReplicaSet maps a ReplicaSet event to the Rollouts it concerns: a
// Rollout's canary ReplicaSet to that Rollout, a Deployment's ReplicaSet to
// the Rollouts targeting the Deployment. (An orphaned canary, handed to its
// Deployment, maps through both its old and its new version.)
func (r *Reconciler) forReplicaSet(ctx context.Context, o client.Object) []reconcile.Request {
	ref := metav1.GetControllerOf(o)
	switch {
	case ref == nil:
		return nil
	case ref.Kind == "Rollout" && ref.APIVersion == rolloutsv1alpha1.GroupVersion.String():
		return []reconcile.Request{{NamespacedName: client.ObjectKey{Namespace: o.GetNamespace(), Name: ref.Name}}}
	case ref.Kind == target.KindDeployment && ref.APIVersion == appsv1.SchemeGroupVersion.String():
		owner := &metav1.PartialObjectMetadata{ObjectMeta: metav1.ObjectMeta{Namespace: o.GetNamespace(), Name: ref.Name}}
		return r.forWorkload(appsv1.SchemeGroupVersion.String(), target.KindDeployment)(ctx, owner)
	}
	return nil
}

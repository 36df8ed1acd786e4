package podcontrol

import (
	"context"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	appsv1alpha1 "github.com/drover-dev/drover/api/apps/v1alpha1"
	"github.com/drover-dev/drover/internal/configsnapshot"
	"github.com/drover-dev/drover/internal/revision"
)

// Revisions is a workload's revision history for one reconcile.
type Revisions struct {
	// Templates decodes the history's templates; Update() is the revision
	// of the workload's template.
	*Templates
	// History is every revision, the update revision included, oldest first.
	History []*appsv1.ControllerRevision
	// Current is the revision named by the workload's status
	// (currentRevision), or the update revision when there is none or it
	// left the history.
	Current *appsv1.ControllerRevision
	// CollisionCount is the collision count to record in status.
	CollisionCount int32
}

// SyncRevisions makes sure a revision exists for template (revision.Sync)
// and resolves the current one. history is what the cache holds for the
// owner; collisionCount and current come from the workload's status.
//
// When the owner carries a rollout control with configs (a Rollout with
// spec.trackConfigs), the revision is that of the template with the
// ConfigMap and Secret references the control maps renamed to their
// snapshots (RevisionTemplate): a changed config is a new update revision,
// and the pods of each revision are created from its stored template, with
// the snapshots it names.
func SyncRevisions(ctx context.Context, c client.Client, owner revision.Owner, template *corev1.PodTemplateSpec,
	history []*appsv1.ControllerRevision, collisionCount *int32, current string) (*Revisions, error) {
	hist, err := revision.Sync(ctx, c, owner, RevisionTemplate(owner.Object, template), history, collisionCount)
	if err != nil {
		return nil, err
	}
	r := &Revisions{Templates: NewTemplates(hist.History, hist.Update), History: hist.History, Current: hist.Update, CollisionCount: hist.CollisionCount}
	if cur, ok := r.Revision(current); ok {
		r.Current = cur
	}
	return r, nil
}

// RevisionTemplate is the template a workload's update revision stores:
// its spec's template with the references its rollout control's configs
// map renamed to their snapshots (configsnapshot.Rewrite), or the template
// itself when it carries no such control. An unreadable control maps
// nothing: the workload holds its update until it is fixed anyway.
func RevisionTemplate(workload metav1.Object, template *corev1.PodTemplateSpec) *corev1.PodTemplateSpec {
	ctl, ok, err := appsv1alpha1.ParseRolloutControl(workload.GetAnnotations())
	if !ok || err != nil {
		return template
	}
	return configsnapshot.Rewrite(template, ctl.Configs)
}

// Live returns the names of the revisions that must not be pruned: the
// current and update revisions and those of the given pods' revisions.
func (r *Revisions) Live(podRevisions ...string) map[string]bool {
	live := map[string]bool{r.Current.Name: true, r.Update().Name: true}
	for _, name := range podRevisions {
		live[name] = true
	}
	return live
}

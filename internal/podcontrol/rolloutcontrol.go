package podcontrol

import (
	"fmt"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	appsv1alpha1 "github.com/drover-dev/drover/api/apps/v1alpha1"
)

// RolloutControl is a workload's rollout control annotation
// (appsv1alpha1.RolloutControl) checked against the workload's revisions.
type RolloutControl struct {
	// Ctl is the control; nil when there is none or it cannot be used.
	Ctl *appsv1alpha1.RolloutControl
	// Stable is the rollout's stable revision when it differs from the
	// update revision: the pods kept off the update revision run it.
	Stable string
	// Err is an unusable control (malformed, or naming a stable revision
	// the workload does not have): the workload holds its update, as if
	// paused, until it is fixed.
	Err error
}

// ReadControl reads the rollout control of workload (of the given kind,
// for messages) and checks its stable revision against t.
func ReadControl(workload metav1.Object, kind string, t *Templates) RolloutControl {
	ctl, ok, err := appsv1alpha1.ParseRolloutControl(workload.GetAnnotations())
	switch {
	case !ok:
		return RolloutControl{}
	case err != nil:
		return RolloutControl{Err: err}
	}
	c := RolloutControl{Ctl: &ctl}
	if ctl.StableRevision != t.Update().Name {
		if _, known := t.Revision(ctl.StableRevision); !known {
			return RolloutControl{Err: fmt.Errorf("annotation %s: stableRevision %s is not a revision of this %s",
				appsv1alpha1.AnnotationRolloutControl, ctl.StableRevision, kind)}
		}
		c.Stable = ctl.StableRevision
	}
	return c
}

package podcontrol

import (
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	appsv1alpha1 "github.com/drover-dev/drover/api/apps/v1alpha1"
)

func TestReadControl(t *testing.T) {
	history := []*appsv1.ControllerRevision{{ObjectMeta: metav1.ObjectMeta{Name: "web-1"}}, {ObjectMeta: metav1.ObjectMeta{Name: "web-2"}}}
	tpl := NewTemplates(history, history[1])
	for _, c := range []struct {
		name, annotation string
		ctl              bool
		stable, err      string
	}{
		{name: "no annotation"},
		{name: "stable is an older revision", annotation: `{"stableRevision":"web-1","canaryReplicas":1}`, ctl: true, stable: "web-1"},
		{name: "stable is the update revision", annotation: `{"stableRevision":"web-2"}`, ctl: true},
		{name: "unknown stable revision", annotation: `{"stableRevision":"web-0"}`,
			err: "annotation apps.drover.dev/rollout-control: stableRevision web-0 is not a revision of this CloneSet"},
		{name: "malformed", annotation: `{"stableRevision":`, err: "apps.drover.dev/rollout-control"},
	} {
		t.Run(c.name, func(t *testing.T) {
			obj := &metav1.ObjectMeta{}
			if c.annotation != "" {
				obj.Annotations = map[string]string{appsv1alpha1.AnnotationRolloutControl: c.annotation}
			}
			rc := ReadControl(obj, "CloneSet", tpl)
			if (rc.Ctl != nil) != c.ctl || rc.Stable != c.stable {
				t.Fatalf("control %+v, stable %q", rc.Ctl, rc.Stable)
			}
			switch {
			case c.err == "" && rc.Err != nil:
				t.Fatalf("error %v", rc.Err)
			case c.err != "" && (rc.Err == nil || !strings.Contains(rc.Err.Error(), c.err)):
				t.Fatalf("error %v, want one containing %q", rc.Err, c.err)
			case rc.Err != nil && rc.Ctl != nil:
				t.Fatal("an unusable control must not be used")
			}
		})
	}
}

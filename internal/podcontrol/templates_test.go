package podcontrol

import (
	"sync"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/drover-dev/drover/internal/revision"
)

// testTemplates returns Templates over two revisions of a one-container
// template, images a:1 (old) and a:2 (the update revision, upd).
func testTemplates(t *testing.T) (tp *Templates, old, upd *appsv1.ControllerRevision) {
	t.Helper()
	owner := &metav1.ObjectMeta{Name: "web", Namespace: "ns", UID: "u"}
	mk := func(image string, n int64) *appsv1.ControllerRevision {
		rev, err := revision.New(owner, appsv1.SchemeGroupVersion.WithKind("Test"), nil, &corev1.PodTemplateSpec{
			Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: image}}},
		}, n, nil)
		if err != nil {
			t.Fatal(err)
		}
		return rev
	}
	old, upd = mk("a:1", 1), mk("a:2", 2)
	return NewTemplates([]*appsv1.ControllerRevision{old}, upd), old, upd
}

// Parallel pod workers share one Templates value; run with -race.
func TestTemplatesConcurrentUse(t *testing.T) {
	tp, old, upd := testTemplates(t)
	var wg sync.WaitGroup
	for i := 0; i < 16; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if c := tp.ChangeTo(old.Name); !c.InPlace || c.Images["c"] != "a:2" {
				t.Errorf("unexpected change %+v", c)
			}
			if _, err := tp.Template(upd.Name); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
}

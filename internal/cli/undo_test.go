package cli

import (
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	appsv1alpha1 "github.com/drover-dev/drover/api/apps/v1alpha1"
	rolloutsv1alpha1 "github.com/drover-dev/drover/api/rollouts/v1alpha1"
	"github.com/drover-dev/drover/internal/revision"
)

// rolloutWithHistory is a Rollout on CloneSet web whose revisions 1-3 ran
// images a:1, a:2 and a:3; the template is at revision 3.
func rolloutWithHistory(t *testing.T) []client.Object {
	t.Helper()
	cs := twoContainerCloneSet()
	cs.UID = "uid-web"
	var objs []client.Object
	for i, img := range []string{"a:1", "a:2", "a:3"} {
		tpl := cs.Spec.Template.DeepCopy()
		tpl.Spec.Containers[0].Image = img
		rev, err := revision.New(cs, appsv1alpha1.GroupVersion.WithKind("CloneSet"), nil, tpl, int64(i+1), nil)
		if err != nil {
			t.Fatal(err)
		}
		objs = append(objs, rev)
		cs.Status.UpdateRevision = rev.Name
		cs.Spec.Template = *tpl
	}
	ro := &rolloutsv1alpha1.Rollout{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "web"},
		Spec: rolloutsv1alpha1.RolloutSpec{TargetRef: rolloutsv1alpha1.TargetRef{APIVersion: "apps.drover.dev/v1alpha1", Kind: "CloneSet", Name: "web"}}}
	return append(objs, cs, ro)
}

func TestUndoAndRestart(t *testing.T) {
	c := fakeClient(t, rolloutWithHistory(t)...)
	f := testFactory{c: c, ns: "default"}

	out, _, err := runCLI(t, f, "drover", "undo", "web")
	if err != nil {
		t.Fatal(err)
	}
	if got := images(getCS(t, c, "web")); got != "init=busybox:1,a=a:2,b=b:1" || !strings.Contains(out, "template set to revision 2") {
		t.Fatalf("undo: images %s, output %q", got, out)
	}
	if _, _, err := runCLI(t, f, "drover", "undo", "rollout/web", "--to-revision", "1"); err != nil {
		t.Fatal(err)
	}
	if got := images(getCS(t, c, "web")); got != "init=busybox:1,a=a:1,b=b:1" {
		t.Fatalf("undo --to-revision 1: images %s", got)
	}
	if _, _, err := runCLI(t, f, "drover", "undo", "web", "--to-revision", "7"); err == nil || !strings.Contains(err.Error(), "has no revision 7 (it has 1, 2, 3)") {
		t.Fatalf("undo to a missing revision: %v", err)
	}
	if _, _, err := runCLI(t, f, "drover", "undo", "nope"); err == nil || !strings.Contains(err.Error(), "rollout default/nope") {
		t.Fatalf("undo of a missing rollout: %v", err)
	}

	if _, _, err := runCLI(t, f, "drover", "restart", "web"); err != nil {
		t.Fatal(err)
	}
	stamp := getCS(t, c, "web").Spec.Template.Annotations[AnnotationRestartedAt]
	if _, err := time.Parse(time.RFC3339, stamp); err != nil {
		t.Fatalf("restart stamp %q: %v", stamp, err)
	}
}

func TestRolloutActionCommands(t *testing.T) {
	objs := rolloutWithHistory(t)
	c := fakeClient(t, objs[len(objs)-1])
	f := testFactory{c: c, ns: "default"}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"promote", "web"}, "promote"},
		{[]string{"promote", "web", "--full"}, "promote-full"},
		{[]string{"abort", "rollout", "web"}, "abort"},
		{[]string{"retry", "ro/web"}, "retry"},
	} {
		if _, _, err := runCLI(t, f, "drover", tc.args...); err != nil {
			t.Fatal(err)
		}
		var ro rolloutsv1alpha1.Rollout
		if err := c.Get(t.Context(), clientKey("web"), &ro); err != nil {
			t.Fatal(err)
		}
		if got := ro.Annotations[rolloutsv1alpha1.AnnotationAction]; got != tc.want {
			t.Errorf("%v: action %q, want %q", tc.args, got, tc.want)
		}
	}
	for _, paused := range []bool{true, false} {
		cmd := "resume"
		if paused {
			cmd = "pause"
		}
		if _, _, err := runCLI(t, f, "drover", cmd, "web"); err != nil {
			t.Fatal(err)
		}
		var ro rolloutsv1alpha1.Rollout
		if err := c.Get(t.Context(), clientKey("web"), &ro); err != nil {
			t.Fatal(err)
		}
		if ro.Spec.Paused != paused {
			t.Errorf("%s: spec.paused %v", cmd, ro.Spec.Paused)
		}
	}
}

func clientKey(name string) client.ObjectKey {
	return client.ObjectKey{Namespace: "default", Name: name}
}

package broadcastjob_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	appsv1alpha1 "github.com/drover-dev/drover/api/apps/v1alpha1"
	"github.com/drover-dev/drover/internal/testenv"
)

// The CRD's schema and CEL rules refuse bad specs with the field named,
// with or without a running manager.
func TestInvalidSpecsAreRefused(t *testing.T) {
	f := setup(t)
	str := func(s string) *intstr.IntOrString { v := intstr.FromString(s); return &v }
	num := func(i int32) *intstr.IntOrString { v := intstr.FromInt32(i); return &v }
	cases := []struct {
		name   string
		mutate func(*appsv1alpha1.BroadcastJob)
		want   []string // substrings of the error: the field and the reason
	}{
		{"restartPolicy Always", func(j *appsv1alpha1.BroadcastJob) { j.Spec.Template.Spec.RestartPolicy = corev1.RestartPolicyAlways },
			[]string{"spec.template.spec.restartPolicy", "must be Never or OnFailure"}},
		{"restartPolicy unset", func(j *appsv1alpha1.BroadcastJob) { j.Spec.Template.Spec.RestartPolicy = "" },
			[]string{"spec.template.spec.restartPolicy", "must be Never or OnFailure"}},
		{"parallelism 0", func(j *appsv1alpha1.BroadcastJob) { j.Spec.Parallelism = num(0) },
			[]string{"spec.parallelism", "positive integer or a percentage from 1% to 100%"}},
		{"parallelism 0%", func(j *appsv1alpha1.BroadcastJob) { j.Spec.Parallelism = str("0%") },
			[]string{"spec.parallelism", "positive integer or a percentage"}},
		{"parallelism 150%", func(j *appsv1alpha1.BroadcastJob) { j.Spec.Parallelism = str("150%") },
			[]string{"spec.parallelism"}},
		{"parallelism not a number", func(j *appsv1alpha1.BroadcastJob) { j.Spec.Parallelism = str("all") },
			[]string{"spec.parallelism"}},
		{"unknown completion policy", func(j *appsv1alpha1.BroadcastJob) { j.Spec.CompletionPolicy.Type = "Sometimes" },
			[]string{"spec.completionPolicy.type", "Unsupported value"}},
		{"unknown failure policy", func(j *appsv1alpha1.BroadcastJob) { j.Spec.FailurePolicy.Type = "Retry" },
			[]string{"spec.failurePolicy.type", "Unsupported value"}},
		{"negative restartLimit", func(j *appsv1alpha1.BroadcastJob) { j.Spec.FailurePolicy.RestartLimit = -1 },
			[]string{"spec.failurePolicy.restartLimit", "greater than or equal to 0"}},
		{"zero activeDeadlineSeconds", func(j *appsv1alpha1.BroadcastJob) { j.Spec.CompletionPolicy.ActiveDeadlineSeconds = ptr.To[int64](0) },
			[]string{"spec.completionPolicy.activeDeadlineSeconds", "greater than or equal to 1"}},
		{"negative ttlSecondsAfterFinished", func(j *appsv1alpha1.BroadcastJob) {
			j.Spec.CompletionPolicy.TTLSecondsAfterFinished = ptr.To[int32](-1)
		}, []string{"spec.completionPolicy.ttlSecondsAfterFinished", "greater than or equal to 0"}},
		{"name too long for the pod label", func(j *appsv1alpha1.BroadcastJob) { j.Name = strings.Repeat("x", 64) },
			[]string{"metadata.name must be at most 63 characters"}},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			j := f.job(fmt.Sprintf("invalid-%d", i), manualJob)
			tc.mutate(j)
			err := k8s.Create(context.Background(), j)
			if !apierrors.IsInvalid(err) {
				t.Fatalf("want Invalid, got %v", err)
			}
			t.Log(err)
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}

func TestDefaults(t *testing.T) {
	f := setup(t)
	j := f.create(f.job("defaults", manualJob))
	got := get(t, j)
	if got.Spec.CompletionPolicy.Type != appsv1alpha1.AlwaysBroadcastJobCompletionPolicyType {
		t.Errorf("completionPolicy.type default %q", got.Spec.CompletionPolicy.Type)
	}
	if got.Spec.FailurePolicy.Type != appsv1alpha1.FailFastBroadcastJobFailurePolicyType || got.Spec.FailurePolicy.RestartLimit != 0 {
		t.Errorf("failurePolicy default %+v", got.Spec.FailurePolicy)
	}
	if got.Spec.Parallelism != nil || got.Spec.Paused {
		t.Errorf("parallelism/paused defaults %v %v", got.Spec.Parallelism, got.Spec.Paused)
	}
}

// The brief's BroadcastJob (examples/broadcastjob.yaml) applies unchanged
// but for apiVersion, and runs its pod once on every node.
func TestBriefExample(t *testing.T) {
	f := setup(t)
	a := f.node("a", nil)
	b := f.node("b", nil)
	u, err := testenv.ExampleObject("broadcastjob.yaml")
	if err != nil {
		t.Fatal(err)
	}
	u.SetNamespace(f.ns)
	if err := k8s.Create(context.Background(), u); err != nil {
		t.Fatalf("the brief's example is refused: %v", err)
	}
	j := &appsv1alpha1.BroadcastJob{}
	if err := k8s.Get(context.Background(), client.ObjectKeyFromObject(u), j); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = k8s.Delete(context.Background(), j) })
	if j.Name != "node-cleanup" || ptr.Deref(j.Spec.CompletionPolicy.TTLSecondsAfterFinished, 0) != 600 ||
		j.Spec.CompletionPolicy.Type != appsv1alpha1.AlwaysBroadcastJobCompletionPolicyType {
		t.Fatalf("example read back as %+v", j.Spec)
	}
	// Every node gets the cleanup pod (nodes of other tests may exist
	// too: the example selects every node).
	eventually(t, "a pod on a and b", func() (bool, string) {
		by := byNode(pods(t, j))
		return len(by[a.Name]) == 1 && len(by[b.Name]) == 1, fmt.Sprint(len(by))
	})
	for _, p := range pods(t, j) {
		c := p.Spec.Containers[0]
		if c.Image != "busybox:1.36" || strings.Join(c.Command, " ") != "sh -c rm -rf /tmp/old-cache/*" {
			t.Fatalf("pod %s runs %s %v", p.Name, c.Image, c.Command)
		}
		kubelet(t, p, corev1.PodSucceeded, 0)
	}
	cur := waitStatus(t, j, "completed", func(st *appsv1alpha1.BroadcastJobStatus) bool {
		return st.Phase == appsv1alpha1.BroadcastJobCompleted
	})
	if cur.Status.Succeeded != cur.Status.Desired || cur.Status.Desired < 2 {
		t.Fatalf("status %+v", cur.Status)
	}
}

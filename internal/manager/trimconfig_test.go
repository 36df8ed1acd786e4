package manager

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestTrimConfigMetadata(t *testing.T) {
	m := &metav1.PartialObjectMetadata{ObjectMeta: metav1.ObjectMeta{
		Name: "db", Namespace: "ns", UID: "u", ResourceVersion: "5",
		Labels:          map[string]string{"rollouts.drover.dev/snapshot-of": "db"},
		Annotations:     map[string]string{corev1.LastAppliedConfigAnnotation: `{"data":{"password":"c2VjcmV0"}}`},
		OwnerReferences: []metav1.OwnerReference{{Kind: "Rollout", Name: "web", UID: "r"}},
		ManagedFields:   []metav1.ManagedFieldsEntry{{Manager: "kubectl"}},
	}}
	out, err := trimConfigMetadata(m)
	if err != nil {
		t.Fatal(err)
	}
	got := out.(*metav1.PartialObjectMetadata)
	if got.Annotations != nil || got.ManagedFields != nil {
		t.Fatalf("annotations %v, managed fields %v kept", got.Annotations, got.ManagedFields)
	}
	if got.Name != "db" || got.UID != "u" || got.ResourceVersion != "5" || got.Labels["rollouts.drover.dev/snapshot-of"] != "db" || len(got.OwnerReferences) != 1 {
		t.Fatalf("identity, labels or owners lost: %+v", got.ObjectMeta)
	}
	// A tombstone or another type passes through.
	if out, err := trimConfigMetadata("tombstone"); err != nil || out != "tombstone" {
		t.Fatalf("tombstone: %v, %v", out, err)
	}
}

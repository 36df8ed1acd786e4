package smi_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	rolloutsv1alpha1 "github.com/drover-dev/drover/api/rollouts/v1alpha1"
	"github.com/drover-dev/drover/internal/traffic"
	"github.com/drover-dev/drover/internal/traffic/smi"
)

var (
	svcs  = traffic.Services{Namespace: "shop", Stable: "web-stable", Canary: "web-canary"}
	owner = metav1.OwnerReference{APIVersion: "rollouts.drover.dev/v1alpha1", Kind: "Rollout", Name: "web",
		UID: types.UID("rollout-uid"), Controller: ptr.To(true)}
)

func newRouter(t *testing.T, objs ...client.Object) (*smi.Router, client.Client) {
	t.Helper()
	c := fake.NewClientBuilder().WithScheme(runtime.NewScheme()).WithObjects(objs...).Build()
	return smi.New(c, c, svcs, "web-split", "web", "web", owner), c
}

func split(t *testing.T, c client.Client) *unstructured.Unstructured {
	t.Helper()
	u := &unstructured.Unstructured{}
	u.SetGroupVersionKind(smi.TrafficSplitGVK)
	if err := c.Get(context.Background(), client.ObjectKey{Namespace: "shop", Name: "web-split"}, u); err != nil {
		t.Fatal(err)
	}
	return u
}

func specJSON(t *testing.T, u *unstructured.Unstructured) string {
	t.Helper()
	b, err := json.Marshal(u.Object["spec"])
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestTrafficSplitCarriesTheWeight(t *testing.T) {
	r, c := newRouter(t)
	ctx := context.Background()
	if o, err := r.Observe(ctx); err != nil || o.Weight != 0 || o.Verified {
		t.Fatalf("before the first Apply: Observe() = %+v, %v; want weight 0, unverified", o, err)
	}
	for _, w := range []int{30, 0, 100} {
		if err := r.Apply(ctx, traffic.State{Weight: int32(w)}); err != nil {
			t.Fatal(err)
		}
		ts := split(t, c)
		want := `{"backends":[{"service":"web-stable","weight":` + itoa(100-w) + `},{"service":"web-canary","weight":` + itoa(w) + `}],"service":"web"}`
		if got := specJSON(t, ts); got != want {
			t.Fatalf("weight %d: spec %s, want %s", w, got, want)
		}
		if refs := ts.GetOwnerReferences(); len(refs) != 1 || refs[0].UID != owner.UID || ts.GetLabels()[rolloutsv1alpha1.LabelRollout] != "web" {
			t.Fatalf("TrafficSplit not owned by the rollout: %v %v", refs, ts.GetLabels())
		}
		if o, err := r.Observe(ctx); err != nil || o.Weight != int32(w) || !o.Verified || len(o.Routes) != 0 {
			t.Fatalf("Observe() = %+v, %v; want weight %d", o, err, w)
		}
	}
	rv := split(t, c).GetResourceVersion()
	if err := r.Apply(ctx, traffic.State{Weight: 100}); err != nil {
		t.Fatal(err)
	}
	if now := split(t, c).GetResourceVersion(); now != rv {
		t.Fatal("applying the same weight again wrote the TrafficSplit")
	}
}

func itoa(n int) string {
	b, _ := json.Marshal(n)
	return string(b)
}

func TestKeepsOtherFieldsOfItsTrafficSplit(t *testing.T) {
	ts := &unstructured.Unstructured{}
	ts.SetGroupVersionKind(smi.TrafficSplitGVK)
	ts.SetNamespace("shop")
	ts.SetName("web-split")
	ts.SetOwnerReferences([]metav1.OwnerReference{owner})
	ts.SetAnnotations(map[string]string{"note": "kept"})
	ts.Object["spec"] = map[string]any{"service": "old-root", "matches": []any{map[string]any{"kind": "HTTPRouteGroup", "name": "api"}},
		"backends": []any{map[string]any{"service": "web-stable", "weight": int64(1)}}}
	r, c := newRouter(t, ts)
	if err := r.Apply(context.Background(), traffic.State{Weight: 10}); err != nil {
		t.Fatal(err)
	}
	got := split(t, c)
	want := `{"backends":[{"service":"web-stable","weight":90},{"service":"web-canary","weight":10}],"matches":[{"kind":"HTTPRouteGroup","name":"api"}],"service":"web"}`
	if s := specJSON(t, got); s != want || got.GetAnnotations()["note"] != "kept" {
		t.Fatalf("spec %s annotations %v; want %s", s, got.GetAnnotations(), want)
	}
}

func TestErrors(t *testing.T) {
	ctx := context.Background()
	r, _ := newRouter(t)
	for _, state := range []traffic.State{
		{HeaderRoutes: []traffic.HeaderRoute{{Name: "h", Match: []traffic.HeaderMatch{{Name: "X", Exact: "1"}}}}},
		{MirrorRoutes: []traffic.MirrorRoute{{Name: "m", Percent: 5}}},
	} {
		if err := r.Apply(ctx, state); err == nil || !strings.Contains(err.Error(), "not supported by SMI") {
			t.Errorf("Apply(%+v) = %v", state, err)
		}
	}
	theirs := &unstructured.Unstructured{}
	theirs.SetGroupVersionKind(smi.TrafficSplitGVK)
	theirs.SetNamespace("shop")
	theirs.SetName("web-split")
	r, _ = newRouter(t, theirs)
	if err := r.Apply(ctx, traffic.State{Weight: 10}); err == nil || !strings.Contains(err.Error(), "not owned by rollout web") {
		t.Errorf("someone else's TrafficSplit: Apply() = %v", err)
	}
}

package gatewayapi_test

import (
	"context"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/drover-dev/drover/internal/traffic"
	"github.com/drover-dev/drover/internal/traffic/gatewayapi"
)

// These tests check what the router writes into routes; test/e2e/traffic
// checks that a real gateway (Traefik) splits real requests accordingly.

func backend(name string, weight *int32) gatewayv1.HTTPBackendRef {
	return gatewayv1.HTTPBackendRef{BackendRef: gatewayv1.BackendRef{
		BackendObjectReference: gatewayv1.BackendObjectReference{Name: gatewayv1.ObjectName(name), Port: ptr.To[gatewayv1.PortNumber](80)},
		Weight:                 weight,
	}}
}

func httpRoute() *gatewayv1.HTTPRoute {
	return &gatewayv1.HTTPRoute{
		ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "web", Generation: 1},
		Spec: gatewayv1.HTTPRouteSpec{Rules: []gatewayv1.HTTPRouteRule{
			{BackendRefs: []gatewayv1.HTTPBackendRef{backend("web-stable", nil)}},         // managed: canary added
			{BackendRefs: []gatewayv1.HTTPBackendRef{backend("admin", ptr.To[int32](7))}}, // the user's: untouched
		}},
	}
}

func newRouter(t *testing.T, objs ...client.Object) (*gatewayapi.Router, client.Client) {
	t.Helper()
	s := runtime.NewScheme()
	if err := gatewayv1.Install(s); err != nil {
		t.Fatal(err)
	}
	c := fake.NewClientBuilder().WithScheme(s).WithObjects(objs...).WithStatusSubresource(objs...).Build()
	svcs := traffic.Services{Namespace: "shop", Stable: "web-stable", Canary: "web-canary"}
	return gatewayapi.New(c, c, svcs, []string{"web"}, nil), c
}

func TestSetWeightManagesOnlyItsBackends(t *testing.T) {
	r, c := newRouter(t, httpRoute())
	ctx := context.Background()
	for _, w := range []int32{20, 0, 100} {
		if err := r.SetWeight(ctx, w); err != nil {
			t.Fatal(err)
		}
		var got gatewayv1.HTTPRoute
		if err := c.Get(ctx, client.ObjectKey{Namespace: "shop", Name: "web"}, &got); err != nil {
			t.Fatal(err)
		}
		refs := got.Spec.Rules[0].BackendRefs
		if len(refs) != 2 || refs[0].Name != "web-stable" || refs[1].Name != "web-canary" {
			t.Fatalf("weight %d: managed rule %+v", w, refs)
		}
		if *refs[0].Weight != 100-w || *refs[1].Weight != w || *refs[1].Port != 80 {
			t.Fatalf("weight %d: stable %d canary %d", w, *refs[0].Weight, *refs[1].Weight)
		}
		if user := got.Spec.Rules[1].BackendRefs; len(user) != 1 || *user[0].Weight != 7 {
			t.Fatalf("the user's rule changed: %+v", user)
		}
		weight, verified, err := r.Weight(ctx)
		if err != nil || weight != w || verified {
			t.Fatalf("Weight() = %d, %v, %v; want %d, unverified (no gateway accepted it yet)", weight, verified, err, w)
		}
	}
}

func TestWeightVerifiedWhenEveryParentAcceptedTheGeneration(t *testing.T) {
	hr := httpRoute()
	hr.Spec.Rules[0].BackendRefs = append(hr.Spec.Rules[0].BackendRefs, backend("web-canary", ptr.To[int32](30)))
	hr.Spec.Rules[0].BackendRefs[0].Weight = ptr.To[int32](70)
	cond := func(t gatewayv1.RouteConditionType, gen int64) metav1.Condition {
		return metav1.Condition{Type: string(t), Status: metav1.ConditionTrue, Reason: "ok", ObservedGeneration: gen, LastTransitionTime: metav1.Now()}
	}
	parent := func(gen int64) gatewayv1.RouteParentStatus {
		return gatewayv1.RouteParentStatus{ControllerName: "traefik.io/gateway-controller",
			Conditions: []metav1.Condition{cond(gatewayv1.RouteConditionAccepted, gen), cond(gatewayv1.RouteConditionResolvedRefs, gen)}}
	}
	hr.Status.Parents = []gatewayv1.RouteParentStatus{parent(1), parent(0)}
	r, c := newRouter(t, hr)
	ctx := context.Background()
	if w, ok, err := r.Weight(ctx); err != nil || w != 30 || ok {
		t.Fatalf("one parent behind: Weight() = %d, %v, %v", w, ok, err)
	}
	var got gatewayv1.HTTPRoute
	if err := c.Get(ctx, client.ObjectKeyFromObject(hr), &got); err != nil {
		t.Fatal(err)
	}
	got.Status.Parents = []gatewayv1.RouteParentStatus{parent(got.Generation), parent(got.Generation)}
	if err := c.Status().Update(ctx, &got); err != nil {
		t.Fatal(err)
	}
	if w, ok, err := r.Weight(ctx); err != nil || w != 30 || !ok {
		t.Fatalf("all parents accepted: Weight() = %d, %v, %v", w, ok, err)
	}
}

func TestRouteWithoutTheServicesIsAnError(t *testing.T) {
	hr := httpRoute()
	hr.Spec.Rules = hr.Spec.Rules[1:]
	r, _ := newRouter(t, hr)
	if err := r.SetWeight(context.Background(), 10); err == nil {
		t.Fatal("SetWeight on a route that references neither service succeeded")
	}
}

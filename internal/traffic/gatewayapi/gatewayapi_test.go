package gatewayapi_test

import (
	"context"
	"strings"
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
		if err := r.Apply(ctx, traffic.State{Weight: w}); err != nil {
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
		o, err := r.Observe(ctx)
		if err != nil || o.Weight != w || o.Verified || len(o.Routes) != 0 {
			t.Fatalf("Observe() = %+v, %v; want weight %d, unverified (no gateway accepted it yet)", o, err, w)
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
	if o, err := r.Observe(ctx); err != nil || o.Weight != 30 || o.Verified {
		t.Fatalf("one parent behind: Observe() = %+v, %v", o, err)
	}
	var got gatewayv1.HTTPRoute
	if err := c.Get(ctx, client.ObjectKeyFromObject(hr), &got); err != nil {
		t.Fatal(err)
	}
	got.Status.Parents = []gatewayv1.RouteParentStatus{parent(got.Generation), parent(got.Generation)}
	if err := c.Status().Update(ctx, &got); err != nil {
		t.Fatal(err)
	}
	if o, err := r.Observe(ctx); err != nil || o.Weight != 30 || !o.Verified {
		t.Fatalf("all parents accepted: Observe() = %+v, %v", o, err)
	}
}

func TestRouteWithoutTheServicesIsAnError(t *testing.T) {
	hr := httpRoute()
	hr.Spec.Rules = hr.Spec.Rules[1:]
	r, _ := newRouter(t, hr)
	if err := r.Apply(context.Background(), traffic.State{Weight: 10}); err == nil {
		t.Fatal("Apply on a route that references neither service succeeded")
	}
}

func TestHeaderAndMirrorRoutes(t *testing.T) {
	hr := httpRoute()
	hr.Spec.Rules[0].Matches = []gatewayv1.HTTPRouteMatch{{Path: &gatewayv1.HTTPPathMatch{Type: ptr.To(gatewayv1.PathMatchPathPrefix), Value: ptr.To("/api")}}}
	r, c := newRouter(t, hr)
	ctx := context.Background()
	state := traffic.State{
		Weight:       10,
		HeaderRoutes: []traffic.HeaderRoute{{Name: "beta", Match: []traffic.HeaderMatch{{Name: "X-Beta", Exact: "yes"}}}},
		MirrorRoutes: []traffic.MirrorRoute{{Name: "all", Percent: 30}},
	}
	get := func() gatewayv1.HTTPRoute {
		var got gatewayv1.HTTPRoute
		if err := c.Get(ctx, client.ObjectKey{Namespace: "shop", Name: "web"}, &got); err != nil {
			t.Fatal(err)
		}
		return got
	}
	for range 2 { // applying twice changes nothing more
		if err := r.Apply(ctx, state); err != nil {
			t.Fatal(err)
		}
	}
	got := get()
	if n := len(got.Spec.Rules); n != 4 {
		t.Fatalf("%d rules, want a mirror rule, the owner's 2 and a header rule: %+v", n, got.Spec.Rules)
	}
	mirror, header := got.Spec.Rules[0], got.Spec.Rules[3]
	if string(*header.Name) != "drover-header-beta-0" || len(header.BackendRefs) != 1 || header.BackendRefs[0].Name != "web-canary" {
		t.Fatalf("header rule %+v", header)
	}
	m := header.Matches[0]
	if *m.Path.Value != "/api" || len(m.Headers) != 1 || m.Headers[0].Name != "X-Beta" || m.Headers[0].Value != "yes" {
		t.Fatalf("header rule must keep the owner's path and add the header: %+v", m)
	}
	f := mirror.Filters
	if string(*mirror.Name) != "drover-mirror-all-0" || *mirror.Matches[0].Path.Value != "/api" || len(mirror.Matches[0].Headers) != 0 ||
		len(f) != 1 || f[0].Type != gatewayv1.HTTPRouteFilterRequestMirror || f[0].RequestMirror.BackendRef.Name != "web-canary" || *f[0].RequestMirror.Percent != 30 {
		t.Fatalf("mirror rule %+v", mirror)
	}
	if *mirror.BackendRefs[0].Weight != 90 || *mirror.BackendRefs[1].Weight != 10 {
		t.Fatalf("the mirror rule must serve like the owner's: %+v", mirror.BackendRefs)
	}
	o, err := r.Observe(ctx)
	if err != nil || o.Weight != 10 || strings.Join(o.Routes, ",") != "header/beta,mirror/all" || strings.Join(state.RouteNames(), ",") != "header/beta,mirror/all" {
		t.Fatalf("Observe() = %+v, %v", o, err)
	}
	// The release ends: every managed part goes, the owner's rules stay.
	if err := r.Apply(ctx, traffic.State{}); err != nil {
		t.Fatal(err)
	}
	got = get()
	if n := len(got.Spec.Rules); n != 2 || len(got.Spec.Rules[0].Filters) != 0 || *got.Spec.Rules[1].BackendRefs[0].Weight != 7 {
		t.Fatalf("after the release: %+v", got.Spec.Rules)
	}
}

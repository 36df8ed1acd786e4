package nginx_test

import (
	"context"
	"slices"
	"strconv"
	"strings"
	"testing"

	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	rolloutsv1alpha1 "github.com/drover-dev/drover/api/rollouts/v1alpha1"
	"github.com/drover-dev/drover/internal/traffic"
	"github.com/drover-dev/drover/internal/traffic/nginx"
)

var (
	svcs  = traffic.Services{Namespace: "shop", Stable: "web-stable", Canary: "web-canary"}
	owner = metav1.OwnerReference{APIVersion: "rollouts.drover.dev/v1alpha1", Kind: "Rollout", Name: "web",
		UID: types.UID("rollout-uid"), Controller: ptr.To(true), BlockOwnerDeletion: ptr.To(true)}
)

func path(p, svc string, port int32) networkingv1.HTTPIngressPath {
	return networkingv1.HTTPIngressPath{Path: p, PathType: ptr.To(networkingv1.PathTypePrefix), Backend: networkingv1.IngressBackend{
		Service: &networkingv1.IngressServiceBackend{Name: svc, Port: networkingv1.ServiceBackendPort{Number: port}}}}
}

func stableIngress() *networkingv1.Ingress {
	return &networkingv1.Ingress{
		ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "web",
			Annotations: map[string]string{"nginx.ingress.kubernetes.io/rewrite-target": "/"}},
		Spec: networkingv1.IngressSpec{
			IngressClassName: ptr.To("nginx"),
			TLS:              []networkingv1.IngressTLS{{Hosts: []string{"web.example.com"}, SecretName: "tls"}},
			Rules: []networkingv1.IngressRule{
				{Host: "web.example.com", IngressRuleValue: networkingv1.IngressRuleValue{HTTP: &networkingv1.HTTPIngressRuleValue{Paths: []networkingv1.HTTPIngressPath{
					path("/", "web-stable", 80), path("/admin", "admin", 8080),
				}}}},
				{Host: "other.example.com", IngressRuleValue: networkingv1.IngressRuleValue{HTTP: &networkingv1.HTTPIngressRuleValue{Paths: []networkingv1.HTTPIngressPath{
					path("/", "other", 80),
				}}}},
			},
		},
	}
}

func newRouter(t *testing.T, extra map[string]string, objs ...client.Object) (*nginx.Router, client.Client) {
	t.Helper()
	s := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(s); err != nil {
		t.Fatal(err)
	}
	c := fake.NewClientBuilder().WithScheme(s).WithObjects(objs...).Build()
	return nginx.New(c, c, svcs, "web", "web", owner, extra), c
}

func canaryIngress(t *testing.T, c client.Client) *networkingv1.Ingress {
	t.Helper()
	var ing networkingv1.Ingress
	if err := c.Get(context.Background(), client.ObjectKey{Namespace: "shop", Name: "web-web-canary"}, &ing); err != nil {
		t.Fatal(err)
	}
	return &ing
}

func TestCanaryIngressCarriesTheWeight(t *testing.T) {
	stable := stableIngress()
	r, c := newRouter(t, map[string]string{"canary-by-header": "X-Team", "canary-weight": "1", "proxy-body-size": "8m", "example.com/team": "shop"}, stable)
	ctx := context.Background()
	if o, err := r.Observe(ctx); err != nil || o.Weight != 0 || o.Verified {
		t.Fatalf("before the first Apply: Observe() = %+v, %v; want weight 0, unverified", o, err)
	}
	for _, w := range []int32{25, 0, 100} {
		if err := r.Apply(ctx, traffic.State{Weight: w}); err != nil {
			t.Fatal(err)
		}
		ing := canaryIngress(t, c)
		a := ing.Annotations
		if a[nginx.AnnotationCanary] != "true" || a[nginx.AnnotationWeight] != itoa(w) || a[nginx.AnnotationWeightTotal] != "100" {
			t.Fatalf("weight %d: annotations %v", w, a)
		}
		if a["nginx.ingress.kubernetes.io/proxy-body-size"] != "8m" || a["example.com/team"] != "shop" {
			t.Fatalf("additional annotations missing: %v", a)
		}
		if a[nginx.AnnotationByHeader] != "X-Team" || a[nginx.AnnotationWeight] == "1" {
			t.Fatalf("additional annotations: yours without a header route, the weight always the Rollout's: %v", a)
		}
		if *ing.Spec.IngressClassName != "nginx" || len(ing.Spec.TLS) != 0 {
			t.Fatalf("spec %+v", ing.Spec)
		}
		if len(ing.Spec.Rules) != 1 || ing.Spec.Rules[0].Host != "web.example.com" {
			t.Fatalf("rules %+v: want the one rule that serves the stable service", ing.Spec.Rules)
		}
		paths := ing.Spec.Rules[0].HTTP.Paths
		if len(paths) != 1 || paths[0].Path != "/" || paths[0].Backend.Service.Name != "web-canary" || paths[0].Backend.Service.Port.Number != 80 {
			t.Fatalf("paths %+v", paths)
		}
		if len(ing.OwnerReferences) != 1 || ing.OwnerReferences[0].UID != owner.UID || ing.Labels[rolloutsv1alpha1.LabelRollout] != "web" {
			t.Fatalf("canary ingress not owned by the rollout: %+v", ing.ObjectMeta)
		}
		o, err := r.Observe(ctx)
		if err != nil || o.Weight != w || !o.Verified || len(o.Routes) != 0 {
			t.Fatalf("Observe() = %+v, %v; want weight %d", o, err, w)
		}
	}
	var got networkingv1.Ingress
	if err := c.Get(ctx, client.ObjectKeyFromObject(stable), &got); err != nil {
		t.Fatal(err)
	}
	if got.ResourceVersion != "999" || len(got.Annotations) != 1 {
		t.Fatalf("the stable ingress changed: %+v", got.ObjectMeta)
	}
	rv := canaryIngress(t, c).ResourceVersion
	if err := r.Apply(ctx, traffic.State{Weight: 100}); err != nil {
		t.Fatal(err)
	}
	if now := canaryIngress(t, c).ResourceVersion; now != rv {
		t.Fatal("applying the same state again wrote the canary ingress")
	}
}

func itoa(n int32) string { return strconv.Itoa(int(n)) }

func TestHeaderRoute(t *testing.T) {
	r, c := newRouter(t, map[string]string{"canary-by-header": "X-Team", "canary-by-header-pattern": "^a"}, stableIngress())
	ctx := context.Background()
	exact := traffic.State{Weight: 5, HeaderRoutes: []traffic.HeaderRoute{{Name: "beta", Match: []traffic.HeaderMatch{{Name: "X-Beta", Exact: "yes"}}}}}
	if err := r.Apply(ctx, exact); err != nil {
		t.Fatal(err)
	}
	a := canaryIngress(t, c).Annotations
	if a[nginx.AnnotationByHeader] != "X-Beta" || a[nginx.AnnotationByHeaderValue] != "yes" || a[nginx.AnnotationByHeaderPattern] != "" {
		t.Fatalf("exact header route: %v", a)
	}
	if o, err := r.Observe(ctx); err != nil || o.Weight != 5 || !slices.Equal(o.Routes, []string{"header/beta"}) {
		t.Fatalf("Observe() = %+v, %v", o, err)
	}
	cookie := traffic.State{Weight: 5, HeaderRoutes: []traffic.HeaderRoute{{Name: "group", Match: []traffic.HeaderMatch{{Name: "Cookie", Regex: `(^|;\s*)group=(b)(;|$)`}}}}}
	if err := r.Apply(ctx, cookie); err != nil {
		t.Fatal(err)
	}
	a = canaryIngress(t, c).Annotations
	if a[nginx.AnnotationByHeader] != "Cookie" || a[nginx.AnnotationByHeaderPattern] != `(^|;\s*)group=(b)(;|$)` || a[nginx.AnnotationByHeaderValue] != "" {
		t.Fatalf("regex header route: %v", a)
	}
	if err := r.Apply(ctx, traffic.State{Weight: 5}); err != nil {
		t.Fatal(err)
	}
	a = canaryIngress(t, c).Annotations
	for _, k := range []string{nginx.AnnotationByHeaderValue, nginx.AnnotationHeaderRoute} {
		if _, ok := a[k]; ok {
			t.Fatalf("header route removed but %s stays: %v", k, a)
		}
	}
	if a[nginx.AnnotationByHeader] != "X-Team" || a[nginx.AnnotationByHeaderPattern] != "^a" {
		t.Fatalf("without a header route the additional annotations are back: %v", a)
	}
	if o, err := r.Observe(ctx); err != nil || len(o.Routes) != 0 {
		t.Fatalf("Observe() = %+v, %v", o, err)
	}
}

func TestUnsupported(t *testing.T) {
	r, _ := newRouter(t, nil, stableIngress())
	ctx := context.Background()
	h := func(name string, n int) traffic.HeaderRoute {
		return traffic.HeaderRoute{Name: name, Match: slices.Repeat([]traffic.HeaderMatch{{Name: "X", Exact: "1"}}, n)}
	}
	for name, tc := range map[string]struct {
		state traffic.State
		want  string
	}{
		"mirror":                 {traffic.State{MirrorRoutes: []traffic.MirrorRoute{{Name: "m", Percent: 10}}}, "setMirrorRoute is not supported by the nginx router"},
		"two header routes":      {traffic.State{HeaderRoutes: []traffic.HeaderRoute{h("a", 1), h("b", 1)}}, "one header route at a time"},
		"two headers in a route": {traffic.State{HeaderRoutes: []traffic.HeaderRoute{h("a", 2)}}, "exactly one header"},
	} {
		if err := r.Apply(ctx, tc.state); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: Apply() = %v, want %q", name, err, tc.want)
		}
	}
}

func TestRefusesAnotherIngressAndAStableIngressWithoutTheService(t *testing.T) {
	ctx := context.Background()
	theirs := &networkingv1.Ingress{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "web-web-canary"}}
	r, _ := newRouter(t, nil, stableIngress(), theirs)
	if err := r.Apply(ctx, traffic.State{Weight: 10}); err == nil || !strings.Contains(err.Error(), "is not the canary ingress of rollout web") {
		t.Errorf("someone else's ingress: Apply() = %v", err)
	}
	stable := stableIngress()
	stable.Spec.Rules = stable.Spec.Rules[1:]
	r, _ = newRouter(t, nil, stable)
	if err := r.Apply(ctx, traffic.State{Weight: 10}); err == nil || !strings.Contains(err.Error(), "no path sends traffic to service web-stable") {
		t.Errorf("no stable path: Apply() = %v", err)
	}
}

func TestCanaryName(t *testing.T) {
	if got := nginx.CanaryName("web", "shop"); got != "web-shop-canary" {
		t.Errorf("CanaryName = %s", got)
	}
	long := strings.Repeat("a", 200)
	got := nginx.CanaryName(long, long)
	if len(got) > 253 || !strings.HasSuffix(got, "-canary") || got == nginx.CanaryName(long, long+"b") {
		t.Errorf("CanaryName of long names = %s (%d)", got, len(got))
	}
}
